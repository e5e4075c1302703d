package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model/ops"
)

// roundedFrozen is a non-dense frozen weight for tests: the float32 weight rounded to bfloat16, as
// a torch_dtype: bfloat16 base holds it (package quant's formats cannot be imported here).
type roundedFrozen struct{ d *ops.DenseFrozen }

func newRoundedFrozen(t *Tensor) *roundedFrozen {
	w := make([]float32, len(t.Data))
	for i, v := range t.Data {
		w[i] = math.Float32frombits(math.Float32bits(v) &^ 0xffff)
	}
	return &roundedFrozen{&ops.DenseFrozen{W: w, Out: t.Shape[0], In: t.Shape[1]}}
}
func (r *roundedFrozen) Shape() (int, int)              { return r.d.Shape() }
func (r *roundedFrozen) MulT(y, x []float32, n int)     { r.d.MulT(y, x, n) }
func (r *roundedFrozen) MulAdd(dx, dy []float32, n int) { r.d.MulAdd(dx, dy, n) }
func (r *roundedFrozen) Bytes() int64                   { return r.d.Bytes() / 2 }

// freezeLinear holds every linear weight of w (2-D, not the embedding) only as a Frozen: rounded
// ones, but a DenseFrozen in layer 1 (a GGUF mixes formats across layers, and one template serves
// both).
func freezeLinear(w *Weights) {
	for _, name := range w.Names() {
		t := w.Tensors[name]
		if len(t.Shape) != 2 || name == EmbedKey {
			continue
		}
		if slices.Contains([]string{LayerKey(1, "self_attn.q_proj.weight"), LayerKey(1, "mlp.down_proj.weight")}, name) {
			d, _ := ops.NewDenseFrozen(t.Data, t.Shape[0], t.Shape[1])
			t.Frozen, t.Data = d, nil
			continue
		}
		t.Frozen, t.Data = newRoundedFrozen(t), nil
	}
}

// TestCheckpointWithAdapters: gradient checkpointing with what one rebound template could not hold
// before: a LoRA adapter (dropout on, B nonzero, with modules_to_save copies, one of them in layer 0
// only so that layers 0 and 1 need different templates), a base held only as frozen weights of
// mixed formats, Mixtral experts adapted (their dense path), and Qwen3-MoE's dense layer among MoE
// ones. Each checkpointed graph gives bitwise the plain graph's loss, stats and gradients over two
// runs with different dropout seeds; its forward-only and adapters-off graphs do too.
func TestCheckpointWithAdapters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       tinyOpts
		modules []string // nil: no adapter (full fine-tuning)
		saved   []string
		frozen  bool
	}{
		{"llama lora tied", tinyOpts{layers: 3}, allLinear, []string{LayerKey(0, "input_layernorm.weight"), FinalNormKey}, false},
		{"llama lora frozen mixed-format base", tinyOpts{layers: 3, untied: true}, []string{"q_proj", "v_proj", "down_proj"}, nil, true},
		{"llama lora on a frozen lm_head", tinyOpts{layers: 3, untied: true}, []string{"v_proj", "lm_head"}, nil, true},
		{"mixtral lora experts", tinyOpts{moe: true, untied: true}, allLinear, nil, true},
		{"qwen3moe dense and moe layers", tinyOpts{family: "qwen3moe", layers: 3}, nil, nil, false},
		{"qwen3moe lora", tinyOpts{family: "qwen3moe", layers: 3}, allLinear, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig(tc.o)
			w := InitRandom(cfg, 12, 0.3)
			rng := rand.New(rand.NewPCG(6, 6))
			var ad *Adapter
			if tc.modules != nil {
				ad = testAdapter(w, 3, 0.3, rng, tc.modules, tc.saved...)
			}
			if tc.frozen {
				freezeLinear(w)
			}
			moeLayers := 0
			for l := 0; l < cfg.NumHiddenLayers; l++ {
				if cfg.MoELayer(l) {
					moeLayers++
				}
			}
			if tc.o.family == "qwen3moe" && (moeLayers == 0 || moeLayers == cfg.NumHiddenLayers) {
				t.Fatalf("%d of %d layers are MoE: the mixed case is not exercised", moeLayers, cfg.NumHiddenLayers)
			}
			build := func(spec GraphSpec) *Graph {
				spec.Batch, spec.SeqLen, spec.Head, spec.Adapter = 2, 7, LMHead, ad
				g, err := NewGraph(w, spec)
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			obj := smoothObjective(LMHead)
			type pair struct {
				name         string
				plain, ckpt  *Graph
				compareGrads bool
			}
			pairs := []pair{
				{"training", build(GraphSpec{Grad: true}), build(GraphSpec{Grad: true, Checkpoint: true}), true},
				{"forward", build(GraphSpec{KeepLogits: true}), build(GraphSpec{KeepLogits: true, Checkpoint: true}), false},
			}
			if ad != nil {
				pairs = append(pairs, pair{"adapters off", build(GraphSpec{AdaptersOff: true, KeepLogits: true}), build(GraphSpec{AdaptersOff: true, KeepLogits: true, Checkpoint: true}), false})
			}
			for run := 0; run < 2; run++ {
				in := packedInputs(rng, cfg.VocabSize)
				in.Seed = uint64(100 + run)
				for _, p := range pairs {
					l0, s0, err := p.plain.Run(in, obj)
					if err != nil {
						t.Fatal(err)
					}
					l1, s1, err := p.ckpt.Run(in, obj)
					if err != nil {
						t.Fatal(err)
					}
					if l0 != l1 {
						t.Fatalf("%s run %d: loss %v plain, %v checkpointed", p.name, run, l0, l1)
					}
					sameStats(t, p.name, s0, s1)
					if !p.compareGrads {
						if !slices.Equal(p.plain.Logits(), p.ckpt.Logits()) {
							t.Fatalf("%s run %d: logits differ", p.name, run)
						}
						continue
					}
					if len(p.plain.Params()) != len(p.ckpt.Params()) {
						t.Fatalf("%d params plain, %d checkpointed", len(p.plain.Params()), len(p.ckpt.Params()))
					}
					for i, q := range p.plain.Params() {
						c := p.ckpt.Params()[i]
						if q.Name != c.Name {
							t.Fatalf("param %d: %s plain, %s checkpointed", i, q.Name, c.Name)
						}
						for j := range q.Grad {
							if math.Float32bits(q.Grad[j]) != math.Float32bits(c.Grad[j]) {
								t.Fatalf("run %d: %s[%d]: gradient %v plain, %v checkpointed", run, q.Name, j, q.Grad[j], c.Grad[j])
							}
						}
						if !slices.ContainsFunc(c.Grad, func(g float32) bool { return g != 0 }) && !strings.Contains(c.Name, ".experts.") {
							t.Fatalf("%s has an all-zero gradient", c.Name)
						}
					}
				}
			}
		})
	}
}
