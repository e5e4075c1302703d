package dpo

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/sharedtest"
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

// readMetrics reads output_dir/metrics.jsonl.
func readMetrics(t *testing.T, dir string) []map[string]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics.jsonl: %v", err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeJSONL writes rows as a JSON Lines file in a fresh temporary directory.
func writeJSONL(t *testing.T, name string, rows []map[string]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	var b []byte
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b = append(append(b, line...), '\n')
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// counter counts reference forward passes and the pairs they scored.
type counter struct{ passes, pairs int }

func (c *counter) option() Option {
	return WithRefForward(func(n int) { c.passes++; c.pairs += n })
}
