package gguf

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/infer"
)

// familyModels are small random models of the families beyond Llama 2/Mistral/Mixtral, each with every
// feature llama.cpp's architecture for it computes:
//   - llama3: rope_scaling llama3 (head_dim 32, theta 5e5, original 64: pairs 0-1 high frequency, 2
//     blended, 3-15 low), attention_bias (q/k/v/o biases, permuted with Q/K), head_dim 32 ≠ D/H = 16,
//     GQA 4:2, tied embeddings;
//   - qwen2: q/k/v biases, GQA 4:2, tied embeddings (llama.cpp's qwen2 needs head_dim = D/H);
//   - qwen3: q/k norms, head_dim 24 ≠ D/H = 16, GQA 4:2, untied head;
//   - qwen3moe: top-3 of 8 experts renormalised, moe_intermediate_size 40 ≠ intermediate_size 96, q/k
//     norms, head_dim 24, untied head.
func familyModels() map[string]model.Config {
	base := model.Config{
		VocabSize: 300, HiddenSize: 64, IntermediateSize: 96, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 16,
		RMSNormEps: 1e-6, RopeTheta: 1e6, MaxPositionEmbeddings: 512,
		BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
	llama3 := base
	llama3.Architectures, llama3.ModelType = []string{"LlamaForCausalLM"}, "llama"
	llama3.HeadDim, llama3.RopeTheta, llama3.TieWordEmbeddings, llama3.AttentionBias = 32, 5e5, true, true
	llama3.RopeScaling = &model.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64}
	qwen2 := base
	qwen2.Architectures, qwen2.ModelType, qwen2.TieWordEmbeddings = []string{"Qwen2ForCausalLM"}, "qwen2", true
	qwen3 := base
	qwen3.Architectures, qwen3.ModelType, qwen3.HeadDim = []string{"Qwen3ForCausalLM"}, "qwen3", 24
	qwen3moe := qwen3
	qwen3moe.Architectures, qwen3moe.ModelType = []string{"Qwen3MoeForCausalLM"}, "qwen3_moe"
	qwen3moe.NumLocalExperts, qwen3moe.NumExpertsPerTok, qwen3moe.MoEIntermediateSize = 8, 3, 40
	qwen3moe.NormTopKProb, qwen3moe.DecoderSparseStep, qwen3moe.RouterAuxLossCoef = true, 1, 0.001
	return map[string]model.Config{"llama3": llama3, "qwen2": qwen2, "qwen3": qwen3, "qwen3moe": qwen3moe}
}

// familyWeights are randomWeights with biases drawn like the matrices (randomWeights makes every 1-D
// tensor a gain near 1).
func familyWeights(t testing.TB, c model.Config, seed uint64) *model.Weights {
	w := randomWeights(t, c, seed, 0.2)
	rng := rand.New(rand.NewPCG(seed, 11))
	for _, name := range w.Names() {
		if strings.HasSuffix(name, ".bias") {
			for i := range w.Tensors[name].Data {
				w.Tensors[name].Data[i] = float32(0.2 * rng.NormFloat64())
			}
		}
	}
	return w
}

// TestFamiliesRoundTrip: HF safetensors → GGUF F32 → HF safetensors gives every tensor bit for bit and
// the same config.json, for each family; the GGUF carries the architecture's own names.
func TestFamiliesRoundTrip(t *testing.T) {
	for name, cfg := range familyModels() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			want := familyWeights(t, cfg, 5)
			if err := hf.Save(filepath.Join(dir, "hf"), want, hf.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			fromHF, err := hf.Load(filepath.Join(dir, "hf"))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, name+".gguf")
			if err := Write(path, fromHF, syntheticTokenizer(cfg.VocabSize), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if arch, _, _ := f.String("general.architecture"); arch != cfg.GGUFArch() {
				t.Errorf("general.architecture %q, want %q", arch, cfg.GGUFArch())
			}
			for _, n := range map[string][]string{
				"llama3":   {"rope_freqs.weight", "blk.1.attn_q.bias", "blk.1.attn_output.bias"},
				"qwen2":    {"blk.0.attn_k.bias", "blk.0.attn_v.bias"},
				"qwen3":    {"blk.1.attn_q_norm.weight", "blk.1.attn_k_norm.weight", "output.weight"},
				"qwen3moe": {"blk.1.ffn_gate_inp.weight", "blk.1.ffn_up_exps.weight", "blk.1.attn_k_norm.weight"},
			}[name] {
				if _, ok := f.Tensor(n); !ok {
					t.Errorf("tensor %s is missing", n)
				}
			}
			got, _, err := LoadWeights(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := hf.Save(filepath.Join(dir, "back"), got, hf.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			back, err := hf.Load(filepath.Join(dir, "back"))
			if err != nil {
				t.Fatal(err)
			}
			requireSameWeights(t, back, want)
			if !reflect.DeepEqual(back.Config, want.Config) {
				t.Errorf("config after HF → GGUF → HF:\n got  %+v\n want %+v", back.Config, want.Config)
			}
		})
	}
}

