package hf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/internal/ctxerr"
	"github.com/alignkit/alignkit/model"
)

// File names in an HF model directory, as transformers names them.
const (
	ConfigFile           = "config.json"
	GenerationConfigFile = "generation_config.json"
	WeightsFile          = "model.safetensors"
	IndexFile            = "model.safetensors.index.json"
)

// shardName matches transformers' shard names, model-00001-of-00003.safetensors.
var shardName = regexp.MustCompile(`^model-[0-9]{5}-of-[0-9]{5}\.safetensors$`)

// Load reads an HF model directory: config.json (plus generation_config.json's token ids when present)
// and the weights from model.safetensors or, failing that, the shards listed in
// model.safetensors.index.json (the order transformers tries them in). F16 and BF16 weights are
// widened to float32. Per-layer rotary_emb.inv_freq buffers that old checkpoints carry are dropped
// (they follow from rope_theta), as is an lm_head.weight that merely repeats the tied embeddings. The
// result passes Weights.Check and holds only finite values.
func Load(dir string) (*model.Weights, error) {
	return LoadWith(context.Background(), dir, LoadOptions{})
}

// LoadContext is Load, stopping when ctx ends: between tensors, and between the tensors checked
// for finite values (a 7B model takes tens of seconds to read, and a signal must end it in
// seconds). The error wraps ctx.Err() and names the file and the tensors done.
func LoadContext(ctx context.Context, dir string) (*model.Weights, error) {
	return LoadWith(ctx, dir, LoadOptions{})
}

// LoadOptions control LoadWith.
type LoadOptions struct {
	// Freeze, when non-nil, converts tensors to a frozen form as they are read, so that a quantized
	// base is never whole in memory as float32: for each tensor for which Freeze(name, shape) returns
	// a non-nil convert, the values are decoded into a float32 scratch buffer reused from tensor to
	// tensor, checked finite, and convert's result (which must not keep the buffer) is stored in the
	// tensor's place. Other tensors are read as Load reads them. In a model with tied embeddings
	// neither the embedding nor an lm_head.weight beside it is offered: Load compares the two and
	// drops the head, and the embedding is the head.
	Freeze func(name string, shape []int) (convert func(data []float32) (*model.Tensor, error))
}

// LoadWith is LoadContext with options.
func LoadWith(ctx context.Context, dir string, opts LoadOptions) (*model.Weights, error) {
	cfg, err := loadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	genPath := filepath.Join(dir, GenerationConfigFile)
	if _, err := os.Stat(genPath); err == nil {
		g, err := ReadGenerationConfig(genPath)
		if err != nil {
			return nil, err
		}
		if err := mergeGeneration(&cfg, g, genPath); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", genPath, err)
	}
	rd := reader{ctx: ctx}
	if opts.Freeze != nil {
		rd.freeze = opts.Freeze
		if cfg.TieWordEmbeddings && !cfg.IsRewardModel() {
			rd.freeze = func(name string, shape []int) func([]float32) (*model.Tensor, error) {
				if name == model.LMHeadKey || name == model.EmbedKey {
					return nil
				}
				return opts.Freeze(name, shape)
			}
		}
	}
	tensors, err := loadTensors(dir, rd)
	if err != nil {
		return nil, err
	}
	// Before anything is built from config.json (the expected tensor list alone of a config claiming
	// 10^8 layers took every byte of memory): its size must fit the tensors actually read.
	var elements int64
	for _, t := range tensors {
		elements += int64(t.Numel())
	}
	if err := cfg.CheckAgainst(len(tensors), elements); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFile), err)
	}
	w := &model.Weights{Config: cfg, Tensors: tensors}
	if err := normalize(w, dir); err != nil {
		return nil, err
	}
	if err := w.Check(dir); err != nil {
		return nil, err
	}
	if err := checkFinite(ctx, w, dir); err != nil {
		return nil, err
	}
	return w, nil
}

// loadConfig reads config.json with the size bound every file in a model directory gets.
func loadConfig(path string) (model.Config, error) {
	data, err := readBounded(path)
	if err != nil {
		return model.Config{}, err
	}
	return model.ParseConfig(data, path)
}

