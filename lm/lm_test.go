package lm

import (
	"math"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/infer"
)

// batchOf collates texts as full-loss examples.
func batchOf(t *testing.T, ck *checkpoint.Model, texts ...string) *data.Batch {
	t.Helper()
	var exs []data.Example
	for i, s := range texts {
		ids := ck.Tok.Encode(s, true)
		mask := make([]bool, len(ids))
		for j := 1; j < len(mask); j++ {
			mask[j] = true
		}
		exs = append(exs, data.Example{IDs: ids, Mask: mask, Row: i})
	}
	b, err := data.NewBatcher(exs, ck.Tok.EOS(), data.BatchConfig{BatchSize: len(texts), MaxLength: 64, PadID: 0})
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, len(texts))
	for i := range idx {
		idx[i] = i
	}
	batch, err := b.Rows(idx)
	if err != nil {
		t.Fatal(err)
	}
	return batch
}

// TestLogProbsMatchEngine checks the training graph's summed log-probs against the inference
// engine's, which is itself checked against llama.cpp; padding rows must not change them.
func TestLogProbsMatchEngine(t *testing.T) {
	ck := testutil.Stories(t)
	texts := []string{"Once upon a time, there was a cat.", "Lily liked to play in the park with her dog."}
	eng, err := infer.New(ck.Weights)
	if err != nil {
		t.Fatal(err)
	}
	for _, rows := range []int{0, 4} {
		m := New(ck, rows)
		s, err := m.LogProbs(batchOf(t, ck, texts...))
		if err != nil {
			t.Fatal(err)
		}
		if len(s.LogProb) != 2 {
			t.Fatalf("rows %d: %d stats rows", rows, len(s.LogProb))
		}
		for i, text := range texts {
			ids := ck.Tok.Encode(text, true)
			logits, err := eng.Forward(ids, nil)
			if err != nil {
				t.Fatal(err)
			}
			var want float64
			for p := 0; p+1 < len(ids); p++ {
				want += infer.LogSoftmax(logits[p])[ids[p+1]]
			}
			if math.Abs(s.LogProb[i]-want) > 1e-3 || s.Tokens[i] != float64(len(ids)-1) {
				t.Errorf("rows %d, text %d: graph %v over %v tokens, engine %v over %d", rows, i, s.LogProb[i], s.Tokens[i], want, len(ids)-1)
			}
		}
	}
}

// TestRunAccumulates checks that Run adds scale·grad into the buffers: two runs at scale 0.5 equal
// one run's gradient, and padding rows contribute nothing.
func TestRunAccumulates(t *testing.T) {
	ck := testutil.Stories(t)
	b := batchOf(t, ck, "The sun was warm.", "A dog ran.")
	nll := func(s model.Stats) (float64, []float64, []float64, error) {
		var loss, n float64
		for i := range s.LogProb {
			loss -= s.LogProb[i]
			n += s.Tokens[i]
		}
		d := make([]float64, len(s.LogProb))
		for i := range d {
			d[i] = -1 / n
		}
		return loss / n, d, nil, nil
	}
	grads := func(m *Model, runs int, scale float32) [][]float32 {
		g := make([][]float32, len(m.Params()))
		for i, p := range m.Params() {
			g[i] = make([]float32, len(p.Value))
		}
		for r := 0; r < runs; r++ {
			if _, _, err := m.Run(b, model.LMHead, nll, g, scale); err != nil {
				t.Fatal(err)
			}
		}
		return g
	}
	one := grads(New(ck, 0), 1, 1)
	two := grads(New(ck, 0), 2, 0.5)
	padded := grads(New(ck, 5), 1, 1)
	for i := range one {
		for j := range one[i] {
			if d := math.Abs(float64(one[i][j] - two[i][j])); d > 1e-6 {
				t.Fatalf("param %d[%d]: one run %v, two half runs %v", i, j, one[i][j], two[i][j])
			}
			if d := math.Abs(float64(one[i][j] - padded[i][j])); d > 1e-5 {
				t.Fatalf("param %d[%d]: unpadded %v, padded %v", i, j, one[i][j], padded[i][j])
			}
		}
	}
}

// TestCheckpointFlag: Model.Checkpoint builds checkpointed graphs (forward-only ones too), whose
// gradients and log-probs are bitwise those of the plain model.
func TestCheckpointFlag(t *testing.T) {
	ck := testutil.Stories(t)
	b := batchOf(t, ck, "The sun was warm.", "A dog ran.")
	nll := func(s model.Stats) (float64, []float64, []float64, error) {
		d := make([]float64, len(s.LogProb))
		for i := range d {
			d[i] = -1
		}
		return -s.LogProb[0] - s.LogProb[1], d, nil, nil
	}
	run := func(ckpt bool) ([][]float32, model.Stats) {
		m := New(ck, 2)
		m.Checkpoint = ckpt
		g := make([][]float32, len(m.Params()))
		for i, p := range m.Params() {
			g[i] = make([]float32, len(p.Value))
		}
		if _, _, err := m.Run(b, model.LMHead, nll, g, 1); err != nil {
			t.Fatal(err)
		}
		s, err := m.LogProbs(b)
		if err != nil {
			t.Fatal(err)
		}
		for k, gr := range m.graphs {
			if gr.Spec().Checkpoint != ckpt {
				t.Fatalf("graph %+v built with Checkpoint %v, the model has %v", k, gr.Spec().Checkpoint, ckpt)
			}
		}
		if len(m.graphs) != 2 {
			t.Fatalf("%d graphs, want a training and a forward-only one", len(m.graphs))
		}
		return g, s
	}
	g0, s0 := run(false)
	g1, s1 := run(true)
	for i := range g0 {
		for j := range g0[i] {
			if g0[i][j] != g1[i][j] {
				t.Fatalf("param %d[%d]: plain %v, checkpointed %v", i, j, g0[i][j], g1[i][j])
			}
		}
	}
	for i := range s0.LogProb {
		if s0.LogProb[i] != s1.LogProb[i] {
			t.Fatalf("row %d log-prob: plain %v, checkpointed %v", i, s0.LogProb[i], s1.LogProb[i])
		}
	}
}
