package sft

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/train"
)

// loraConfig is LoRA SFT on stories260K with no_robots: r 8 on every linear layer, 24 steps.
func loraConfig(t *testing.T) Config {
	c := storiesConfig(t, "no_robots_test_sft.parquet")
	r, alpha, drop := 8, 16.0, 0.05
	c.Model.Lora = lora.Config{UsePEFT: true, LoraR: &r, LoraAlpha: &alpha, LoraDropout: &drop, LoraTargetModules: "all-linear"}
	c.LearningRate = 1e-2
	c.MaxSteps = 24
	c.Data.EvalSplit = 0.1
	c.LoggingSteps = 4
	c.SaveSteps = 12
	return c
}

// TestLoRASFT: with use_peft only the adapter trains (its params are the lora_A/lora_B tensors),
// the loss falls, the base weights are bit-identical after training, and output_dir is a PEFT
// adapter directory. A run resumed from checkpoint-12 ends with the same adapter, byte for byte.
func TestLoRASFT(t *testing.T) {
	c := loraConfig(t)
	task, _ := prepare(t, c)
	for _, p := range task.Params() {
		if filepath.Ext(p.Name) != ".weight" || !(bytes.Contains([]byte(p.Name), []byte("lora_A")) || bytes.Contains([]byte(p.Name), []byte("lora_B"))) {
			t.Fatalf("trainable %s is not an adapter tensor", p.Name)
		}
	}
	before := append([]float32(nil), task.Model.Weights().Tensors["model.layers.0.self_attn.q_proj.weight"].Data...)
	first, _ := evalLoss(t, task, c.PerDeviceEvalBatchSize)
	if _, err := train.Run(t.Context(), c.Args, task, train.WithLogWriter(&bytes.Buffer{})); err != nil {
		t.Fatal(err)
	}
	last, _ := evalLoss(t, task, c.PerDeviceEvalBatchSize)
	t.Logf("LoRA SFT held-out loss %.4f -> %.4f", first, last)
	if !(last < first-0.1) {
		t.Errorf("held-out loss %v -> %v: want a drop of at least 0.1", first, last)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		if _, err := os.Stat(filepath.Join(c.OutputDir, f)); err != nil {
			t.Errorf("output_dir lacks %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.OutputDir, "model.safetensors")); err == nil {
		t.Error("output_dir holds a full model.safetensors: a LoRA run saves only the adapter")
	}
	// A fresh base is unchanged by a LoRA run of its own (the base the task held stays frozen).
	after := task.Model.Weights().Tensors["model.layers.0.self_attn.q_proj.weight"].Data
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("base weight changed at %d", i)
		}
	}

	r := c
	r.OutputDir = t.TempDir()
	r.ResumeFromCheckpoint = filepath.Join(c.OutputDir, "checkpoint-12")
	if _, err := Run(t.Context(), r, train.WithLogWriter(&bytes.Buffer{})); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(filepath.Join(c.OutputDir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r.OutputDir, "adapter_model.safetensors"))
	if err != nil || !bytes.Equal(a, b) {
		t.Errorf("resumed adapter differs from the uninterrupted run's (%v)", err)
	}
}

// TestLoRAConfigErrors: bad LoRA keys are one line naming the key, before anything is loaded.
func TestLoRAConfigErrors(t *testing.T) {
	zero := 0
	c := loraConfig(t)
	c.Model.Lora.LoraR = &zero
	if _, err := Prepare(t.Context(), c); err == nil || err.Error() != "lora_r: must be >= 1, got 0" {
		t.Errorf("lora_r 0: %v", err)
	}
	c = loraConfig(t)
	c.Model.Lora.LoraTargetModules = []string{"c_attn"}
	want := `lora_target_modules: the model has no linear module "c_attn" (it has down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj, or all-linear)`
	if _, err := Prepare(t.Context(), c); err == nil || err.Error() != want {
		t.Errorf("unknown module:\n got %v\nwant %s", err, want)
	}
	c = loraConfig(t)
	c.Model.Lora.UsePEFT = false
	c.Model.Quant.LoadIn4bit = true
	want = "torch_dtype/load_in_8bit/load_in_4bit: a frozen base trains nothing on its own; set use_peft: true (LoRA) or hold the base as float32"
	if _, err := Prepare(t.Context(), c); err == nil || err.Error() != want {
		t.Errorf("quantized base without LoRA:\n got %v\nwant %s", err, want)
	}
}

// TestLoRACheckpointingSameAdapter: gradient_checkpointing with LoRA, on a float32 base and on a
// 4-bit one (QLoRA), trains byte for byte the adapter the plain graph trains: checkpointing
// recomputes the same kernels on the same values, dropout masks included.
func TestLoRACheckpointingSameAdapter(t *testing.T) {
	for _, fourBit := range []bool{false, true} {
		t.Run(map[bool]string{false: "float32 base", true: "nf4 base"}[fourBit], func(t *testing.T) {
			adapter := func(ckpt bool) []byte {
				c := loraConfig(t)
				c.MaxSteps, c.SaveSteps, c.Data.EvalSplit = 6, 0, 0
				c.Model.Quant.LoadIn4bit = fourBit
				c.GradientCheckpointing = ckpt
				if _, err := Run(t.Context(), c, train.WithLogWriter(&bytes.Buffer{})); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(filepath.Join(c.OutputDir, "adapter_model.safetensors"))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			if !bytes.Equal(adapter(false), adapter(true)) {
				t.Error("the checkpointed run trained another adapter")
			}
		})
	}
}
