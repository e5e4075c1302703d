package hf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
)

func storiesDir(t *testing.T) string {
	return filepath.Join(sharedtest.Dir(t), "models", "stories260K")
}

// rawF32 reads element idx of a tensor from a safetensors file with nothing but encoding/json and
// encoding/binary, independently of this package's reader.
func rawF32(t *testing.T, path, name string, idx int) uint32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data[:8])
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	var e struct {
		Dtype       string  `json:"dtype"`
		DataOffsets []int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(hdr[name], &e); err != nil || e.Dtype != "F32" {
		t.Fatalf("%s: entry %s: %v", name, hdr[name], err)
	}
	off := 8 + int64(n) + e.DataOffsets[0] + 4*int64(idx)
	return binary.LittleEndian.Uint32(data[off:])
}

func TestLoadStories260K(t *testing.T) {
	dir := storiesDir(t)
	w, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := w.Config
	fields := []struct {
		name      string
		got, want any
	}{
		{"architectures", c.Architectures, []string{"LlamaForCausalLM"}},
		{"model_type", c.ModelType, "llama"},
		{"hidden_size", c.HiddenSize, 64},
		{"num_hidden_layers", c.NumHiddenLayers, 5},
		{"num_attention_heads", c.NumAttentionHeads, 8},
		{"num_key_value_heads", c.NumKeyValueHeads, 4},
		{"head_dim", c.HeadDim, 8},
		{"intermediate_size", c.IntermediateSize, 172},
		{"vocab_size", c.VocabSize, 512},
		{"tie_word_embeddings", c.TieWordEmbeddings, true},
		{"max_position_embeddings", c.MaxPositionEmbeddings, 512},
		{"rope_theta", c.RopeTheta, 10000.0},
		{"rms_norm_eps", c.RMSNormEps, 1e-5},
		{"bos_token_id", c.BOSTokenID, 1},
		{"eos_token_id", c.EOSTokenIDs, []int{2}},
	}
	for _, f := range fields {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	// 2 outside the layers (embeddings, final norm; no lm_head: tied) + 9 per layer.
	if len(w.Tensors) != 2+5*9 {
		t.Errorf("%d tensors, want 47", len(w.Tensors))
	}
	shapes := []struct {
		name  string
		shape []int
	}{
		{"model.embed_tokens.weight", []int{512, 64}},
		{"model.norm.weight", []int{64}},
		{"model.layers.0.self_attn.q_proj.weight", []int{64, 64}},
		{"model.layers.3.self_attn.k_proj.weight", []int{32, 64}}, // 4 KV heads × head_dim 8
		{"model.layers.4.self_attn.v_proj.weight", []int{32, 64}},
		{"model.layers.1.mlp.gate_proj.weight", []int{172, 64}},
		{"model.layers.2.mlp.down_proj.weight", []int{64, 172}},
		{"model.layers.4.post_attention_layernorm.weight", []int{64}},
	}
	for _, s := range shapes {
		if got := w.Tensors[s.name]; got == nil || !reflect.DeepEqual(got.Shape, s.shape) {
			t.Errorf("%s: got %v, want shape %v", s.name, got, s.shape)
		}
	}
	if _, ok := w.Tensors[model.LMHeadKey]; ok {
		t.Error("lm_head.weight present for a tied model")
	}
	// Known values: the bit patterns were read with Python's struct module from the same file; the
	// test also re-reads them with its own json+binary code.
	file := filepath.Join(dir, WeightsFile)
	known := []struct {
		name string
		idx  int
		bits uint32
	}{
		{"model.embed_tokens.weight", 0, 0xbe96e950},                     // -0.29474878
		{"model.embed_tokens.weight", 511*64 + 63, 0xbed91acd},           // -0.4240326, last element
		{"model.norm.weight", 0, 0x401d54ef},                             // 2.458309
		{"model.layers.2.self_attn.k_proj.weight", 5*64 + 7, 0x3e464dbb}, // row 5, col 7: 0.19365589
		{"model.layers.4.mlp.down_proj.weight", 64*172 - 1, 0xbb65d38b},  // -0.0035068716
	}
	for _, k := range known {
		if raw := rawF32(t, file, k.name, k.idx); raw != k.bits {
			t.Errorf("%s[%d]: independent reader gives %#x, want %#x", k.name, k.idx, raw, k.bits)
		}
		if got := math.Float32bits(w.Tensors[k.name].Data[k.idx]); got != k.bits {
			t.Errorf("%s[%d] = %#x, want %#x", k.name, k.idx, got, k.bits)
		}
	}
}

func loadStories(t *testing.T) *model.Weights {
	t.Helper()
	w, err := Load(storiesDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func assertBitIdentical(t *testing.T, a, b *model.Weights) {
	t.Helper()
	if !reflect.DeepEqual(a.Config, b.Config) {
		t.Errorf("config differs:\n%+v\n%+v", a.Config, b.Config)
	}
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d tensors vs %d", len(a.Tensors), len(b.Tensors))
	}
	for name, ta := range a.Tensors {
		tb := b.Tensors[name]
		if tb == nil || !sameBits(ta, tb) {
			t.Errorf("tensor %q differs", name)
		}
	}
}

// saveLoadIdentical saves w into dir, loads it back, checks that the round trip is bit-identical and
// left no temporary file, and returns what it loaded.
func saveLoadIdentical(t *testing.T, dir string, w *model.Weights, opts SaveOptions) *model.Weights {
	t.Helper()
	if err := Save(dir, w, opts); err != nil {
		t.Fatal(err)
	}
	w2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	assertBitIdentical(t, w, w2)
	assertNoTemp(t, dir)
	return w2
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveRoundTripF32(t *testing.T) {
	w := loadStories(t)
	dir := t.TempDir()
	w2 := saveLoadIdentical(t, dir, w, SaveOptions{})
	if got, want := listDir(t, dir), []string{ConfigFile, GenerationConfigFile, WeightsFile}; !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}

	// The reference file was written by Python's safetensors (F32, names sorted, __metadata__
	// {"format":"pt"}, header padded with spaces to 8 bytes): our writer produces the same bytes.
	ref, err := os.ReadFile(filepath.Join(storiesDir(t), WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, ref) {
		t.Errorf("re-saved model.safetensors (%d bytes) differs from the reference (%d bytes)", len(got), len(ref))
	}

	// Deterministic bytes: a second save writes the same files.
	dir2 := t.TempDir()
	if err := Save(dir2, w2, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ConfigFile, GenerationConfigFile, WeightsFile} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(dir2, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two saves of the same weights", f)
		}
	}
	gen, _ := os.ReadFile(filepath.Join(dir, GenerationConfigFile))
	if want := "{\n  \"_from_model_config\": true,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n"; string(gen) != want {
		t.Errorf("generation_config.json =\n%s\nwant\n%s", gen, want)
	}
}

func TestSaveSharded(t *testing.T) {
	w := loadStories(t)
	dir := t.TempDir()
	// 1,040,128 bytes of F32 in name order: the 131,072-byte embeddings then layer 0..4 blocks of
	// 181,760 bytes and the 256-byte final norm; 300,000 bytes per shard gives 4 shards.
	if err := Save(dir, w, SaveOptions{MaxShardSize: 300_000}); err != nil {
		t.Fatal(err)
	}
	assertNoTemp(t, dir)
	data, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Metadata struct {
			TotalSize int64 `json:"total_size"`
		} `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Metadata.TotalSize != 1_040_128 {
		t.Errorf("total_size %d, want 1040128 (the reference file's data section)", idx.Metadata.TotalSize)
	}
	if len(idx.WeightMap) != len(w.Tensors) {
		t.Errorf("weight_map has %d entries, want %d", len(idx.WeightMap), len(w.Tensors))
	}
	files := map[string]int64{}
	for name, f := range idx.WeightMap {
		if w.Tensors[name] == nil {
			t.Errorf("weight_map lists unknown tensor %q", name)
			continue
		}
		files[f] += int64(4 * len(w.Tensors[name].Data))
	}
	if len(files) < 3 {
		t.Fatalf("%d shards, want >= 3", len(files))
	}
	for f, size := range files {
		if !shardName.MatchString(f) || !strings.HasSuffix(f, "-of-0000"+string(rune('0'+len(files)))+".safetensors") {
			t.Errorf("shard name %q, want model-0000i-of-0000%d.safetensors", f, len(files))
		}
		if size > 300_000 {
			t.Errorf("shard %s holds %d bytes, over the 300000 limit", f, size)
		}
		ts, err := ReadSafetensors(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		for name := range ts {
			if idx.WeightMap[name] != f {
				t.Errorf("%s holds %q, index says %s", f, name, idx.WeightMap[name])
			}
		}
	}
	w2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	assertBitIdentical(t, w, w2)

	// Saving unsharded into the same directory removes the shards and the index, which would
	// otherwise be stale next to the new model.safetensors.
	if err := Save(dir, w2, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := listDir(t, dir), []string{ConfigFile, GenerationConfigFile, WeightsFile}; !reflect.DeepEqual(got, want) {
		t.Errorf("after an unsharded re-save: files %v, want %v", got, want)
	}
	// And the other way round: a stale model.safetensors would shadow the shards for any loader.
	if err := Save(dir, w2, SaveOptions{MaxShardSize: 300_000}); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir, WeightsFile)) {
		t.Error("model.safetensors left next to a sharded save")
	}
	// A limit the whole model fits under writes one plain file, as huggingface_hub does.
	one := t.TempDir()
	if err := Save(one, w2, SaveOptions{MaxShardSize: 2_000_000}); err != nil {
		t.Fatal(err)
	}
	if got, want := listDir(t, one), []string{ConfigFile, GenerationConfigFile, WeightsFile}; !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

func TestPlanShards(t *testing.T) {
	ts := map[string]*model.Tensor{
		"a": {Shape: []int{10}, Data: make([]float32, 10)}, // 40 bytes as F32
		"b": {Shape: []int{10}, Data: make([]float32, 10)},
		"c": {Shape: []int{30}, Data: make([]float32, 30)}, // 120: over the limit alone
		"d": {Shape: []int{5}, Data: make([]float32, 5)},
	}
	names := []string{"a", "b", "c", "d"}
	cases := []struct {
		max  int64
		want [][]string
	}{
		{0, [][]string{{"a", "b", "c", "d"}}},
		{1000, [][]string{{"a", "b", "c", "d"}}},
		{80, [][]string{{"a", "b"}, {"c"}, {"d"}}}, // a+b = 80 fits exactly; c gets its own shard
		{60, [][]string{{"a"}, {"b"}, {"c"}, {"d"}}},
	}
	for _, c := range cases {
		if got := planShards(ts, names, dtF32, c.max); !reflect.DeepEqual(got, c.want) {
			t.Errorf("max %d: %v, want %v", c.max, got, c.want)
		}
	}
	// As BF16 the sizes halve: a+b+d = 50 bytes, and c (60) no longer fits beside them.
	if got, want := planShards(ts, names, dtBF16, 50), [][]string{{"a", "b"}, {"c"}, {"d"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("bf16: %v, want %v", got, want)
	}
}

// bf16Nearest rounds to bfloat16 by comparing distances in float64, an independent derivation of
// round-to-nearest-even: the two candidates are x truncated to 16 bits and the next bfloat16 away
// from zero; a tie goes to the one whose last kept bit is 0.
func bf16Nearest(x float32) float32 {
	u := math.Float32bits(x)
	lo := math.Float32frombits(u &^ 0xffff)
	hi := math.Float32frombits(u&^0xffff + 0x10000)
	dl := math.Abs(float64(x) - float64(lo))
	dh := math.Abs(float64(hi) - float64(x))
	switch {
	case dl < dh:
		return lo
	case dh < dl:
		return hi
	case u&0x10000 == 0:
		return lo
	}
	return hi
}

func TestSaveBF16AndF16(t *testing.T) {
	w := loadStories(t)
	for _, c := range []struct {
		dtype, torch, st string
		round            func(float32) float32
	}{
		{"bf16", "bfloat16", "BF16", bf16Nearest},
		{"f16", "float16", "F16", func(x float32) float32 { return f16Reference(x) }},
	} {
		t.Run(c.dtype, func(t *testing.T) {
			dir := t.TempDir()
			if err := Save(dir, w, SaveOptions{Dtype: c.dtype}); err != nil {
				t.Fatal(err)
			}
			w2, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			changed := 0
			for name, t1 := range w.Tensors {
				t2 := w2.Tensors[name]
				for i, v := range t1.Data {
					if want := c.round(v); math.Float32bits(t2.Data[i]) != math.Float32bits(want) {
						t.Fatalf("%s[%d]: %v saved as %s reads back %v, want %v", name, i, v, c.dtype, t2.Data[i], want)
					}
					if t2.Data[i] != v {
						changed++
					}
				}
			}
			if changed == 0 {
				t.Errorf("no value changed: the file was not written as %s", c.dtype)
			}
			cfg, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
			if !strings.Contains(string(cfg), `"torch_dtype": "`+c.torch+`"`) {
				t.Errorf("config.json lacks torch_dtype %q:\n%s", c.torch, cfg)
			}
			sf, err := openSafetensors(filepath.Join(dir, WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			defer sf.f.Close()
			for _, info := range sf.tensors {
				if string(info.Dtype) != c.st {
					t.Fatalf("%s stored as %s, want %s", info.Name, info.Dtype, c.st)
				}
			}

			// Values already representable in the narrow type round-trip exactly: save the
			// rounded weights again and nothing moves.
			dir2 := t.TempDir()
			if err := Save(dir2, w2, SaveOptions{Dtype: c.dtype}); err != nil {
				t.Fatal(err)
			}
			w3, err := Load(dir2)
			if err != nil {
				t.Fatal(err)
			}
			assertBitIdentical(t, w2, w3)
		})
	}
}

func TestSaveRejectsBeforeWriting(t *testing.T) {
	base := loadStories(t)
	parent := t.TempDir()
	file := filepath.Join(parent, "plainfile")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	overflow := base.Clone()
	overflow.Tensors["model.norm.weight"].Data[3] = 70000 // F16's largest finite value is 65504
	nan := base.Clone()
	nan.Tensors["model.norm.weight"].Data[5] = float32(math.NaN())
	wrongShape := base.Clone()
	wrongShape.Tensors["model.norm.weight"] = model.NewTensor(65)
	nilTensor := base.Clone()
	nilTensor.Tensors["model.norm.weight"] = nil

	out := filepath.Join(parent, "out")
	cases := []struct {
		name string
		dir  string
		w    *model.Weights
		opts SaveOptions
		want string
	}{
		{"dir is a file", file, base, SaveOptions{}, "saving " + file + ": mkdir " + file + ": not a directory"},
		{"dir under a file", filepath.Join(file, "sub"), base, SaveOptions{}, "saving " + file + "/sub: mkdir " + file + ": not a directory"},
		{"f16 overflow", out, overflow, SaveOptions{Dtype: "f16"}, "saving " + out + `: tensor "model.norm.weight": value 70000 at index 3 overflows F16`},
		{"nan", out, nan, SaveOptions{}, "saving " + out + `: tensor "model.norm.weight" holds NaN at index 5`},
		{"wrong shape", out, wrongShape, SaveOptions{}, "saving " + out + `: tensor "model.norm.weight" has shape [65], config.json implies [64]`},
		{"nil tensor", out, nilTensor, SaveOptions{}, "saving " + out + `: tensor "model.norm.weight" is nil`},
		{"unknown dtype", out, base, SaveOptions{Dtype: "q8"}, "saving " + out + `: unknown dtype "q8" (want f32, bf16 or f16)`},
		{"no weights", out, nil, SaveOptions{}, "saving " + out + ": no weights"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Save(c.dir, c.w, c.opts)
			if err == nil || err.Error() != c.want {
				t.Fatalf("error %v\nwant     %s", err, c.want)
			}
			// Nothing at all was written: no output dir, no stray files next to the plain file.
			if got := listDir(t, parent); !reflect.DeepEqual(got, []string{"plainfile"}) {
				t.Errorf("parent holds %v after a failed save", got)
			}
		})
	}
}
