package main

import (
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
)

// TestGRPOShippedConfig runs configs/grpo/stories260k.yaml from the repository root as a user would,
// for 2 steps of 2 prompts: the report names the prompts and the rewards, every step logs TRL's
// reward metrics, and output_dir holds a finished model. num_generations 1 is refused.
func TestGRPOShippedConfig(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/no_robots_test_sft.parquet")
	out := t.TempDir()
	r := runCLI(t, "grpo", "--config", "configs/grpo/stories260k.yaml", "--set", "output_dir="+out,
		"--set", "max_train_samples=8", "--set", "max_steps=2", "--set", "per_device_train_batch_size=16",
		"--set", "save_steps=2", "--set", "report_plots=false")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "grpo: 7 prompts from ../shared/data/no_robots_test_sft.parquet, 8 completions each (2 prompts, 16 completions per micro-batch), 1 reward(s)") {
		t.Errorf("stderr %q", r.Stderr)
	}
	if !strings.HasPrefix(r.Stdout, "grpo: 2 steps, train loss ") || !strings.HasSuffix(strings.TrimSpace(r.Stdout), "model in "+out) {
		t.Errorf("stdout %q", r.Stdout)
	}
	ms := testutil.ReadMetrics(t, out)
	if len(ms) != 2 {
		t.Fatalf("%d metrics lines, want 2", len(ms))
	}
	for _, m := range ms {
		for _, k := range []string{"reward", "reward_std", "rewards/regex/mean", "completions/mean_length", "clip_ratio/region_mean"} {
			if _, ok := m[k]; !ok {
				t.Errorf("metrics %v: no %s", m, k)
			}
		}
	}

	r = runCLI(t, "grpo", "--config", "configs/grpo/stories260k.yaml", "--set", "output_dir="+t.TempDir(), "--set", "num_generations=1")
	if want := "configs/grpo/stories260k.yaml: num_generations 1: GRPO compares each completion with the others of its group, want >= 2"; r.Code == 0 || !strings.Contains(r.Stderr, want) {
		t.Errorf("exit %d, stderr %q; want %q", r.Code, r.Stderr, want)
	}
}
