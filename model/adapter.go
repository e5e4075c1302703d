package model

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
)

// Adapter is a set of LoRA adapters over a model's linear weights, as PEFT's LoraModel holds them:
// each adapted weight W (out, in) gains A (r, in) and B (out, r), and the layer computes
// y = x·Wᵀ + Scale()·(dropout(x)·Aᵀ)·Bᵀ. Saved are PEFT's modules_to_save: full trainable copies of
// whole tensors (lm_head, score, embed_tokens) used instead of the base's while adapters are on.
// Package model/lora builds, saves and loads adapters; the graph and the inference engine run them.
type Adapter struct {
	R       int
	Alpha   float64
	RSLoRA  bool    // scale alpha/√r instead of alpha/r
	Dropout float64 // lora_dropout, applied in training graphs only
	// Layers maps a base weight's name (model.layers.0.self_attn.q_proj.weight) to its adapter.
	Layers map[string]*LoRALayer
	// Saved maps a base tensor's name (lm_head.weight) to its trained copy.
	Saved map[string]*Tensor
}

// LoRALayer is one adapted weight's pair: A (r, in) and B (out, r) in torch's layout.
type LoRALayer struct {
	A, B *Tensor
}

// Scale is PEFT's scaling[adapter]: lora_alpha/r, or lora_alpha/√r with use_rslora.
func (a *Adapter) Scale() float64 {
	if a.RSLoRA {
		return a.Alpha / math.Sqrt(float64(a.R))
	}
	return a.Alpha / float64(a.R)
}

// LoRAKeys names an adapted weight's A and B as the graph's Params and PEFT's state dict (without
// PEFT's base_model.model. prefix) name them: model.layers.0.self_attn.q_proj.weight gives
// model.layers.0.self_attn.q_proj.lora_A.weight and ...lora_B.weight.
func LoRAKeys(weight string) (a, b string) {
	m := strings.TrimSuffix(weight, ".weight")
	return m + ".lora_A.weight", m + ".lora_B.weight"
}

// LayerNames are the adapted weights' names in sorted order.
func (a *Adapter) LayerNames() []string { return sortedKeys(a.Layers) }

// Check verifies the adapter against base weights: every adapted weight exists and is a matrix,
// A is (r, in) and B (out, r), every saved tensor has its base tensor's shape, and every value is
// finite. source names the adapter in errors.
func (a *Adapter) Check(w *Weights, source string) error {
	if a.R <= 0 {
		return fmt.Errorf("%s: rank r %d must be positive", source, a.R)
	}
	if !(a.Dropout >= 0 && a.Dropout < 1) {
		return fmt.Errorf("%s: lora_dropout %g is outside [0, 1)", source, a.Dropout)
	}
	if math.IsNaN(a.Alpha) || math.IsInf(a.Alpha, 0) {
		return fmt.Errorf("%s: lora_alpha %g is not finite", source, a.Alpha)
	}
	for _, name := range a.LayerNames() {
		l := a.Layers[name]
		base, ok := w.Tensors[name]
		if !ok {
			return fmt.Errorf("%s: adapts %q, which the base model lacks", source, name)
		}
		if len(base.Shape) != 2 {
			return fmt.Errorf("%s: adapts %q of shape %v, which is not a linear weight", source, name, base.Shape)
		}
		ka, kb := LoRAKeys(name)
		if l == nil || l.A == nil || l.B == nil {
			return fmt.Errorf("%s: %q lacks lora_A or lora_B", source, name)
		}
		out, in := base.Shape[0], base.Shape[1]
		for _, c := range []struct {
			key  string
			t    *Tensor
			want []int
		}{{ka, l.A, []int{a.R, in}}, {kb, l.B, []int{out, a.R}}} {
			if !slices.Equal(c.t.Shape, c.want) {
				return fmt.Errorf("%s: tensor %q has shape %v, the base's %s %v implies %v", source, c.key, c.t.Shape, name, base.Shape, c.want)
			}
			if err := checkValues(c.t, c.key, source); err != nil {
				return err
			}
		}
	}
	for _, name := range sortedKeys(a.Saved) {
		t := a.Saved[name]
		base, ok := w.Tensors[name]
		if !ok {
			return fmt.Errorf("%s: saves module tensor %q, which the base model lacks", source, name)
		}
		if !slices.Equal(t.Shape, base.Shape) {
			return fmt.Errorf("%s: tensor %q has shape %v, the base's is %v", source, name, t.Shape, base.Shape)
		}
		if err := checkValues(t, name, source); err != nil {
			return err
		}
	}
	return nil
}

func checkValues(t *Tensor, name, source string) error {
	if len(t.Data) != numel(t.Shape) {
		return fmt.Errorf("%s: tensor %q holds %d values for shape %v", source, name, len(t.Data), t.Shape)
	}
	for i, v := range t.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: tensor %q[%d] = %g is not finite", source, name, i, v)
		}
	}
	return nil
}

// Clone deep-copies the adapter (a checkpoint snapshot).
func (a *Adapter) Clone() *Adapter {
	cp := func(t *Tensor) *Tensor {
		return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
	}
	out := *a
	out.Layers = make(map[string]*LoRALayer, len(a.Layers))
	for k, l := range a.Layers {
		out.Layers[k] = &LoRALayer{A: cp(l.A), B: cp(l.B)}
	}
	out.Saved = make(map[string]*Tensor, len(a.Saved))
	for k, t := range a.Saved {
		out.Saved[k] = cp(t)
	}
	return &out
}

// NumParams is the adapter's trainable parameter count.
func (a *Adapter) NumParams() int64 {
	var n int64
	for _, l := range a.Layers {
		n += int64(l.A.Numel() + l.B.Numel())
	}
	for _, t := range a.Saved {
		n += int64(t.Numel())
	}
	return n
}

// dropoutKey is a layer's dropout-mask key: a hash of its weight's name, so masks do not depend on
// the order layers are built in.
func dropoutKey(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}
