package dpo

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/alignkit/alignkit/internal/atomicfile"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// The reference log-prob cache.
//
// precompute_ref_log_probs scores every pair with the reference model once and stores the result
// in <ref_cache_dir>/<key>.bin, where key is the SHA-256 of everything the numbers depend on:
//
//   - the data: the bytes of dataset_name (and eval_dataset_name), the column mapping, eval_split
//     with its seed, and max_train_samples / max_eval_samples, which together fix the pairs and
//     their order;
//   - the tokenization: the chat template's source and special tokens, the tokenizer (its files,
//     pieces, merges and BOS/EOS settings), max_length and max_prompt_length;
//   - the reference weights: every tensor's name, shape and values, and the model config.
//
// The loss keys (beta, loss_type, label_smoothing, rpo_alpha) and the training keys are not part of
// it: the reference log-probs do not depend on them, so a rerun that changes them reuses the cache.
// The file is written atomically and ends with a SHA-256 of its contents; a file that fails that
// check is recomputed and replaced.

const (
	cacheMagic   = "AKDPOREF"
	cacheVersion = 1
	recordSize   = 8 + 8 + 4 + 4
)

// cacheKey is serialised to JSON and hashed; field order is fixed by the struct.
type cacheKey struct {
	Format          string       `json:"format"`
	Train           datasetKey   `json:"train"`
	Eval            *datasetKey  `json:"eval,omitempty"`
	EvalSplit       float64      `json:"eval_split"`
	SplitSeed       uint64       `json:"split_seed"`
	MaxTrainSamples int          `json:"max_train_samples"`
	MaxEvalSamples  int          `json:"max_eval_samples"`
	Columns         [][2]string  `json:"columns"`
	Template        *templateKey `json:"template,omitempty"`
	Tokenizer       string       `json:"tokenizer"`
	MaxLength       int          `json:"max_length"`
	MaxPromptLength int          `json:"max_prompt_length"`
	Reference       string       `json:"reference"`
}

type datasetKey struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

type templateKey struct {
	Source string `json:"source"`
	BOS    string `json:"bos"`
	EOS    string `json:"eos"`
}

