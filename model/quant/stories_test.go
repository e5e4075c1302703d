package quant_test

import (
	"math"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/infer"
	"github.com/alignkit/alignkit/model/quant"
)

const storiesText = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. " +
	"One day, she saw a big red ball in the park. She ran to get it, but a dog took it first."

// tokenLogProbs runs the engine over tokens and returns log p(tokens[i+1] | tokens[:i+1]) for every i.
func tokenLogProbs(t *testing.T, w *model.Weights, tokens []int32) []float64 {
	t.Helper()
	e, err := infer.New(w)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := e.Forward(tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(tokens)-1)
	for i := range out {
		out[i] = infer.LogSoftmax(logits[i])[tokens[i+1]]
	}
	return out
}

// TestStoriesQuantizedLogProbs quantises the real stories260K (every linear weight; its head is tied to
// the embedding and stays float32) and compares the engine's next-token log-probs on a story with
// float32's. F32 storage must give exactly the dense engine's values. The other tolerances are about
// twice what was measured (max / mean |Δ log p| in nats over 67 tokens: F16 0.0016 / 0.00026, BF16
// 0.022 / 0.0028, Q8_0 0.13 / 0.0094, NF4 1.06 / 0.17); a 64-wide model is far more sensitive to
// weight noise than a large one. They order the formats as their error bounds do.
func TestStoriesQuantizedLogProbs(t *testing.T) {
	m, err := checkpoint.Open(sharedtest.Path(t, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	tokens := m.Tok.Encode(storiesText, true)
	ref := tokenLogProbs(t, m.Weights, tokens)
	var f32Bytes int64
	for name, tt := range m.Weights.Tensors {
		if quant.IsLinear(name, tt.Shape) {
			f32Bytes += int64(4 * tt.Numel())
		}
	}
	for _, c := range []struct {
		f        quant.Format
		maxDiff  float64 // worst |Δ log p| over the positions, nats
		meanDiff float64
	}{
		{quant.F32, 0, 0},
		{quant.F16, 0.004, 0.0006},
		{quant.BF16, 0.05, 0.006},
		{quant.Q8_0, 0.25, 0.02},
		{quant.NF4, 2, 0.35},
	} {
		w := m.Weights.Clone()
		if err := quant.Quantize(w, c.f, nil); err != nil {
			t.Fatal(err)
		}
		if c.f == quant.F32 { // Quantize leaves float32 alone: wrap the slices as F32 storage by hand
			for name, tt := range w.Tensors {
				if quant.IsLinear(name, tt.Shape) {
					f, err := quant.New(quant.F32, tt.Shape[0], tt.Shape[1], tt.Data)
					if err != nil {
						t.Fatal(err)
					}
					w.Tensors[name] = &model.Tensor{Shape: tt.Shape, Frozen: f}
				}
			}
		}
		got := tokenLogProbs(t, w, tokens)
		var worst, sum float64
		for i := range got {
			d := math.Abs(got[i] - ref[i])
			worst = max(worst, d)
			sum += d
		}
		mean := sum / float64(len(got))
		t.Logf("%s: linear weights %d bytes (float32 %d); |Δ log p| max %.4g mean %.4g over %d tokens", c.f, quant.FrozenBytes(w), f32Bytes, worst, mean, len(got))
		if worst > c.maxDiff || mean > c.meanDiff {
			t.Errorf("%s: |Δ log p| max %.4g mean %.4g, want <= %g and %g", c.f, worst, mean, c.maxDiff, c.meanDiff)
		}
	}
}

// TestEngineRefusesFrozenEmbedding: the engine reads the embedding by row, so only linear weights may be
// frozen; a frozen embedding is one error naming it, not a nil-slice panic.
func TestEngineRefusesFrozenEmbedding(t *testing.T) {
	c := model.Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", BOSTokenID: 1, EOSTokenIDs: []int{2},
		VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 1, NumAttentionHeads: 4,
		NumKeyValueHeads: 2, HeadDim: 8, MaxPositionEmbeddings: 16, RMSNormEps: 1e-5, RopeTheta: 10000,
	}
	w := model.InitRandom(c, 1, 0.02)
	emb := w.Tensors[model.EmbedKey]
	m, err := quant.New(quant.Q8_0, 64, 32, emb.Data)
	if err != nil {
		t.Fatal(err)
	}
	w.Tensors[model.EmbedKey] = &model.Tensor{Shape: emb.Shape, Frozen: m}
	want := `infer: tensor "model.embed_tokens.weight" is frozen, but only linear weights can be (it is not multiplied)`
	if _, err := infer.New(w); err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}
