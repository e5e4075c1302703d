package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/infer"
	"github.com/alignkit/alignkit/model/quant"
)

// engineLogProbs runs the inference engine over tokens and returns every position's log-softmax.
func engineLogProbs(t *testing.T, w *model.Weights, tokens []int32) [][]float64 {
	t.Helper()
	e, err := infer.New(w)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := e.Forward(tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float64, len(logits))
	for i, l := range logits {
		out[i] = infer.LogSoftmax(l)
	}
	return out
}

// stepLogProbs prefills the first 8 tokens into a session and feeds the rest one decode step at a time
// (one-row products: the fused dot path of frozen weights), returning the log-softmax after each.
func stepLogProbs(t *testing.T, w *model.Weights, tokens []int32) [][]float64 {
	t.Helper()
	e, err := infer.New(w)
	if err != nil {
		t.Fatal(err)
	}
	s := e.NewSession(len(tokens))
	logits, err := s.Prefill(tokens[:8], 0)
	if err != nil {
		t.Fatal(err)
	}
	out := [][]float64{infer.LogSoftmax(logits)}
	for _, tok := range tokens[8:] {
		if logits, err = s.Step(tok); err != nil {
			t.Fatal(err)
		}
		out = append(out, infer.LogSoftmax(logits))
	}
	return out
}

func maxLogProbDiff(a, b [][]float64) float64 {
	var worst float64
	for i := range a {
		for j := range a[i] {
			worst = max(worst, math.Abs(a[i][j]-b[i][j]))
		}
	}
	return worst
}

func testTokens(n, v int) []int32 {
	tokens := make([]int32, n)
	for i := range tokens {
		tokens[i] = int32(1 + (i*37+11)%(v-1))
	}
	return tokens
}

// requireFrozenMatches checks that frozen holds every linear weight as a quant.Matrix in the file's own
// type and size (no float32 data, no expansion), whose dequantised values are bit-identical to the float32 load dense, and
// that every other tensor is float32 and identical. It returns the frozen weights' bytes.
func requireFrozenMatches(t *testing.T, f *File, frozen, dense *model.Weights, ggName func(hf string) string) int64 {
	t.Helper()
	if err := frozen.Check("frozen"); err != nil {
		t.Fatal(err)
	}
	var held int64
	for _, name := range dense.Names() {
		d, z := dense.Tensors[name], frozen.Tensors[name]
		if !quant.IsLinear(name, d.Shape) {
			if z.Frozen != nil || bitsEqual(z, d) >= 0 {
				t.Fatalf("%s: not frozen and identical to the float32 load", name)
			}
			continue
		}
		m, ok := z.Frozen.(*quant.Matrix)
		if !ok || z.Data != nil {
			t.Fatalf("%s: frozen %T with %d float32 values, want a quant.Matrix only", name, z.Frozen, len(z.Data))
		}
		ti, _ := f.Tensor(ggName(name))
		if want := quantFormats[ti.Type]; m.Format() != want {
			t.Fatalf("%s: held as %s, the file has %s", name, m.Format(), ti.Type)
		}
		// The file's blocks as they are: a stacked expert tensor holds E matrices of its size / E.
		if perFile := int64(ti.Bytes()) * int64(d.Numel()) / int64(ti.Numel()); m.Bytes() != perFile {
			t.Fatalf("%s: holds %d bytes, its blocks in the file take %d", name, m.Bytes(), perFile)
		}
		back := &model.Tensor{Shape: d.Shape, Data: make([]float32, len(d.Data))}
		m.Dequantize(back.Data, 0, d.Shape[0])
		if i := bitsEqual(back, d); i >= 0 {
			t.Fatalf("%s: dequantised value %d is %v, the float32 load has %v", name, i, back.Data[i], d.Data[i])
		}
		held += m.Bytes()
	}
	return held
}

// ggNameOf maps a model's HF names to its GGUF's (the architecture table, as the loader's plan reads it).
func ggNameOf(c model.Config) func(string) string {
	names := map[string]string{model.LMHeadKey: "output.weight"}
	for l := 0; l < c.NumHiddenLayers; l++ {
		for _, lt := range c.LayerTensors(l) {
			names[lt.HF] = lt.GGUF
		}
	}
	return func(hf string) string { return names[hf] }
}

