package sft

import (
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/train"
)

// sharedDir is ../shared; tests skip unless it holds stories260K and the three data files they train on.
func sharedDir(t testing.TB) string {
	t.Helper()
	return sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/no_robots_test_sft.parquet", "data/capybara_test.parquet", "data/alpaca_en_demo.parquet")
}

// storiesConfig is a short SFT run of stories260K on a ../shared data file: llama-2's template
// (stories260K has none), rows of at most 128 tokens, batches of 4, learning rate 1e-3.
func storiesConfig(t testing.TB, file string) Config {
	t.Helper()
	shared := sharedDir(t)
	c := DefaultConfig()
	c.ModelNameOrPath = filepath.Join(shared, "models", "stories260K")
	c.Data.DatasetName = filepath.Join(shared, "data", file)
	c.Data.ChatTemplate = "llama-2"
	c.Data.MaxLength = 128
	c.OutputDir = t.TempDir()
	c.PerDeviceTrainBatchSize = 4
	c.PerDeviceEvalBatchSize = 8
	c.LearningRate = 1e-3
	c.MaxSteps = 30
	c.LoggingSteps = 5
	c.SaveSteps = 1000
	off := false
	c.ReportPlots = &off
	return c
}

// prepare builds the task of c, failing the test on error.
func prepare(t testing.TB, c Config) (*Task, Summary) {
	t.Helper()
	job, err := Prepare(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	task := job.Task.(*Task)
	return task, task.Summary
}

// newGrads allocates zeroed gradient buffers for the task's params.
func newGrads(task *Task) [][]float32 {
	g := make([][]float32, len(task.Params()))
	for i, p := range task.Params() {
		g[i] = make([]float32, len(p.Value))
	}
	return g
}

// evalLoss evaluates the task's whole evaluation set the way the loop does (each batch's mean loss
// weighted by its size) and returns eval_loss and eval_mean_token_accuracy.
func evalLoss(t *testing.T, task *Task, batch int) (loss, acc float64) {
	t.Helper()
	n := task.NumEvalExamples()
	var sum, count, accSum, accW float64
	for lo := 0; lo < n; lo += batch {
		var ex []int
		for i := lo; i < min(lo+batch, n); i++ {
			ex = append(ex, i)
		}
		m, err := task.Eval(t.Context(), train.Batch{Examples: ex})
		if err != nil {
			t.Fatal(err)
		}
		sum += m.Loss * float64(len(ex))
		count += float64(len(ex))
		accSum += m.Values[train.MeanTokenAccuracy] * m.Weights[train.MeanTokenAccuracy]
		accW += m.Weights[train.MeanTokenAccuracy]
	}
	return sum / count, accSum / accW
}
