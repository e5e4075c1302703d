package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gorgonia.org/tensor"
)

// vocabNodes counts the graph's nodes of shape (N, V): the logits and their gradient, which the
// fused head never holds.
func vocabNodes(gr *Graph) int {
	k := 0
	for _, nd := range gr.g.AllNodes() {
		if nd.Shape().Eq(tensor.Shape{gr.n, gr.cfg.VocabSize}) {
			k++
		}
	}
	return k
}

// TestLoRAHeadFused: a LoRA adapter on the LM head (lm_head among the target modules, or the tied
// embedding's head) runs through the fused FrozenHeadLoRALogProbs, whose graph holds no (N, V)
// node, and gives the unfused path's loss, stats, logits and gradients of every adapter tensor
// (the head's A and B, and another layer's), dropout on: float32 to 1e-5 of each gradient's scale.
// The cases cover a frozen rounded (non-dense) head, checkpointing and a sampling temperature.
func TestLoRAHeadFused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       tinyOpts
		modules []string
		frozen  bool    // the base held only as Frozen weights (freezeLinear), the head rounded
		temp    float64 // GraphSpec.Temperature
		ckpt    bool
	}{
		{"untied lm_head", tinyOpts{untied: true}, []string{"q_proj", "lm_head"}, false, 0, false},
		{"untied lm_head frozen base", tinyOpts{untied: true}, []string{"v_proj", "down_proj", "lm_head"}, true, 0, false},
		{"untied lm_head checkpointed temperature", tinyOpts{untied: true, layers: 3}, []string{"o_proj", "lm_head"}, true, 0.7, true},
		{"tied embedding head", tinyOpts{}, []string{"q_proj", "embed_tokens"}, false, 0, false},
		{"mixtral lm_head", tinyOpts{untied: true, moe: true}, []string{"w1", "lm_head"}, false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig(tc.o)
			w := InitRandom(cfg, 13, 0.3)
			rng := rand.New(rand.NewPCG(51, uint64(len(tc.name))))
			ad := testAdapter(w, 3, 0.3, rng, tc.modules) // dropout 0.1, B nonzero
			if tc.frozen {
				freezeLinear(w)
			}
			head := LMHeadKey
			if !tc.o.untied {
				head = EmbedKey
			}
			if ad.Layers[head] == nil {
				t.Fatalf("the adapter does not adapt %s", head)
			}
			build := func(spec GraphSpec, unfused bool) *Graph {
				spec.Batch, spec.SeqLen, spec.Head, spec.Adapter = 2, 7, LMHead, ad
				spec.Temperature, spec.Checkpoint, spec.unfusedLoRAHead = tc.temp, tc.ckpt, unfused
				g, err := NewGraph(w, spec)
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			obj := smoothObjective(LMHead)
			for _, spec := range []GraphSpec{{Grad: true}, {KeepLogits: true}} {
				fused, unfused := build(spec, false), build(spec, true)
				// Memory: the fused graph holds no (N, V) tensor (KeepLogits' buffer is the op's own,
				// not a node); the unfused one holds the logits (and, with Grad, their gradient).
				if k := vocabNodes(fused); k != 0 {
					t.Fatalf("grad %v: the fused graph has %d nodes of shape (%d, %d)", spec.Grad, k, fused.n, cfg.VocabSize)
				}
				if k := vocabNodes(unfused); k == 0 {
					t.Fatalf("grad %v: the unfused graph has no (N, V) node: the check cannot fail", spec.Grad)
				}
				for run := 0; run < 2; run++ {
					in := packedInputs(rng, cfg.VocabSize)
					in.Seed = DropoutSeed(7, run, 0)
					l0, s0, err := unfused.Run(in, obj)
					if err != nil {
						t.Fatal(err)
					}
					l1, s1, err := fused.Run(in, obj)
					if err != nil {
						t.Fatal(err)
					}
					if math.Abs(l1-l0) > 1e-5*(1+math.Abs(l0)) {
						t.Fatalf("grad %v run %d: loss %.9g fused, %.9g unfused", spec.Grad, run, l1, l0)
					}
					for _, c := range []struct {
						name string
						x, y []float64
					}{{"LogProb", s1.LogProb, s0.LogProb}, {"Correct", s1.Correct, s0.Correct}, {"MeanLogit", s1.MeanLogit, s0.MeanLogit}, {"TokenLogProb", s1.TokenLogProb, s0.TokenLogProb}} {
						for i := range c.y {
							if math.Abs(c.x[i]-c.y[i]) > 1e-5*(1+math.Abs(c.y[i])) {
								t.Fatalf("grad %v run %d: %s[%d] %.9g fused, %.9g unfused", spec.Grad, run, c.name, i, c.x[i], c.y[i])
							}
						}
					}
					if spec.KeepLogits {
						a, b := fused.Logits(), unfused.Logits()
						if len(a) != fused.n*cfg.VocabSize || len(b) != len(a) {
							t.Fatalf("logits: %d fused, %d unfused, want %d", len(a), len(b), fused.n*cfg.VocabSize)
						}
						for i := range b {
							if d := math.Abs(float64(a[i] - b[i])); d > 1e-5*(1+math.Abs(float64(b[i]))) {
								t.Fatalf("logit %d: %g fused, %g unfused", i, a[i], b[i])
							}
						}
					}
					if !spec.Grad {
						continue
					}
					var names []string
					for i, q := range unfused.Params() {
						f := fused.Params()[i]
						if q.Name != f.Name {
							t.Fatalf("param %d: %s fused, %s unfused", i, f.Name, q.Name)
						}
						names = append(names, f.Name)
						scale := 0.0
						for _, g := range q.Grad {
							scale = math.Max(scale, math.Abs(float64(g)))
						}
						if scale == 0 {
							t.Fatalf("%s has an all-zero gradient", q.Name)
						}
						for j := range q.Grad {
							if d := math.Abs(float64(f.Grad[j] - q.Grad[j])); d > 1e-5*scale {
								t.Fatalf("run %d: %s[%d]: gradient %g fused, %g unfused (scale %g)", run, q.Name, j, f.Grad[j], q.Grad[j], scale)
							}
						}
					}
					ka, kb := LoRAKeys(head)
					if !slices.Contains(names, ka) || !slices.Contains(names, kb) || len(names) < 4 {
						t.Fatalf("params %v: want the head's %s and %s and another layer's pair", names, ka, kb)
					}
				}
			}
		})
	}
}
