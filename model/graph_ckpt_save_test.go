package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/alignkit/alignkit/model/ops"
)

// countedFrozen counts a frozen weight's forward products (MulT) in a shared counter.
type countedFrozen struct {
	ops.Frozen
	n *int
}

func (c countedFrozen) MulT(y, x []float32, n int) { *c.n++; c.Frozen.MulT(y, x, n) }

// TestCheckpointSavesFrozenProducts: a checkpointed LoRA graph keeps the frozen products' outputs
// its budget allows and its backward pass skips exactly those products, and whatever it keeps, its
// loss and gradients stay bitwise the plain graph's, over steps whose adapter weights change
// between them (as an optimizer step changes them), so a kept product is never one of an earlier
// step.
func TestCheckpointSavesFrozenProducts(t *testing.T) {
	cfg := tinyConfig(tinyOpts{layers: 3, untied: true})
	L := cfg.NumHiddenLayers
	w := InitRandom(cfg, 12, 0.3)
	rng := rand.New(rand.NewPCG(8, 8))
	ad := testAdapter(w, 3, 0.3, rng, allLinear)
	freezeLinear(w)
	products := 0
	for _, name := range w.Names() {
		if t := w.Tensors[name]; t.Frozen != nil {
			t.Frozen = countedFrozen{t.Frozen, &products}
		}
	}
	const n = 14 // packedInputs' 2×7 rows
	// In tinyConfig o_proj reads 32 values a row (4 heads of 8), down_proj 24, every other product
	// and the head 16: o_proj's and down_proj's outputs (n, 16) come first.
	oDown := int64(L * 2 * n * cfg.HiddenSize * 4)
	build := func(ckpt bool, budget int64) *Graph {
		g, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: LMHead, Adapter: ad, Grad: true, Checkpoint: ckpt, saveBytes: budget})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	plain := build(false, 0)
	// Every candidate: 7 products a layer, (n, out) each, and the head's (n, V) exponentials.
	all := int64(n * cfg.VocabSize * 4)
	for _, out := range []int{32, 16, 16, 16, 24, 24, 16} { // q, k, v, o, gate, up, down
		all += int64(L * n * out * 4)
	}
	if g := build(true, 0); g.saved != all {
		t.Fatalf("a checkpointed training graph keeps %d bytes, want all %d", g.saved, all)
	}
	fwd, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: LMHead, Adapter: ad, Checkpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if fwd.saved != 0 {
		t.Fatalf("a forward-only checkpointed graph keeps %d bytes for a backward pass it lacks", fwd.saved)
	}
	for _, tc := range []struct {
		name   string
		budget int64
		want   int // frozen products per step: 7 per layer forward, those recomputed, 1 for the head
	}{
		{"nothing kept", -1, 2*7*L + 1},
		{"o_proj and down_proj kept", oDown, 7*L + 5*L + 1},
		{"one byte short of them", oDown - 1, 7*L + 5*L + 1 + 1},
		{"default budget: everything kept", 0, 7*L + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ckpt := build(true, tc.budget)
			obj := smoothObjective(LMHead)
			for step := 0; step < 3; step++ {
				in := packedInputs(rng, cfg.VocabSize)
				in.Seed = uint64(7 + step)
				l0, s0, err := plain.Run(in, obj)
				if err != nil {
					t.Fatal(err)
				}
				products = 0
				l1, s1, err := ckpt.Run(in, obj)
				if err != nil {
					t.Fatal(err)
				}
				if products != tc.want {
					t.Fatalf("step %d: %d frozen products, want %d", step, products, tc.want)
				}
				if l0 != l1 {
					t.Fatalf("step %d: loss %v plain, %v checkpointed", step, l0, l1)
				}
				sameStats(t, tc.name, s0, s1)
				for i, q := range plain.Params() {
					c := ckpt.Params()[i]
					for j := range q.Grad {
						if math.Float32bits(q.Grad[j]) != math.Float32bits(c.Grad[j]) {
							t.Fatalf("step %d: %s[%d]: gradient %v plain, %v checkpointed", step, q.Name, j, q.Grad[j], c.Grad[j])
						}
					}
				}
				// An optimizer step: the adapter (shared by both graphs) moves.
				for _, p := range plain.Params() {
					for j := range p.Value {
						p.Value[j] -= 0.05 * p.Grad[j]
					}
				}
			}
		})
	}
}

// TestPlanSaves: the budget goes to the widest inputs first (most flops saved per byte), the head
// before a layer's product of the same width, layers in order; what does not fit is skipped and
// smaller ones after it still get the rest.
func TestPlanSaves(t *testing.T) {
	a0, a1 := &layerApp{l: 0}, &layerApp{l: 1}
	cands := func() []saveCandidate {
		a0.memos, a1.memos = map[string]*ops.FrozenMemo{}, map[string]*ops.FrozenMemo{}
		return []saveCandidate{
			{a0, "q", 100, 16}, {a0, "down", 50, 64}, {a1, "q", 100, 16}, {a1, "down", 50, 64},
			{nil, "", 300, 16}, {a1, "k", 20, 16},
		}
	}
	for _, tc := range []struct {
		budget int64
		head   int64
		kept   []string // layer.suffix
	}{
		{0, 0, nil},
		{99, 0, []string{"0.down", "1.k"}},
		{100, 0, []string{"0.down", "1.down"}},
		{420, 300, []string{"0.down", "1.down", "1.k"}},
		{500, 300, []string{"0.down", "0.q", "1.down"}},
		{620, 300, []string{"0.down", "0.q", "1.down", "1.q", "1.k"}},
	} {
		head, _ := planSaves(cands(), tc.budget)
		var kept []string
		for _, a := range []*layerApp{a0, a1} {
			for _, s := range []string{"down", "q", "k"} {
				if a.memos[s] != nil {
					kept = append(kept, string(rune('0'+a.l))+"."+s)
				}
			}
		}
		if head != tc.head || len(kept) != len(tc.kept) {
			t.Fatalf("budget %d: head %d, kept %v; want %d, %v", tc.budget, head, kept, tc.head, tc.kept)
		}
		for i := range kept {
			if kept[i] != tc.kept[i] {
				t.Fatalf("budget %d: kept %v, want %v", tc.budget, kept, tc.kept)
			}
		}
	}
}
