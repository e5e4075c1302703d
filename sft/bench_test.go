package sft

import (
	"math/rand/v2"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/blas"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/train"
)

// BenchmarkSFTStep measures one whole SFT optimizer step as the loop runs it: collate the rows,
// forward and backward through the model, accumulate the gradient, clip and apply AdamW. It reports
// tokens (non-pad positions) per second.
//
//   - stories260K: the real model on packed no_robots rows, batch 4 × 256;
//   - reference: the reference training shape (vocab 4096, d 256, 4 layers, 8 query / 4 KV heads,
//     SwiGLU 688; see model's BenchmarkTrainStep) with random weights, batch 8 × 256 of random
//     tokens, all trained.
func BenchmarkSFTStep(b *testing.B) {
	b.Run("stories260K", func(b *testing.B) {
		c := storiesConfig(b, "no_robots_test_sft.parquet")
		c.Data.MaxLength = 256
		c.Data.Packing = true
		c.Data.MaxTrainSamples = 200
		task, _ := prepare(b, c)
		benchSteps(b, task, 4)
	})
	b.Run("reference", func(b *testing.B) {
		if testing.Short() {
			b.Skip("skipped with -short")
		}
		cfg := model.Config{
			Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
			VocabSize: 4096, HiddenSize: 256, IntermediateSize: 688, NumHiddenLayers: 4,
			NumAttentionHeads: 8, NumKeyValueHeads: 4, HeadDim: 32,
			RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 2048,
			TieWordEmbeddings: true, BOSTokenID: 1, EOSTokenIDs: []int{2},
		}
		const rows, length = 8, 256
		rng := rand.New(rand.NewPCG(1, 2))
		exs := make([]data.Example, 4*rows)
		for i := range exs {
			ids := make([]int32, length)
			mask := make([]bool, length)
			for j := range ids {
				ids[j] = 3 + rng.Int32N(int32(cfg.VocabSize-3))
				mask[j] = j > 0
			}
			exs[i] = data.Example{IDs: ids, Mask: mask, Row: i}
		}
		batches, err := data.NewBatcher(exs, 2, data.BatchConfig{BatchSize: rows, MaxLength: length, PadID: 0})
		if err != nil {
			b.Fatal(err)
		}
		ck := &checkpoint.Model{Weights: model.InitRandom(cfg, 1, 0.02)}
		benchSteps(b, newTask(lm.New(ck, rows), batches, nil, rows), rows)
	})
}

// benchSteps times optimizer steps of rows examples each, cycling through the task's rows.
func benchSteps(b *testing.B, task *Task, rows int) {
	params := task.Params()
	grads := newGrads(task)
	opt := train.NewAdamW(params, train.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	n := task.NumExamples()
	step := func(i int) int {
		idx := make([]int, rows)
		for k := range idx {
			idx[k] = (i*rows + k) % n
		}
		for _, g := range grads {
			clear(g)
		}
		m, err := task.Step(b.Context(), train.Batch{Examples: idx, Step: i + 1, Accum: 1}, grads, 1)
		if err != nil {
			b.Fatal(err)
		}
		train.ClipGradNorm(grads, 1, 0)
		if err := opt.Step(params, grads, 1e-4); err != nil {
			b.Fatal(err)
		}
		return m.Tokens
	}
	step(0) // warm-up: graph building and first-run allocations
	tokens := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tokens += step(i + 1)
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
	b.Logf("BLAS: %s", blas.Name())
}