// hex is the key's file name stem.
func (k *cacheKey) hex() (string, error) {
	b, err := json.Marshal(k)
	if err != nil {
		return "", fmt.Errorf("reference cache key: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// fileKey hashes a data file's bytes.
func fileKey(path string) (datasetKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return datasetKey{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return datasetKey{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	return datasetKey{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// tokenizerHash covers what decides the token ids: the files the tokenizer was read from (when it
// came from files) and its vocabulary, merges and BOS/EOS behaviour (which is all a GGUF carries).
func tokenizerHash(tok *tokenizer.Tokenizer) (string, error) {
	h := sha256.New()
	files := append([]string(nil), tok.Files()...)
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("hashing tokenizer file %s: %w", f, err)
		}
		fmt.Fprintf(h, "file %s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	tokens, scores, types := tok.Pieces()
	for i, t := range tokens {
		fmt.Fprintf(h, "piece %q", t)
		if i < len(scores) {
			fmt.Fprintf(h, " %08x", math.Float32bits(scores[i]))
		}
		if i < len(types) {
			fmt.Fprintf(h, " %d", types[i])
		}
		h.Write([]byte{'\n'})
	}
	for _, m := range tok.Merges() {
		fmt.Fprintf(h, "merge %q\n", m)
	}
	fmt.Fprintf(h, "kind %s bos %d eos %d addbos %v addeos %v prefix %v ws %v eosids %v\n", tok.Kind(), tok.BOS(), tok.EOS(),
		tok.AddBOS(), tok.AddEOS(), tok.AddSpacePrefix(), tok.RemoveExtraWhitespaces(), tok.EOSIDs())
	return hex.EncodeToString(h.Sum(nil)), nil
}

// weightsHash covers the config and every tensor, in name order, value by value.
func weightsHash(w *model.Weights) (string, error) {
	h := sha256.New()
	cfg, err := json.Marshal(w.Config)
	if err != nil {
		return "", fmt.Errorf("hashing reference config: %w", err)
	}
	h.Write(cfg)
	buf := make([]byte, 0, 1<<16)
	for _, name := range w.Names() {
		t := w.Tensors[name]
		fmt.Fprintf(h, "\ntensor %s %v\n", name, t.Shape)
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				h.Write(buf)
				buf = buf[:0]
			}
		}
		h.Write(buf)
		buf = buf[:0]
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// errCacheInvalid marks a cache file that exists but cannot be used (it is then recomputed).
var errCacheInvalid = errors.New("invalid reference cache file")

// readCache loads the cached log-probs for key. A missing file returns (nil, nil, nil).
func readCache(path, key string, nTrain, nEval int) (train, eval []pairLogps, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading reference cache %s: %w", path, err)
	}
	bad := func(why string, a ...any) error {
		return fmt.Errorf("%w %s: %s", errCacheInvalid, path, fmt.Sprintf(why, a...))
	}
	head := len(cacheMagic) + 4 + 32 + 8 + 8
	if len(b) < head+sha256.Size {
		return nil, nil, bad("%d bytes, too short", len(b))
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, nil, bad("checksum mismatch")
	}
	if string(body[:len(cacheMagic)]) != cacheMagic {
		return nil, nil, bad("not a reference cache file")
	}
	r := body[len(cacheMagic):]
	if v := binary.LittleEndian.Uint32(r); v != cacheVersion {
		return nil, nil, bad("version %d, want %d", v, cacheVersion)
	}
	if hex.EncodeToString(r[4:36]) != key {
		return nil, nil, bad("written for another key")
	}
	nt, ne := binary.LittleEndian.Uint64(r[36:]), binary.LittleEndian.Uint64(r[44:])
	if nt != uint64(nTrain) || ne != uint64(nEval) {
		return nil, nil, bad("%d train and %d eval pairs, want %d and %d", nt, ne, nTrain, nEval)
	}
	r = r[52:]
	if len(r) != (nTrain+nEval)*recordSize {
		return nil, nil, bad("%d bytes of records, want %d", len(r), (nTrain+nEval)*recordSize)
	}
	all := make([]pairLogps, nTrain+nEval)
	for i := range all {
		rec := r[i*recordSize:]
		all[i] = pairLogps{
			Chosen:         math.Float64frombits(binary.LittleEndian.Uint64(rec)),
			Rejected:       math.Float64frombits(binary.LittleEndian.Uint64(rec[8:])),
			ChosenTokens:   binary.LittleEndian.Uint32(rec[16:]),
			RejectedTokens: binary.LittleEndian.Uint32(rec[20:]),
		}
	}
	return all[:nTrain:nTrain], all[nTrain:], nil
}

// writeCache stores the log-probs atomically (a temporary file beside path, then a rename), so a
// concurrent or interrupted run never sees half a file.
func writeCache(path, key string, train, eval []pairLogps) error {
	raw, err := hex.DecodeString(key)
	if err != nil || len(raw) != 32 {
		return fmt.Errorf("reference cache key %q: want 64 hex digits", key)
	}
	b := make([]byte, 0, len(cacheMagic)+52+(len(train)+len(eval))*recordSize+sha256.Size)
	b = append(b, cacheMagic...)
	b = binary.LittleEndian.AppendUint32(b, cacheVersion)
	b = append(b, raw...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(train)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(eval)))
	for _, set := range [][]pairLogps{train, eval} {
		for _, p := range set {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Chosen))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Rejected))
			b = binary.LittleEndian.AppendUint32(b, p.ChosenTokens)
			b = binary.LittleEndian.AppendUint32(b, p.RejectedTokens)
		}
	}
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("reference cache: %w", err)
	}
	if err := atomicfile.WriteFile(path, b); err != nil {
		return fmt.Errorf("writing reference cache %s: %w", path, err)
	}
	return nil
}

// isInvalid reports whether err says a cache file is unusable (as opposed to unreadable).
func isInvalid(err error) bool { return errors.Is(err, errCacheInvalid) }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
