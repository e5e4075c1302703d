package lm

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/train"
)

// loraTask is the smallest trainer over an adapter lm.Model: next-token loss on fixed texts, the
// dropout seeded from (seed, step, micro) as a trainer wires it.
type loraTask struct {
	t     *testing.T
	m     *Model
	texts []string
}

func (k *loraTask) Params() []train.Param { return k.m.Params() }
func (k *loraTask) NumExamples() int      { return len(k.texts) }
func (k *loraTask) NumEvalExamples() int  { return 0 }
func (k *loraTask) SaveModel(dir string) error {
	return k.m.Save(dir)
}
func (k *loraTask) Eval(context.Context, train.Batch) (train.Metrics, error) {
	return train.Metrics{}, nil
}
func (k *loraTask) Step(_ context.Context, b train.Batch, grads [][]float32, scale float32) (train.Metrics, error) {
	var texts []string
	for _, i := range b.Examples {
		texts = append(texts, k.texts[i])
	}
	k.m.SetDropoutSeed(model.DropoutSeed(b.Seed, b.Step, b.Micro))
	loss, _, err := k.m.Run(batchOf(k.t, k.m.Ckpt, texts...), model.LMHead, nllObjective, grads, scale)
	return train.Metrics{Loss: loss}, err
}

func newLoRATask(t *testing.T) *loraTask {
	ck := testutil.Stories(t)
	r := 8
	ad, err := lora.New(lora.Config{LoraR: &r, LoraTargetModules: "all-linear"}, ck.Weights, 3)
	if err != nil {
		t.Fatal(err)
	}
	ck.Adapter = ad
	return &loraTask{t: t, m: New(ck, 0), texts: []string{
		"Once upon a time, there was a cat.", "Lily liked to play in the park with her dog.",
		"The sun was warm and the sky was blue.", "Tom had a red ball.", "A bird sang in the tree.",
		"She smiled at her mom.",
	}}
}

// A LoRA run through train.Run (dropout 0.05 on): a checkpoint holds the PEFT adapter directory and
// adapter-sized params and optimizer files, nothing of the base; resuming from it reaches exactly
// (bit for bit) the adapter the uninterrupted run reached, and the output_dir is a PEFT adapter
// that opens over the base.
func TestLoRATrainResume(t *testing.T) {
	out := t.TempDir()
	seed := int64(5)
	noPlot := false
	args := train.Args{OutputDir: filepath.Join(out, "full"), MaxSteps: 4, PerDeviceTrainBatchSize: 2,
		LearningRate: 1e-2, SaveSteps: 2, Seed: &seed, ReportPlots: &noPlot, LoggingSteps: 1}
	full := newLoRATask(t)
	if _, err := train.Run(context.Background(), args, full, train.WithLogWriter(io.Discard)); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(args.OutputDir, "checkpoint-2")
	for _, f := range []string{lora.ConfigFile, lora.WeightsFile, "tokenizer.model"} {
		if _, err := os.Stat(filepath.Join(ckpt, f)); err != nil {
			t.Fatalf("checkpoint lacks %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(ckpt, "model.safetensors")); err == nil {
		t.Fatal("the checkpoint holds the base model's weights")
	}
	var adapterBytes int64
	for _, p := range full.m.Params() {
		adapterBytes += 4 * int64(len(p.Value))
	}
	baseBytes := 4 * full.m.Ckpt.Weights.NumParams()
	for _, f := range []string{"params.bin", "optimizer.bin"} {
		st, err := os.Stat(filepath.Join(ckpt, f))
		if err != nil {
			t.Fatal(err)
		}
		// params: one copy of the adapter; optimizer: two moments. Headers are small.
		if st.Size() > 3*adapterBytes+1<<16 || st.Size() >= baseBytes {
			t.Fatalf("%s is %d bytes for %d adapter bytes (base %d)", f, st.Size(), adapterBytes, baseBytes)
		}
	}

	resumed := newLoRATask(t)
	rargs := args
	rargs.OutputDir = filepath.Join(out, "resumed")
	if err := os.CopyFS(filepath.Join(rargs.OutputDir, "checkpoint-2"), os.DirFS(ckpt)); err != nil {
		t.Fatal(err)
	}
	rargs.ResumeFromCheckpoint = "latest"
	if _, err := train.Run(context.Background(), rargs, resumed, train.WithLogWriter(io.Discard)); err != nil {
		t.Fatal(err)
	}
	for i, p := range full.m.Params() {
		if !slices.Equal(p.Value, resumed.m.Params()[i].Value) {
			t.Fatalf("%s differs between the uninterrupted and the resumed run", p.Name)
		}
	}
	back, err := checkpoint.OpenAdapter(context.Background(), sharedtest.Path(t, "models", "stories260K"), args.OutputDir)
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range full.m.Adapter().Layers {
		if !slices.Equal(back.Adapter.Layers[name].B.Data, l.B.Data) {
			t.Fatalf("output_dir's adapter differs from the trained one at %s", name)
		}
	}
	var moved bool
	for _, l := range full.m.Adapter().Layers {
		moved = moved || slices.ContainsFunc(l.B.Data, func(v float32) bool { return v != 0 })
	}
	if !moved {
		t.Fatal("training left B at zero")
	}
}
