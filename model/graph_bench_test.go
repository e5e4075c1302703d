package model

import (
	"math/rand/v2"
	"testing"

	"github.com/alignkit/alignkit/model/blas"
)

// benchConfig is the reference training shape: vocab 4096, d 256, 4 layers, 8 query / 4 KV heads
// (head_dim 32), SwiGLU 688.
func benchConfig() Config {
	return Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 4096, HiddenSize: 256, IntermediateSize: 688, NumHiddenLayers: 4,
		NumAttentionHeads: 8, NumKeyValueHeads: 4, HeadDim: 32,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 2048,
		TieWordEmbeddings: true, BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
}

// BenchmarkTrainStep measures one forward+backward pass (SFT-style mean token loss) on batch 8 ×
// seq 256 and reports tokens per second.
func BenchmarkTrainStep(b *testing.B) {
	if testing.Short() {
		b.Skip("skipped with -short")
	}
	cfg := benchConfig()
	w := InitRandom(cfg, 1, 0.02)
	const B, T = 8, 256
	gr, err := NewGraph(w, GraphSpec{Batch: B, SeqLen: T, Grad: true})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	in := Inputs{Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range in.Tokens {
		in.Tokens[i] = int32(rng.IntN(cfg.VocabSize))
		in.Targets[i] = int32(rng.IntN(cfg.VocabSize))
	}
	obj := func(s Stats) (float64, []float64, []float64, error) {
		var lp, n float64
		for i := range s.LogProb {
			lp += s.LogProb[i]
			n += s.Tokens[i]
		}
		d := make([]float64, len(s.LogProb))
		for i := range d {
			d[i] = -1 / n
		}
		return -lp / n, d, nil, nil
	}
	if _, _, err := gr.Run(in, obj); err != nil { // warm-up: first-run allocations
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := gr.Run(in, obj); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tokens/s")
	b.Logf("BLAS: %s", blas.Name())
}
