package grpo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/model/lora"
)

// TestLoRAReferenceIsBaseWithAdapterOff: with use_peft and beta > 0 only the adapter trains, the
// reference is the base with the adapter off and shares the policy's frozen weights (no second
// copy, as TRL), and a run writes a PEFT adapter directory.
func TestLoRAReferenceIsBaseWithAdapterOff(t *testing.T) {
	cfg := storiesConfig(t)
	cfg.Beta = 0.1
	r := 4
	cfg.Model.Lora = lora.Config{UsePEFT: true, LoraR: &r, LoraTargetModules: "all-linear"}
	task, err := newTask(context.Background(), cfg, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if task.policy.Adapter() == nil || task.ref == nil || task.ref.Adapter() != nil {
		t.Fatalf("policy adapter %v, reference %v: want an adapted policy and an unadapted reference", task.policy.Adapter(), task.ref)
	}
	const q = "model.layers.0.self_attn.q_proj.weight"
	if &task.ref.Weights().Tensors[q].Data[0] != &task.policy.Weights().Tensors[q].Data[0] {
		t.Error("the reference holds a second copy of the base weights")
	}
	for _, p := range task.Params() {
		if !bytes.Contains([]byte(p.Name), []byte(".lora_")) {
			t.Fatalf("trainable %s is not an adapter tensor", p.Name)
		}
	}
	run(t, cfg)
	if _, err := os.Stat(filepath.Join(cfg.OutputDir, "adapter_model.safetensors")); err != nil {
		t.Errorf("output_dir is not a PEFT adapter directory: %v", err)
	}
}