// mergeGeneration applies generation_config.json's ids the way transformers' generate() sees them: its
// bos_token_id wins, its eos ids join config.json's (which stay first, so Config.EOS() is unchanged),
// and its pad id fills a missing one. Pad ids outside the vocabulary (old configs use -1) are ignored.
func mergeGeneration(c *model.Config, g GenerationConfig, path string) error {
	check := func(field string, id int) error {
		if id < 0 || id >= c.VocabSize {
			return fmt.Errorf("%s: %s %d is outside the vocabulary (vocab_size %d)", path, field, id, c.VocabSize)
		}
		return nil
	}
	if g.BOSTokenID != nil {
		if err := check("bos_token_id", *g.BOSTokenID); err != nil {
			return err
		}
		c.BOSTokenID = *g.BOSTokenID
	}
	for _, id := range g.EOSTokenIDs {
		if err := check("eos_token_id", id); err != nil {
			return err
		}
		known := false
		for _, e := range c.EOSTokenIDs {
			known = known || e == id
		}
		if !known {
			c.EOSTokenIDs = append(append([]int(nil), c.EOSTokenIDs...), id)
		}
	}
	if g.PadTokenID != nil && c.PadTokenID == nil && *g.PadTokenID >= 0 && *g.PadTokenID < c.VocabSize {
		p := *g.PadTokenID
		c.PadTokenID = &p
	}
	return nil
}

// loadTensors reads model.safetensors, or the shards of model.safetensors.index.json.
func loadTensors(dir string, rd reader) (map[string]*model.Tensor, error) {
	single := filepath.Join(dir, WeightsFile)
	if exists(single) {
		return rd.readFile(single)
	}
	index := filepath.Join(dir, IndexFile)
	if exists(index) {
		return readSharded(dir, index, rd)
	}
	msg := fmt.Sprintf("%s: no %s or %s", dir, WeightsFile, IndexFile)
	if exists(filepath.Join(dir, "pytorch_model.bin")) || exists(filepath.Join(dir, "pytorch_model.bin.index.json")) {
		msg += " (pytorch_model.bin checkpoints are not supported: convert them to safetensors)"
	}
	return nil, errors.New(msg)
}