// TestWriteRefusesWhatLlamaCppComputesDifferently: one line each, naming the setting.
func TestWriteRefusesWhatLlamaCppComputesDifferently(t *testing.T) {
	m := familyModels()
	qwen3Bias := m["qwen3"]
	qwen3Bias.AttentionBias = true
	raw := m["qwen3moe"]
	raw.NormTopKProb = false
	dense := m["qwen3moe"]
	dense.MLPOnlyLayers = []int{0}
	wide := m["qwen2"]
	wide.HeadDim = 24
	for _, tc := range []struct {
		name string
		cfg  model.Config
		want string
	}{
		{"qwen3 attention bias", qwen3Bias, "llama.cpp's qwen3 architecture has no attention biases (attention_bias true)"},
		{"qwen3moe unnormalised", raw, "llama.cpp's qwen3moe architecture always renormalises the top-k routing weights (norm_topk_prob false)"},
		{"qwen3moe dense layer", dense, "llama.cpp's qwen3moe architecture makes every layer sparse (decoder_sparse_step 1, mlp_only_layers [0])"},
		{"qwen2 head_dim", wide, "llama.cpp's qwen2 architecture needs head_dim × num_attention_heads = hidden_size, got 24 × 4 ≠ 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.gguf")
			err := Write(path, familyWeights(t, tc.cfg, 1), syntheticTokenizer(tc.cfg.VocabSize), WriteOptions{})
			if want := "writing " + path + ": " + tc.want; err == nil || err.Error() != want {
				t.Fatalf("got %v\nwant %s", err, want)
			}
		})
	}
}

// TestLlamaCppFamilies: llama.cpp (node-llama-cpp, F32 KV cache, no flash attention) running our F32
// export of each family's random model gives alignkit's log-softmax (model/infer) within 1e-4 at every
// position of a 220-token sequence and every vocabulary entry, and the same 12-token greedy
// continuation; the training graph agrees with the engine on the same tokens.
func TestLlamaCppFamilies(t *testing.T) {
	script := llamaCppScript(t)
	names := []string{"llama3", "qwen2", "qwen3", "qwen3moe"}
	models := familyModels()
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			cfg := models[name]
			w := familyWeights(t, cfg, uint64(40+i))
			path := filepath.Join(t.TempDir(), name+".gguf")
			if err := Write(path, w, syntheticTokenizer(cfg.VocabSize), WriteOptions{Dtype: "f32"}); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, uint64(i)))
			tokens := []int32{1}
			for len(tokens) < 220 {
				tokens = append(tokens, int32(3+rng.IntN(cfg.VocabSize-3)))
			}
			const greedy = 12
			got := runLlamaCpp(t, script, path, tokens, greedy)
			worst := maxDiffVsInfer(t, w, tokens, got)
			t.Logf("%s: max |Δ log p| llama.cpp vs model/infer over %d positions × %d tokens: %.3g", name, len(tokens), cfg.VocabSize, worst)
			if worst > llamaCppTol {
				t.Errorf("llama.cpp differs from the Go forward pass by %.3g, tolerance %g", worst, llamaCppTol)
			}
			ours := greedyInfer(t, w, tokens, greedy)
			if !slices.Equal(ours, got.Greedy) {
				t.Errorf("greedy continuation: alignkit %v, llama.cpp %v", ours, got.Greedy)
			}
			graphVsEngine(t, w, tokens)
		})
	}
}

// greedyInfer is alignkit's greedy continuation: argmax of the last position's logits, appended, n
// times (a full forward pass per step, so no cache is involved).
func greedyInfer(t *testing.T, w *model.Weights, tokens []int32, n int) []int32 {
	t.Helper()
	eng, err := infer.New(w)
	if err != nil {
		t.Fatal(err)
	}
	seq := slices.Clone(tokens)
	var out []int32
	for range n {
		logits, err := eng.Forward(seq, nil)
		if err != nil {
			t.Fatal(err)
		}
		last := logits[len(logits)-1]
		best := 0
		for id, v := range last {
			if v > last[best] {
				best = id
			}
		}
		out = append(out, int32(best))
		seq = append(seq, int32(best))
	}
	return out
}

