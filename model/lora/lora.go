package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/blas"

	"github.com/alignkit/alignkit/model"
	mblas "github.com/alignkit/alignkit/model/blas"
	"github.com/alignkit/alignkit/model/ops"
)

// New builds a fresh adapter for w as PEFT's LoraLayer.reset_lora_parameters does with
// init_lora_weights=True: A (r, in) from nn.init.kaiming_uniform_(a=√5), i.e. uniform on
// ±1/√in, and B (out, r) zero, so the adapted model starts as the base. modules_to_save tensors
// start as copies of the base's. The same seed gives the same adapter.
func New(c Config, w *model.Weights, seed uint64) (*model.Adapter, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.Defaults()
	targets, saved, err := c.Resolve(w)
	if err != nil {
		return nil, err
	}
	r := *c.LoraR
	ad := &model.Adapter{R: r, Alpha: *c.LoraAlpha, RSLoRA: c.UseRSLoRA, Dropout: *c.LoraDropout,
		Layers: make(map[string]*model.LoRALayer, len(targets)), Saved: make(map[string]*model.Tensor, len(saved))}
	rng := rand.New(rand.NewPCG(seed, seed^0x6c6f7261)) // "lora"
	for _, name := range targets {                      // sorted: the draw order is fixed
		out, in := w.Tensors[name].Shape[0], w.Tensors[name].Shape[1]
		l := &model.LoRALayer{A: model.NewTensor(r, in), B: model.NewTensor(out, r)}
		// kaiming_uniform_(a=√5): gain √(2/(1+5)), bound gain·√(3/fan_in) = 1/√in.
		bound := 1 / math.Sqrt(float64(in))
		for i := range l.A.Data {
			l.A.Data[i] = float32((2*rng.Float64() - 1) * bound)
		}
		ad.Layers[name] = l
	}
	for _, name := range saved {
		t := w.Tensors[name]
		if t.Data == nil {
			return nil, fmt.Errorf("lora_modules_to_save: %s is held as a frozen %T; a module trained in full needs float32 values", name, t.Frozen)
		}
		ad.Saved[name] = &model.Tensor{Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
	}
	return ad, nil
}

// Merge returns w with the adapter folded in, as PEFT's merge_and_unload: W' = W + scale·B·A for
// every adapted weight, and the modules_to_save copies in place of the base's tensors. w itself is
// left unchanged. Merging needs float32 base weights: a quantized (non-dense Frozen) one is refused.
func Merge(w *model.Weights, ad *model.Adapter) (*model.Weights, error) {
	if err := ad.Check(w, "lora: merge"); err != nil {
		return nil, err
	}
	out := &model.Weights{Config: w.Config, Tensors: make(map[string]*model.Tensor, len(w.Tensors))}
	for name, t := range w.Tensors {
		out.Tensors[name] = t
	}
	for _, name := range ad.LayerNames() {
		t := w.Tensors[name]
		data := t.Data
		if t.Frozen != nil {
			d, ok := t.Frozen.(*ops.DenseFrozen)
			if !ok {
				return nil, fmt.Errorf("lora: merge: %s is held as %T (quantized); merging needs a float32 base (load the base unquantized, or serve the adapter unmerged)", name, t.Frozen)
			}
			data = d.W
		}
		if data == nil {
			return nil, fmt.Errorf("lora: merge: %s has no float32 values", name)
		}
		l := ad.Layers[name]
		rows, cols := t.Shape[0], t.Shape[1]
		merged := slices.Clone(data)
		// W (out, in) += scale · B (out, r) · A (r, in)
		mblas.Impl().Sgemm(blas.NoTrans, blas.NoTrans, rows, cols, ad.R, float32(ad.Scale()), l.B.Data, ad.R, l.A.Data, cols, 1, merged, cols)
		out.Tensors[name] = &model.Tensor{Shape: slices.Clone(t.Shape), Data: merged}
	}
	for name, t := range ad.Saved {
		out.Tensors[name] = &model.Tensor{Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
	}
	return out, nil
}
