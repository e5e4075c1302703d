package lora

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/ops"
)

func logits(t *testing.T, w *model.Weights, ad *model.Adapter, tokens []int32) []float32 {
	t.Helper()
	n := len(tokens)
	g, err := model.NewGraph(w, model.GraphSpec{Batch: 1, SeqLen: n, KeepLogits: true, Adapter: ad})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.Run(model.Inputs{Tokens: tokens, Targets: make([]int32, n), Weights: make([]float32, n)}, nil); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), g.Logits()...)
}

// Merging folds the adapter in: the merged model's logits are the unmerged adapter graph's, for a
// Llama (all-linear plus a saved lm_head) and a Mixtral (experts and router adapted).
func TestMergeMatchesUnmerged(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    *model.Weights
		c    Config
	}{
		{"llama", tiny(false, false, true), Config{LoraR: ptr(4), LoraTargetModules: "all-linear", LoraModulesToSave: []string{"lm_head"}}},
		{"mixtral", tiny(true, false, false), Config{LoraR: ptr(3), UseRSLoRA: true, LoraTargetModules: "all-linear"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ad, err := New(tc.c, tc.w, 9)
			if err != nil {
				t.Fatal(err)
			}
			randomize(ad, rand.New(rand.NewPCG(4, 4)))
			for _, s := range ad.Saved {
				s.Data[0] += 0.5
			}
			before := tc.w.Clone()
			merged, err := Merge(tc.w, ad)
			if err != nil {
				t.Fatal(err)
			}
			tokens := []int32{1, 5, 9, 22, 3, 30, 7, 11}
			want := logits(t, tc.w, ad, tokens)
			got := logits(t, merged, nil, tokens)
			base := logits(t, tc.w, nil, tokens)
			var moved float64
			for i := range want {
				// float32 products in another order: 1e-5 relative to the logit.
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("logit %d: merged %g, unmerged %g", i, got[i], want[i])
				}
				moved = math.Max(moved, math.Abs(float64(base[i]-want[i])))
			}
			if moved < 1e-2 {
				t.Fatalf("the adapter moves the logits by only %g: the test would not see a wrong merge", moved)
			}
			for name, tt := range before.Tensors {
				for i, v := range tt.Data {
					if tc.w.Tensors[name].Data[i] != v {
						t.Fatalf("Merge changed the base's %s", name)
					}
				}
			}
		})
	}
}

// quantFrozen stands for a quantized base weight: a Frozen that is not a DenseFrozen.
type quantFrozen struct{ d *ops.DenseFrozen }

func (q quantFrozen) Shape() (int, int)              { return q.d.Shape() }
func (q quantFrozen) MulT(y, x []float32, n int)     { q.d.MulT(y, x, n) }
func (q quantFrozen) MulAdd(dx, dy []float32, n int) { q.d.MulAdd(dx, dy, n) }
func (q quantFrozen) Bytes() int64                   { return q.d.Bytes() / 4 }

func TestMergeRefusesQuantizedBase(t *testing.T) {
	w := tiny(false, false, true)
	ad, err := New(Config{}, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	q := model.LayerKey(0, "self_attn.q_proj.weight")
	tq := w.Tensors[q]
	d, _ := ops.NewDenseFrozen(tq.Data, tq.Shape[0], tq.Shape[1])
	w.Tensors[q] = &model.Tensor{Shape: tq.Shape, Frozen: quantFrozen{d}}
	_, err = Merge(w, ad)
	want := "lora: merge: model.layers.0.self_attn.q_proj.weight is held as lora.quantFrozen (quantized); merging needs a float32 base (load the base unquantized, or serve the adapter unmerged)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// The graph still runs the adapter on that base, unmerged.
	randomize(ad, rand.New(rand.NewPCG(1, 1)))
	tokens := []int32{1, 4, 8}
	got := logits(t, w, ad, tokens)
	w.Tensors[q] = tq
	want32 := logits(t, w, ad, tokens)
	for i := range got {
		if got[i] != want32[i] {
			t.Fatalf("logit %d: %g on the Frozen base, %g on the float32 one", i, got[i], want32[i])
		}
	}
}
