package lm

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/train"
)

func nllObjective(s model.Stats) (float64, []float64, []float64, error) {
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

// A LoRA run through lm on stories260K: the Params are the adapter's alone; before training the
// adapter (B = 0) gives the base's log-probs exactly; a few AdamW steps (dropout on, seeded per
// micro-batch) lower the loss and move B off zero; the base (adapters off) is untouched; and the
// merged model, and the adapter saved and reopened over the base, give the same log-probs within
// 1e-5.
func TestLoRATrainMergeSave(t *testing.T) {
	ck := testutil.Stories(t)
	base := ck.Weights.Clone()
	r := 4
	ad, err := lora.New(lora.Config{LoraR: &r, LoraTargetModules: "all-linear"}, ck.Weights, 7)
	if err != nil {
		t.Fatal(err)
	}
	ck.Adapter = ad
	m := New(ck, 0)
	var names []string
	for _, p := range m.Params() {
		names = append(names, p.Name)
	}
	if len(names) != 2*len(ad.Layers) || !strings.HasSuffix(names[0], ".lora_A.weight") || !slices.IsSorted(names) {
		t.Fatalf("params %v: want the %d adapters' A and B, sorted", names, len(ad.Layers))
	}
	b := batchOf(t, ck, "Once upon a time, there was a cat.", "Lily liked to play in the park with her dog.")
	plain := New(&checkpoint.Model{Weights: base, Tok: ck.Tok, Source: "base"}, 0)
	want, err := plain.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.LogProb, want.LogProb) {
		t.Fatalf("B = 0: log-probs %v, the base's %v", got.LogProb, want.LogProb)
	}

	opt := train.NewAdamW(m.Params(), train.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	var first, last float64
	for step := 1; step <= 4; step++ {
		grads := make([][]float32, len(m.Params()))
		for i, p := range m.Params() {
			grads[i] = make([]float32, len(p.Value))
		}
		m.SetDropoutSeed(model.DropoutSeed(42, step, 0))
		loss, _, err := m.Run(b, model.LMHead, nllObjective, grads, 1)
		if err != nil {
			t.Fatal(err)
		}
		if step == 1 {
			first = loss
		}
		last = loss
		if err := opt.Step(m.Params(), grads, 1e-2); err != nil {
			t.Fatal(err)
		}
	}
	if !(last < first) {
		t.Fatalf("loss %g after 4 steps, %g before", last, first)
	}
	var bNorm float64
	for _, l := range ad.Layers {
		for _, v := range l.B.Data {
			bNorm += float64(v) * float64(v)
		}
	}
	if bNorm == 0 {
		t.Fatal("B is still zero after training")
	}
	for name, tt := range base.Tensors {
		if !slices.Equal(tt.Data, ck.Weights.Tensors[name].Data) {
			t.Fatalf("training changed the frozen base's %s", name)
		}
	}
	off, err := m.BaseLogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(off.LogProb, want.LogProb) {
		t.Fatalf("adapters off: %v, the base's %v", off.LogProb, want.LogProb)
	}
	unmerged, err := m.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := checkpoint.Merged(ck)
	if err != nil {
		t.Fatal(err)
	}
	mm, err := New(merged, 0).LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	reopened, err := checkpoint.OpenAdapter(context.Background(), sharedtest.Path(t, "models", "stories260K"), dir)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := New(reopened, 0).LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range unmerged.LogProb {
		if math.Abs(unmerged.LogProb[i]-want.LogProb[i]) < 1e-3 {
			t.Fatalf("row %d: the trained adapter barely moves the log-prob (%g vs %g)", i, unmerged.LogProb[i], want.LogProb[i])
		}
		// Summed over ~12 tokens: 1e-5 per token.
		tol := 1e-5 * unmerged.Tokens[i]
		if d := math.Abs(mm.LogProb[i] - unmerged.LogProb[i]); d > tol {
			t.Errorf("row %d: merged %g, unmerged %g (diff %g)", i, mm.LogProb[i], unmerged.LogProb[i], d)
		}
		if rm.LogProb[i] != unmerged.LogProb[i] {
			t.Errorf("row %d: reopened adapter %g, trained %g", i, rm.LogProb[i], unmerged.LogProb[i])
		}
	}
	if _, err := plain.BaseLogProbs(b); err == nil || err.Error() != "lm: BaseLogProbs: base has no adapter to disable" {
		t.Fatalf("got %v", err)
	}
}
