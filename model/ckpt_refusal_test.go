package model

import (
	"testing"

	"github.com/alignkit/alignkit/model/ops"
)

// TestCheckpointRefusals: gradient checkpointing lays one template layer out for every layer, so it
// refuses, in one line, what that template cannot rebind: a LoRA adapter, a frozen base weight, and
// layers of different kinds (Qwen3-MoE's dense layers among expert ones).
func TestCheckpointRefusals(t *testing.T) {
	const refusedAdapter = "model: NewGraph: gradient_checkpointing: not supported with a LoRA adapter or a frozen (quantized) base yet; turn it off"
	spec := GraphSpec{Batch: 1, SeqLen: 4, Head: LMHead, Grad: true, Checkpoint: true}

	w := InitRandom(tinyConfig(tinyOpts{}), 1, 0.1)
	q := LayerKey(0, "self_attn.q_proj.weight")
	ad := &Adapter{R: 1, Alpha: 1, Layers: map[string]*LoRALayer{q: {
		A: NewTensor(1, w.Tensors[q].Shape[1]), B: NewTensor(w.Tensors[q].Shape[0], 1)}}}
	adSpec := spec
	adSpec.Adapter = ad
	if _, err := NewGraph(w, adSpec); err == nil || err.Error() != refusedAdapter {
		t.Errorf("adapter: %v, want %q", err, refusedAdapter)
	}

	frozen := InitRandom(tinyConfig(tinyOpts{}), 1, 0.1)
	ft := frozen.Tensors[q]
	f, err := ops.NewDenseFrozen(ft.Data, ft.Shape[0], ft.Shape[1])
	if err != nil {
		t.Fatal(err)
	}
	ft.Frozen, ft.Data = f, nil
	if _, err := NewGraph(frozen, spec); err == nil || err.Error() != refusedAdapter {
		t.Errorf("frozen base: %v, want %q", err, refusedAdapter)
	}

	mixed := InitRandom(tinyConfig(tinyOpts{family: "qwen3moe"}), 1, 0.1)
	l := 0
	for l = 1; l < mixed.Config.NumHiddenLayers && mixed.Config.MoELayer(l) == mixed.Config.MoELayer(0); l++ {
	}
	want := "model: NewGraph: gradient_checkpointing: layers 0 and " + string(rune('0'+l)) + " differ (dense and mixture-of-experts), which it does not support yet"
	if l == mixed.Config.NumHiddenLayers {
		t.Fatal("the qwen3moe test config has no dense layer: the test would not check the refusal")
	}
	if _, err := NewGraph(mixed, spec); err == nil || err.Error() != want {
		t.Errorf("mixed layers: %v, want %q", err, want)
	}
	plain := spec
	plain.Checkpoint = false
	if _, err := NewGraph(mixed, plain); err != nil {
		t.Errorf("the same model without checkpointing: %v", err)
	}
}