// TestFrozenStories writes stories260K as `alignkit export --dtype f16|q8_0` does (and as Q4_0) and opens it both ways:
// as float32 (LoadWeights) and as a frozen base (LoadWeightsWith Frozen), whose linear weights stay F16,
// Q8_0 or Q4_0 blocks (F16 for the 172-wide down projections, which cannot be cut into blocks of 32), Q/K rows
// un-permuted as whole rows of blocks. The frozen weights dequantise to exactly the float32 load, and the
// engine's log-probs agree within float32 summation-order rounding, over a whole sequence (1e-5; measured
// 0, the tiles' sgemm sums as the dense one does) and over decode steps with a KV cache (5e-5; measured
// up to 1e-5: the fused one-row kernels scale each block's sum once and use four accumulators, where the
// dense sgemv sums products in its own order, and logits of magnitude ~10 carry ~1e-6 rounding each).
func TestFrozenStories(t *testing.T) {
	w := loadStories(t)
	tok := storiesTokenizer(t)
	tokens := testTokens(40, w.Config.VocabSize)
	for _, dtype := range []string{"f16", "q8_0", "q4_0"} {
		path := filepath.Join(t.TempDir(), "stories-"+dtype+".gguf")
		if err := Write(path, w, tok, WriteOptions{Dtype: dtype}); err != nil {
			t.Fatal(err)
		}
		dense, _, err := LoadWeights(path)
		if err != nil {
			t.Fatal(err)
		}
		frozen, _, err := LoadWeightsWith(path, LoadOptions{Frozen: true})
		if err != nil {
			t.Fatal(err)
		}
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		held := requireFrozenMatches(t, f, frozen, dense, ggNameOf(w.Config))
		d := maxLogProbDiff(engineLogProbs(t, frozen, tokens), engineLogProbs(t, dense, tokens))
		ds := maxLogProbDiff(stepLogProbs(t, frozen, tokens), stepLogProbs(t, dense, tokens))
		t.Logf("%s: linear weights held in %d bytes; max |Δ log p| frozen vs float32 %.3g (forward), %.3g (decode steps)", dtype, held, d, ds)
		if d > 1e-5 || ds > 5e-5 {
			t.Errorf("%s: frozen log-probs differ from the float32 load's by %g (forward), %g (decode steps)", dtype, d, ds)
		}
	}
}

