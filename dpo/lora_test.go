package dpo

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/lora"
)

// loraDPOConfig is LoRA DPO on stories260K with 16 real orca pairs (4 epochs of 4 steps), the
// reference being the base with the adapter off.
func loraDPOConfig(t *testing.T, precompute bool) Config {
	c := storiesConfig(t, "orca_dpo_pairs_validation_chat.parquet")
	r, alpha, drop := 8, 16.0, 0.0
	c.Model.Lora = lora.Config{UsePEFT: true, LoraR: &r, LoraAlpha: &alpha, LoraDropout: &drop, LoraTargetModules: "all-linear"}
	c.MaxSteps = 16
	c.LearningRate = 1e-2
	c.Data.MaxTrainSamples = 16
	c.PrecomputeRefLogProbs = precompute
	c.SaveSteps = 8
	return c
}

// TestLoRADPO: the first step's loss is exactly ln 2 (B = 0: the policy is the base, which is the
// reference), the reference is the base with the adapter off (a per-batch reference and the cached
// precomputed one give the same run), rewards/accuracies rises over the epochs, output_dir is a
// PEFT adapter, and a run resumed from checkpoint-8 ends with the same adapter byte for byte.
func TestLoRADPO(t *testing.T) {
	c := loraDPOConfig(t, false)
	task, err := newTestTask(c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if task.ref == nil || task.ref.Adapter() != nil || task.policy.Adapter() == nil {
		t.Fatalf("reference %v (adapter %v), policy adapter %v: want the base with the adapter off", task.ref, task.ref.Adapter(), task.policy.Adapter())
	}
	if &task.ref.Weights().Tensors["model.embed_tokens.weight"].Data[0] != &task.policy.Weights().Tensors["model.embed_tokens.weight"].Data[0] {
		t.Error("the reference holds a second copy of the base weights")
	}
	if err := runHooked(c, io.Discard); err != nil {
		t.Fatal(err)
	}
	ms := testutil.ReadMetrics(t, c.OutputDir)
	if len(ms) != 16 {
		t.Fatalf("%d metrics lines, want 16", len(ms))
	}
	if math.Abs(ms[0]["loss"]-math.Ln2) > 1e-6 {
		t.Errorf("first loss %v, want ln 2 (the adapter starts at B = 0)", ms[0]["loss"])
	}
	epoch := func(e int) float64 {
		var s float64
		for _, m := range ms[4*e : 4*e+4] {
			s += m["rewards/accuracies"]
		}
		return s / 4
	}
	t.Logf("LoRA DPO rewards/accuracies by epoch %.3f %.3f %.3f %.3f; loss %.4f -> %.4f", epoch(0), epoch(1), epoch(2), epoch(3), ms[0]["loss"], ms[15]["loss"])
	if !(epoch(3) > epoch(0)+0.2) || !(ms[15]["loss"] < ms[0]["loss"]) {
		t.Errorf("rewards/accuracies %.3f -> %.3f, loss %v -> %v: want accuracy up by 0.2 and the loss down", epoch(0), epoch(3), ms[0]["loss"], ms[15]["loss"])
	}
	adapter := filepath.Join(c.OutputDir, "adapter_model.safetensors")
	want, err := os.ReadFile(adapter)
	if err != nil {
		t.Fatalf("output_dir is not a PEFT adapter directory: %v", err)
	}

	pc := loraDPOConfig(t, true)
	if err := runHooked(pc, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(pc.OutputDir, "adapter_model.safetensors")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("precomputed reference log-probs give another adapter (%v)", err)
	}

	r := loraDPOConfig(t, false)
	r.ResumeFromCheckpoint = filepath.Join(c.OutputDir, "checkpoint-8")
	if err := runHooked(r, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(r.OutputDir, "adapter_model.safetensors")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("resumed adapter differs from the uninterrupted run's (%v)", err)
	}
}
