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