func exists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// shardIndex is model.safetensors.index.json.
type shardIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// readSharded reads every shard the index names. All shards must exist and their headers must agree
// with the index tensor for tensor before any tensor data is read. total_size is informational
// (transformers only reports it) and is not checked.
func readSharded(dir, indexPath string, rd reader) (map[string]*model.Tensor, error) {
	data, err := readBounded(indexPath)
	if err != nil {
		return nil, err
	}
	var idx shardIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s: field %q has the wrong type: got a JSON %s, want %s", indexPath, te.Field, te.Value, te.Type)
		}
		return nil, fmt.Errorf("%s: not valid JSON: %v", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: weight_map is missing or empty", indexPath)
	}
	names := sortedKeys(idx.WeightMap)
	var files []string
	seen := map[string]bool{}
	for _, name := range names {
		f := idx.WeightMap[name]
		if !seen[f] {
			// Only plain names in this directory: an index must not make us read ../../anything.
			if f == "" || f == "." || f == ".." || strings.ContainsAny(f, `/\`) {
				return nil, fmt.Errorf("%s: weight_map puts tensor %q in %q, which is not a file name in this directory", indexPath, name, f)
			}
			seen[f] = true
			files = append(files, f)
		}
	}
	sort.Strings(files)
	// Validate every shard's header against the index before reading any tensor data.
	shards := make([]*safetensorsFile, 0, len(files))
	defer func() {
		for _, sf := range shards {
			sf.f.Close()
		}
	}()
	for _, f := range files {
		if !exists(filepath.Join(dir, f)) {
			return nil, fmt.Errorf("%s: shard %s is missing", indexPath, f)
		}
	}
	held := map[string]bool{}
	for _, f := range files {
		sf, err := openSafetensors(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		shards = append(shards, sf)
		infos := append([]tensorInfo(nil), sf.tensors...)
		sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
		for _, info := range infos {
			want, ok := idx.WeightMap[info.Name]
			if !ok {
				return nil, fmt.Errorf("%s: tensor %q in %s is not listed in weight_map", indexPath, info.Name, f)
			}
			if want != f {
				return nil, fmt.Errorf("%s: tensor %q is in %s, but weight_map puts it in %s", indexPath, info.Name, f, want)
			}
			held[info.Name] = true
		}
	}
	for _, name := range names {
		if !held[name] {
			return nil, fmt.Errorf("%s: weight_map puts tensor %q in %s, which does not hold it", indexPath, name, idx.WeightMap[name])
		}
	}
	out := make(map[string]*model.Tensor, len(names))
	for _, sf := range shards {
		ts, err := rd.readAll(sf)
		if err != nil {
			return nil, err
		}
		for name, t := range ts {
			out[name] = t
		}
	}
	return out, nil
}

// normalize drops tensors transformers ignores on load and gives a missing reward head a clearer
// error than Weights.Check's generic one.
func normalize(w *model.Weights, dir string) error {
	c := w.Config
	for name := range w.Tensors {
		if strings.HasSuffix(name, ".self_attn.rotary_emb.inv_freq") {
			delete(w.Tensors, name)
		}
	}
	if lm, ok := w.Tensors[model.LMHeadKey]; ok && c.TieWordEmbeddings && !c.IsRewardModel() {
		if emb, ok := w.Tensors[model.EmbedKey]; !ok || !sameBits(lm, emb) {
			return fmt.Errorf("%s: config.json ties the output head to the embeddings (tie_word_embeddings true), but %s differs from %s",
				dir, model.LMHeadKey, model.EmbedKey)
		}
		delete(w.Tensors, model.LMHeadKey)
	}
	if _, ok := w.Tensors[model.ScoreKey]; c.IsRewardModel() && !ok {
		msg := fmt.Sprintf("%s: tensor %q is missing: config.json declares %s, a reward model with a [1, %d] score head",
			dir, model.ScoreKey, strings.Join(c.Architectures, ", "), c.HiddenSize)
		if _, ok := w.Tensors[model.LMHeadKey]; ok {
			msg += ", but the weights have lm_head.weight as a causal LM does"
		}
		return errors.New(msg)
	}
	return nil
}

func sameBits(a, b *model.Tensor) bool {
	if len(a.Shape) != len(b.Shape) || len(a.Data) != len(b.Data) {
		return false
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			return false
		}
	}
	for i := range a.Data {
		if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
			return false
		}
	}
	return true
}

// checkFinite rejects NaN and ±Inf: a checkpoint holding them is broken, and training from it would
// only propagate them.
func checkFinite(ctx context.Context, w *model.Weights, source string) error {
	names := w.Names()
	for k, name := range names {
		if err := ctxerr.Err(ctx); err != nil {
			return fmt.Errorf("checking %s: %w after %d of %d tensors", source, err, k, len(names))
		}
		for i, v := range w.Tensors[name].Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%s: tensor %q holds %v at index %d", source, name, v, i)
			}
		}
	}
	return nil
}

// SaveOptions choose how Save writes the weights.
type SaveOptions struct {
	Dtype        string // "f32" (default, also ""), "bf16" or "f16"; rounding is to nearest even
	MaxShardSize int64  // bytes per safetensors shard (see ParseSize); 0 or less writes one model.safetensors
}

// Save writes an HF model directory that transformers' from_pretrained loads: config.json
// (torch_dtype set to the written dtype; reward models also get id2label/label2id),
// generation_config.json, and model.safetensors, or shards model-00001-of-0000N.safetensors plus
// model.safetensors.index.json when the weights exceed MaxShardSize. Shards are filled greedily in
// tensor-name order as huggingface_hub does (a tensor larger than the limit gets a shard of its own);
// if everything fits in one shard the result is a plain model.safetensors. Everything is validated
// before the first byte is written (shapes against the config, finite values, values that fit the
// dtype), each file is written atomically, and stale weight files from an earlier save into dir (the
// other layout, or more shards) are removed afterwards so they cannot shadow the new ones.
func Save(dir string, w *model.Weights, opts SaveOptions) error {
	fail := func(err error) error { return fmt.Errorf("saving %s: %w", dir, err) }
	dt, err := parseDtype(opts.Dtype)
	if err != nil {
		return fail(err)
	}
	if w == nil {
		return fail(errors.New("no weights"))
	}
	names := w.Names()
	for _, name := range names {
		if w.Tensors[name] == nil {
			return fail(fmt.Errorf("tensor %q is nil", name))
		}
	}
	if err := w.Config.Validate(); err != nil {
		return fail(fmt.Errorf("config: %w", err))
	}
	if err := w.Check(dir); err != nil {
		return fmt.Errorf("saving %w", err)
	}
	if err := checkFinite(context.Background(), w, dir); err != nil {
		return fmt.Errorf("saving %w", err)
	}
	if err := checkWritable(w.Tensors, names, dt); err != nil {
		return fail(err)
	}
	cfgJSON, err := configJSON(w.Config, dt)
	if err != nil {
		return fail(err)
	}
	bos := w.Config.BOSTokenID
	genJSON, err := marshalGenerationConfig(GenerationConfig{BOSTokenID: &bos, EOSTokenIDs: w.Config.EOSTokenIDs, PadTokenID: w.Config.PadTokenID})
	if err != nil {
		return fail(err)
	}
	shards := planShards(w.Tensors, names, dt, opts.MaxShardSize)

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	meta := map[string]string{"format": "pt"} // transformers refuses safetensors files without it
	keep := map[string]bool{}
	if len(shards) == 1 {
		if err := writeSafetensors(filepath.Join(dir, WeightsFile), w.Tensors, names, dt, meta); err != nil {
			return err
		}
		keep[WeightsFile] = true
	} else {
		idx := shardIndex{Metadata: map[string]any{}, WeightMap: map[string]string{}}
		var total int64
		for i, shard := range shards {
			file := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
			if err := writeSafetensors(filepath.Join(dir, file), w.Tensors, shard, dt, meta); err != nil {
				return err
			}
			keep[file] = true
			for _, name := range shard {
				idx.WeightMap[name] = file
				total += int64(len(w.Tensors[name].Data)) * dt.size()
			}
		}
		idx.Metadata["total_size"] = total
		b, err := json.MarshalIndent(idx, "", "  ")
		if err != nil {
			return fail(err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, IndexFile), append(b, '\n')); err != nil {
			return err
		}
		keep[IndexFile] = true
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, GenerationConfigFile), genJSON); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFile), cfgJSON); err != nil {
		return err
	}
	return removeStale(dir, keep)
}

// configJSON is Config.MarshalHF with torch_dtype naming the written dtype, and, for a reward model,
// the id2label/label2id pair from which transformers derives num_labels.
func configJSON(c model.Config, dt dtype) ([]byte, error) {
	b, err := c.MarshalHF()
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["torch_dtype"] = json.RawMessage(strconv.Quote(dt.torchName()))
	if c.IsRewardModel() {
		m["id2label"] = json.RawMessage(`{"0":"LABEL_0"}`)
		m["label2id"] = json.RawMessage(`{"LABEL_0":0}`)
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// planShards groups names (sorted) into shards of at most max bytes each; max <= 0 means one shard.
func planShards(tensors map[string]*model.Tensor, names []string, dt dtype, max int64) [][]string {
	if max <= 0 {
		return [][]string{names}
	}
	var shards [][]string
	var cur []string
	var size int64
	for _, name := range names {
		n := int64(len(tensors[name].Data)) * dt.size()
		if len(cur) > 0 && size+n > max {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
		cur = append(cur, name)
		size += n
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	return shards
}

// removeStale deletes weight files of an earlier save that the new one did not write. A stale
// model.safetensors in particular would shadow a new sharded save, since loaders try it first.
func removeStale(dir string, keep map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("saving %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if keep[name] || !e.Type().IsRegular() {
			continue
		}
		if name == WeightsFile || name == IndexFile || shardName.MatchString(name) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("saving %s: removing stale %s: %w", dir, name, err)
			}
		}
	}
	return nil
}

// ParseSize parses a shard size as transformers' max_shard_size does: an integer followed by GB, MB
// or KB (powers of 1000) or GiB, MiB or KiB (powers of 1024), case-insensitive; with GB/MB/KB, a
// trailing lower-case "b" means bits (transformers divides by 8: "5Gb" is 625,000,000 bytes). A bare
// integer is a byte count.
func ParseSize(s string) (int64, error) {
	bad := func() (int64, error) {
		return 0, fmt.Errorf("size %q: want a positive integer with an optional unit, e.g. \"2GB\", \"500MB\" or \"10KiB\"", s)
	}
	t := strings.TrimSpace(s)
	up := strings.ToUpper(t)
	units := []struct {
		suffix string
		mult   int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}}
	num, mult, bits := t, int64(1), false
	for _, u := range units {
		if strings.HasSuffix(up, u.suffix) {
			num, mult = t[:len(t)-len(u.suffix)], u.mult
			bits = len(u.suffix) == 2 && strings.HasSuffix(t, "b")
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 {
		return bad()
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	v := n * mult
	if bits {
		v /= 8
	}
	if v <= 0 {
		return bad()
	}
	return v, nil
}

// TokenizerFiles are the tokenizer files transformers keeps next to a model (chat_template.jinja is
// where recent transformers versions store the chat template).
var TokenizerFiles = []string{"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
	"special_tokens_map.json", "added_tokens.json", "chat_template.jinja"}

// CopyTokenizerFiles copies each of TokenizerFiles present in srcDir to dstDir (created if needed),
// atomically per file. Copying a directory onto itself does nothing.
func CopyTokenizerFiles(srcDir, dstDir string) error {
	if a, err := os.Stat(srcDir); err != nil {
		return fmt.Errorf("copying tokenizer files: %w", err)
	} else if b, err := os.Stat(dstDir); err == nil && os.SameFile(a, b) {
		return nil
	}
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return fmt.Errorf("copying tokenizer files: %w", err)
	}
	for _, name := range TokenizerFiles {
		src := filepath.Join(srcDir, name)
		in, err := os.Open(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("copying tokenizer files: %w", err)
		}
		err = atomicfile.Write(filepath.Join(dstDir, name), func(w io.Writer) error {
			if _, err := io.Copy(w, in); err != nil {
				return fmt.Errorf("reading %s: %w", src, err)
			}
			return nil
		})
		in.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