// ggmlEncode quantises x (rows of perRow values) with ggml's own quantize_row_*_ref through
// conformance/llamacpp/ggml_codec.py, or skips when python3 or node-llama-cpp's library is missing.
func ggmlEncode(t *testing.T, kind string, x []float32, perRow int) []byte {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("skipped: python3 is not on PATH")
	}
	dir := filepath.Join(sharedtest.RepoRoot(t), "conformance", "llamacpp")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@node-llama-cpp")); err != nil {
		t.Skipf("skipped: %s/node_modules is missing; run `npm ci --omit=optional` there to enable it", dir)
	}
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "in.f32"), filepath.Join(tmp, "out.bin")
	raw, err := encode(TypeF32, x)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(python, filepath.Join(dir, "ggml_codec.py"), kind, in, out, fmt.Sprint(perRow)).CombinedOutput(); err != nil {
		t.Fatalf("ggml_codec.py %s: %v: %s", kind, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFrozenGGMLQuants writes GGUFs whose matrices ggml itself quantised to Q4_0, Q4_K and Q6_K (mixed
// per tensor as llama.cpp's Q4_K_M does, with the head in Q6_K), for a Llama and a Mixtral with stacked
// experts, and opens them as a frozen base and as float32: the frozen blocks dequantise bit-exactly to
// the float32 load (so Q/K rows and experts were moved as whole rows of blocks), and the engine's
// log-probs agree within 1e-5.
func TestFrozenGGMLQuants(t *testing.T) {
	llama := model.Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 300, HiddenSize: 256, IntermediateSize: 512, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 64,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 64,
		BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
	mixtral := mixtralConfig() // 64 wide: Q4_0 blocks of 32 (the k-quants need rows of 256)
	types := map[string]map[string]string{
		"llama": {
			"attn_q": "q4_k", "attn_k": "q4_0", "attn_v": "q6_k", "attn_output": "q4_k",
			"ffn_gate": "q4_k", "ffn_up": "q4_0", "ffn_down": "q6_k", "output": "q6_k",
		},
		"mixtral": {
			"attn_q": "q4_0", "attn_k": "q4_0", "attn_v": "q4_0", "attn_output": "q4_0", "ffn_gate_inp": "q4_0",
			"ffn_gate_exps": "q4_0", "ffn_up_exps": "q4_0", "ffn_down_exps": "q4_0", "output": "q4_0",
		},
	}
	ids := map[string]GGMLType{"q4_0": TypeQ4_0, "q4_k": TypeQ4_K, "q6_k": TypeQ6_K}
	for _, c := range []struct {
		name string
		cfg  model.Config
	}{{"llama", llama}, {"mixtral", mixtral}} {
		t.Run(c.name, func(t *testing.T) {
			w := randomWeights(t, c.cfg, 5, 0.05)
			tensors := modelTensors(w)
			// One ggml_codec.py call per (type, row length): rows quantise independently.
			type group struct {
				kind   string
				perRow int
			}
			members := map[group][]int{}
			var order []group
			for i := range tensors {
				tn := &tensors[i]
				short := tn.name
				if strings.HasPrefix(short, "blk.") {
					short = short[strings.IndexByte(short[4:], '.')+5:]
				}
				tn.typ = TypeF32
				if kind, ok := types[c.name][strings.TrimSuffix(short, ".weight")]; ok {
					tn.typ = ids[kind]
					g := group{kind, int(tn.dims[0])}
					if members[g] == nil {
						order = append(order, g)
					}
					members[g] = append(members[g], i)
				}
			}
			for _, g := range order {
				var x []float32
				for _, i := range members[g] {
					x = append(x, tensors[i].data...)
				}
				raw := ggmlEncode(t, g.kind, x, g.perRow)
				tr := ggmlTypes[ids[g.kind]]
				for _, i := range members[g] {
					n := tensors[i].numel() / tr.blockSize * tr.blockBytes
					tensors[i].raw, raw = raw[:n:n], raw[n:]
				}
			}
			path := filepath.Join(t.TempDir(), c.name+".gguf")
			kvs := append(modelKV(c.cfg, c.name, fileTypeAllF32), mustTokenizerKV(t, syntheticTokenizer(c.cfg.VocabSize), c.cfg.VocabSize)...)
			if err := writeFile(path, kvs, tensors, defaultAlign); err != nil {
				t.Fatal(err)
			}
			dense, _, err := LoadWeights(path)
			if err != nil {
				t.Fatal(err)
			}
			frozen, _, err := LoadWeightsWith(path, LoadOptions{Frozen: true})
			if err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			held := requireFrozenMatches(t, f, frozen, dense, ggNameOf(c.cfg))
			tokens := testTokens(24, c.cfg.VocabSize)
			d := maxLogProbDiff(engineLogProbs(t, frozen, tokens), engineLogProbs(t, dense, tokens))
			t.Logf("linear weights held in %d bytes; max |Δ log p| frozen vs float32 %.3g", held, d)
			if d > 1e-5 {
				t.Errorf("frozen log-probs differ from the float32 load's by %g", d)
			}
		})
	}
}

func mustTokenizerKV(t *testing.T, tok *TokenizerInfo, v int) []kv {
	t.Helper()
	kvs, err := tokenizerKV(tok, v)
	if err != nil {
		t.Fatal(err)
	}
	return kvs
}

// TestFrozenUnsupportedType relabels stories260K's blk.0.attn_q.weight (64×64 F16, 8192 bytes) as Q5_0, a
// ggml type the parser size-checks (128 blocks of 22 bytes fit) but alignkit cannot compute with: both
// loads refuse it in one line naming the tensor, its type and the supported types, before reading data.
func TestFrozenUnsupportedType(t *testing.T) {
	w := loadStories(t)
	path := filepath.Join(t.TempDir(), "stories.gguf")
	if err := Write(path, w, storiesTokenizer(t), WriteOptions{Dtype: "f16"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := "blk.0.attn_q.weight"
	off := bytes.Index(raw, []byte(name)) + len(name) + 4 + 2*8 // n_dims, then two dims
	if got := binary.LittleEndian.Uint32(raw[off:]); got != uint32(TypeF16) {
		t.Fatalf("type field reads %d, want F16", got)
	}
	binary.LittleEndian.PutUint32(raw[off:], 6) // Q5_0
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	want := path + `: tensor "blk.0.attn_q.weight": type Q5_0 cannot be read (alignkit reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)`
	for _, frozen := range []bool{false, true} {
		if _, _, err := LoadWeightsWith(path, LoadOptions{Frozen: frozen}); err == nil || err.Error() != want {
			t.Errorf("frozen %v: error %v, want %s", frozen, err, want)
		}
	}
}

// TestWriteFrozen: a frozen base has no float32 values to export; Write refuses it in one line naming a
// frozen tensor, and after quant.Dense the same weights write and read back as their dequantised values.
func TestWriteFrozen(t *testing.T) {
	w := randomWeights(t, gqaConfig(), 3, 0.05)
	if err := quant.Quantize(w, quant.Q8_0, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "frozen.gguf")
	want := "writing " + path + `: tensor "model.layers.0.mlp.down_proj.weight" is a frozen base weight with no float32 values; convert the weights with quant.Dense first`
	if err := Write(path, w, syntheticTokenizer(w.Config.VocabSize), WriteOptions{}); err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	if err := quant.Dense(w); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, w, syntheticTokenizer(w.Config.VocabSize), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	back, _, err := LoadWeights(path)
	if err != nil {
		t.Fatal(err)
	}
	requireSameWeights(t, back, w)
}
