package sft

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/model/infer"
	"github.com/alignkit/alignkit/model/quant"
	"github.com/alignkit/alignkit/train"
)

// writeStoriesGGUF writes stories260K as a GGUF of dtype with the project's writer (as `alignkit
// export --format gguf --dtype` does) and returns its path.
func writeStoriesGGUF(t *testing.T, dtype string) string {
	t.Helper()
	m, err := checkpoint.Open(filepath.Join(sharedDir(t), "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stories260K-"+dtype+".gguf")
	if err := gguf.Write(path, m.Weights, checkpoint.GGUFTokenizer(m.Tok), gguf.WriteOptions{Dtype: dtype}); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoRASFTOnGGUF fine-tunes the very GGUF file llama.cpp runs, Q8_0 and Q4_0, with use_peft and no
// storage keys: the task's base holds every linear weight in the file's blocks (Q8_0 or Q4_0; F16 for
// the 172-wide down projections that no 32-value block divides), the adapter alone trains, and the
// held-out loss falls. The adapter it saves runs over the GGUF's blocks as over its float32 expansion.
func TestLoRASFTOnGGUF(t *testing.T) {
	for _, c := range []struct {
		dtype string
		file  quant.Format
	}{{"q8_0", quant.Q8_0}, {"q4_0", quant.Q4_0}} {
		t.Run(c.dtype, func(t *testing.T) {
			cfg := loraConfig(t)
			cfg.ModelNameOrPath = writeStoriesGGUF(t, c.dtype)
			cfg.MaxSteps = 16
			cfg.SaveSteps = 1000
			task, _ := prepare(t, cfg)
			w := task.Model.Weights()
			for _, name := range w.Names() {
				tn := w.Tensors[name]
				if !quant.IsLinear(name, tn.Shape) {
					continue
				}
				m, ok := tn.Frozen.(*quant.Matrix)
				want := c.file
				if tn.Shape[1] == 172 {
					want = quant.F16
				}
				if !ok || tn.Data != nil || m.Format() != want {
					t.Fatalf("%s: held as %T (%d float32 values), want the file's %s blocks", name, tn.Frozen, len(tn.Data), want)
				}
			}
			first, _ := evalLoss(t, task, cfg.PerDeviceEvalBatchSize)
			if _, err := train.Run(t.Context(), cfg.Args, task, train.WithLogWriter(&bytes.Buffer{})); err != nil {
				t.Fatal(err)
			}
			last, _ := evalLoss(t, task, cfg.PerDeviceEvalBatchSize)
			t.Logf("LoRA SFT on a %s GGUF: held-out loss %.4f -> %.4f", c.dtype, first, last)
			if !(last < first-0.1) {
				t.Errorf("held-out loss %v -> %v: want a drop of at least 0.1", first, last)
			}
			// output_dir is a PEFT adapter over the GGUF: generation runs it unmerged over the file's
			// blocks, and over the file expanded to float32, with the same logits.
			frozen, err := checkpoint.OpenAdapterFrozen(context.Background(), cfg.ModelNameOrPath, cfg.OutputDir, checkpoint.FrozenBase{})
			if err != nil {
				t.Fatal(err)
			}
			dense, err := checkpoint.OpenAdapter(context.Background(), cfg.ModelNameOrPath, cfg.OutputDir)
			if err != nil {
				t.Fatal(err)
			}
			tokens := frozen.Tok.Encode("Once upon a time, there was a cat.", true)
			a, b := adaptedLogits(t, frozen, tokens), adaptedLogits(t, dense, tokens)
			var worst float64
			for i := range a {
				for j := range a[i] {
					worst = max(worst, math.Abs(float64(a[i][j]-b[i][j])))
				}
			}
			if worst > 2e-5 {
				t.Errorf("the adapter over the GGUF's blocks and over its float32 expansion: logits differ by %g", worst)
			}
		})
	}
}

// TestGGUFBaseStorageErrors: a storage key that would re-quantize an already quantized GGUF base is
// refused before training, in one line naming the key, the file's format and the tensor.
func TestGGUFBaseStorageErrors(t *testing.T) {
	cfg := loraConfig(t)
	cfg.ModelNameOrPath = writeStoriesGGUF(t, "q4_0")
	cfg.Model.Quant.LoadIn4bit = true
	want := "model_name_or_path: " + cfg.ModelNameOrPath + `: tensor "blk.0.attn_q.weight": held as Q4_0 in the file; load_in_4bit would re-quantize it to NF4, rounding its weights twice: leave load_in_4bit out to train on the file's own Q4_0 blocks, or start from a float (F32, F16, BF16) GGUF or the HF model`
	if _, err := Prepare(t.Context(), cfg); err == nil || err.Error() != want {
		t.Errorf("load_in_4bit on a Q4_0 GGUF:\n got %v\nwant %s", err, want)
	}
}

// adaptedLogits runs the inference engine (base plus adapter, unmerged) over tokens.
func adaptedLogits(t *testing.T, m *checkpoint.Model, tokens []int32) [][]float32 {
	t.Helper()
	e, err := infer.NewAdapted(m.Weights, m.Adapter)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := e.Forward(tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	return logits
}

// TestFullFineTuneGGUFExpands: without use_peft every weight trains, so a Q4_0 GGUF is expanded to
// float32 values (its blocks decoded) and every tensor is a trainable param.
func TestFullFineTuneGGUFExpands(t *testing.T) {
	cfg := storiesConfig(t, "no_robots_test_sft.parquet")
	cfg.ModelNameOrPath = writeStoriesGGUF(t, "q4_0")
	task, _ := prepare(t, cfg)
	w := task.Model.Weights()
	for _, name := range w.Names() {
		if tn := w.Tensors[name]; tn.Frozen != nil || len(tn.Data) != tn.Numel() {
			t.Fatalf("%s: held as %T with %d float32 values, want float32 to train", name, tn.Frozen, len(tn.Data))
		}
	}
	if got, want := len(task.Params()), len(w.Tensors); got != want {
		t.Fatalf("%d trainable params, want every one of the %d tensors", got, want)
	}
}
