package infer

import (
	"math"
	"path/filepath"
	"sort"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/hf"
)

// loadStories loads the real stories260K checkpoint from ../shared through model/hf.
func loadStories(t testing.TB) *Engine {
	t.Helper()
	w, err := hf.Load(filepath.Join(sharedtest.Dir(t), "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(w)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// testConfig is a small model of the given family; window and experts are switched on by the caller.
func testConfig(arch string) model.Config {
	c := model.Config{
		Architectures: []string{arch}, VocabSize: 61, HiddenSize: 24, IntermediateSize: 40,
		NumHiddenLayers: 2, NumAttentionHeads: 6, NumKeyValueHeads: 2, HeadDim: 6,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 64, BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
	switch arch {
	case "MistralForCausalLM":
		c.ModelType = "mistral"
		c.SlidingWindow = 5
	case "MixtralForCausalLM":
		c.ModelType = "mixtral"
		c.NumLocalExperts, c.NumExpertsPerTok = 4, 2
	case "LlamaForSequenceClassification":
		c.ModelType = "llama"
		c.NumLabels = 1
	default:
		c.ModelType = "llama"
	}
	return c
}

// randomEngine builds an engine on InitRandom weights with a large init (0.2) so that logits spread out
// and attention is far from uniform.
func randomEngine(t testing.TB, c model.Config, seed uint64) (*Engine, *model.Weights) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w := model.InitRandom(c, seed, 0.2)
	// Non-trivial RMSNorm gains, so that a wrong norm weight would show.
	for _, name := range w.Names() {
		if tt := w.Tensors[name]; len(tt.Shape) == 1 {
			for i := range tt.Data {
				tt.Data[i] = 1 + 0.1*float32(math.Sin(float64(7*i+len(name))))
			}
		}
	}
	e, err := New(w)
	if err != nil {
		t.Fatal(err)
	}
	return e, w
}

func randomTokens(n, V int, seed int) []int32 {
	out := make([]int32, n)
	x := uint32(seed*2654435761 + 12345)
	for i := range out {
		x = x*1664525 + 1013904223
		out[i] = int32((x >> 8) % uint32(V))
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// topIDs returns the k ids with the largest values, largest first.
func topIDs(v []float64, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] > v[idx[b]] })
	return idx[:k]
}

// familyConfig is a small model of one of the families beyond Llama 2/Mistral/Mixtral, with that
// family's features on: Llama 3's rope_scaling (hd 8 and original_max_position_embeddings 1024 put
// the four frequencies in the high, high, blended and low bands) with attention biases and tied
// embeddings; Qwen2's q/k/v biases; Qwen3's q/k norms with head_dim 8 ≠ D/H = 4; Qwen3-MoE top-3 of 6
// experts, unnormalised or renormalised, with a dense layer (mlp_only_layers or decoder_sparse_step).
func familyConfig(name string) model.Config {
	c := testConfig("LlamaForCausalLM")
	switch name {
	case "llama3":
		c.HeadDim, c.RopeTheta, c.TieWordEmbeddings, c.AttentionBias = 8, 10000, true, true
		c.RopeScaling = &model.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 8, OriginalMaxPositionEmbeddings: 1024}
	case "qwen2":
		c.Architectures, c.ModelType = []string{"Qwen2ForCausalLM"}, "qwen2"
		c.HeadDim = 4
	case "qwen3", "qwen3-bias":
		c.Architectures, c.ModelType = []string{"Qwen3ForCausalLM"}, "qwen3"
		c.HeadDim, c.RopeTheta, c.AttentionBias = 8, 1e6, name == "qwen3-bias"
	case "qwen3moe", "qwen3moe-norm":
		c.Architectures, c.ModelType = []string{"Qwen3MoeForCausalLM"}, "qwen3_moe"
		c.HeadDim, c.NumHiddenLayers = 8, 3
		c.NumLocalExperts, c.NumExpertsPerTok, c.MoEIntermediateSize = 6, 3, 16
		c.RouterAuxLossCoef = 0.001
		c.DecoderSparseStep, c.MLPOnlyLayers = 1, []int{1}
		if name == "qwen3moe-norm" {
			c.NormTopKProb, c.DecoderSparseStep, c.MLPOnlyLayers = true, 2, nil
		}
	default:
		panic("unknown family " + name)
	}
	return c
}