// graphVsEngine requires the training graph's logits to match the engine's within 1e-4.
func graphVsEngine(t *testing.T, w *model.Weights, tokens []int32) {
	t.Helper()
	eng, err := infer.New(w)
	if err != nil {
		t.Fatal(err)
	}
	want, err := eng.Forward(tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := model.Forward(w, tokens)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for p := range want {
		for v := range want[p] {
			worst = math.Max(worst, math.Abs(float64(got[p][v]-want[p][v])))
		}
	}
	if worst > 1e-4 {
		t.Errorf("training graph vs engine: max |Δ logit| %.3g", worst)
	}
	t.Logf("training graph vs engine: max |Δ logit| %.3g", worst)
}

// TestFamiliesNarrowRoundTrip: an F16 or Q8_0 export read back and exported again at the same dtype
// reads back bit for bit (the values are already representable), with biases, q/k norms and
// rope_freqs kept F32 as convert_hf_to_gguf.py keeps 1-D tensors.
func TestFamiliesNarrowRoundTrip(t *testing.T) {
	for name, cfg := range familyModels() {
		for _, dtype := range []string{"f16", "q8_0"} {
			t.Run(name+"/"+dtype, func(t *testing.T) {
				dir := t.TempDir()
				tok := syntheticTokenizer(cfg.VocabSize)
				first := filepath.Join(dir, "1.gguf")
				if err := Write(first, familyWeights(t, cfg, 6), tok, WriteOptions{Dtype: dtype}); err != nil {
					t.Fatal(err)
				}
				w1, _, err := LoadWeights(first)
				if err != nil {
					t.Fatal(err)
				}
				second := filepath.Join(dir, "2.gguf")
				if err := Write(second, w1, tok, WriteOptions{Dtype: dtype}); err != nil {
					t.Fatal(err)
				}
				w2, _, err := LoadWeights(second)
				if err != nil {
					t.Fatal(err)
				}
				requireSameWeights(t, w2, w1)
				f, err := Open(second)
				if err != nil {
					t.Fatal(err)
				}
				for _, ti := range f.Tensors {
					if len(ti.Dims) == 1 && ti.Type != TypeF32 {
						t.Errorf("%s is %s, want F32", ti.Name, ti.Type)
					}
				}
			})
		}
	}
}

// TestLoadLlama3WithoutAlignkitKeys reads a Llama 3 GGUF as llama.cpp's own converter writes it:
// rope_freqs.weight and no alignkit.rope_scaling.* keys. The parameters come back from the converter's
// defaults (low 1, high 4, original 8192) and the lowest frequency's factor; a file whose factors follow
// other parameters is refused, naming the first factor that differs.
func TestLoadLlama3WithoutAlignkitKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		rs   model.RopeScaling
		want string // error after "PATH: ", or "" to load
	}{
		{"llama 3.1 defaults", model.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}, ""},
		{"llama 3.2 factor 32", model.RopeScaling{RopeType: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}, ""},
		{"other original context", model.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 2048},
			// pair 6: wavelength 2π·5e5^(12/32) = 861.5, blended for original 2048 (smooth 0.459, factor
			// 1/((1-0.459)/8+0.459) = 1.899) but in the high band (< 2048) for the default 8192.
			"rope_freqs.weight[6] = 1.8988432884216309, but llama3 rope scaling with factor 8, low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192 gives 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := familyModels()["llama3"]
			cfg.HeadDim, cfg.MaxPositionEmbeddings = 32, 131072
			rs := tc.rs
			cfg.RopeScaling = &rs
			want := familyWeights(t, cfg, 8)
			var kvs []kv
			for _, e := range modelKV(cfg, "converted", fileTypeAllF32) {
				if !strings.HasPrefix(e.key, "alignkit.") {
					kvs = append(kvs, e)
				}
			}
			tkv, err := tokenizerKV(syntheticTokenizer(cfg.VocabSize), cfg.VocabSize)
			if err != nil {
				t.Fatal(err)
			}
			tensors := modelTensors(want)
			for i := range tensors {
				tensors[i].typ = TypeF32
			}
			path := filepath.Join(t.TempDir(), "converted.gguf")
			if err := writeFile(path, append(kvs, tkv...), tensors, defaultAlign); err != nil {
				t.Fatal(err)
			}
			got, _, err := LoadWeights(path)
			if tc.want != "" {
				if err == nil || err.Error() != path+": "+tc.want {
					t.Fatalf("got %v\nwant %s: %s", err, path, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Config.RopeScaling, cfg.RopeScaling) {
				t.Errorf("rope_scaling %+v, want %+v", got.Config.RopeScaling, cfg.RopeScaling)
			}
			requireSameWeights(t, got, want)
		})
	}
}
