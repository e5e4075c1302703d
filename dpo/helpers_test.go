package dpo

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/train"
)

// sharedDir is ../shared; tests skip unless it holds stories260K and the two preference files they train on.
func sharedDir(t *testing.T) string {
	t.Helper()
	return sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/orca_dpo_pairs_validation_chat.parquet", "data/hh_rlhf_harmless_base_test.parquet")
}

// storiesConfig is a short DPO run of stories260K on a shared data file.
func storiesConfig(t *testing.T, dataset string) Config {
	t.Helper()
	shared := sharedDir(t)
	seed := int64(1)
	plots := false
	var c Config
	c.ModelNameOrPath = filepath.Join(shared, "models", "stories260K")
	c.Data = data.Args{
		DatasetName:  filepath.Join(shared, "data", dataset),
		ChatTemplate: "llama-2",
		MaxLength:    96,
	}
	c.MaxPromptLength = 48
	c.Args = train.Args{
		OutputDir: filepath.Join(t.TempDir(), "out"), MaxSteps: 2, PerDeviceTrainBatchSize: 4, PerDeviceEvalBatchSize: 4,
		LoggingSteps: 1, SaveSteps: 1000, Seed: &seed, ReportPlots: &plots, LearningRate: 1e-3,
	}
	c.RefCacheDir = filepath.Join(t.TempDir(), "cache")
	return c
}

// counter counts reference forward passes and the pairs they scored.
type counter struct{ passes, pairs int }

func (c *counter) option() func(*hooks) {
	return func(h *hooks) { h.refForward = func(n int) { c.passes++; c.pairs += n } }
}

// newTestTask is Prepare's task with hooks set and notes written to log.
func newTestTask(c Config, log io.Writer, set ...func(*hooks)) (*Task, error) {
	var h hooks
	for _, f := range set {
		f(&h)
	}
	return newTask(context.Background(), c, h, log)
}

// runHooked is Run with hooks set and notes and progress written to log.
func runHooked(c Config, log io.Writer, set ...func(*hooks)) error {
	var h hooks
	for _, f := range set {
		f(&h)
	}
	prep := func(ctx context.Context, c Config, opts ...train.Option) (*recipe.Job, error) {
		return prepare(ctx, c, h, opts...)
	}
	_, err := recipe.Run(context.Background(), prep, c, train.WithLogWriter(log))
	return err
}
