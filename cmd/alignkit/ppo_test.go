package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
)

// TestPPOShippedConfig runs configs/ppo/stories260k.yaml as a user would, after the reward model it
// names (a few steps of configs/reward/stories260k.yaml, its path put into a copy of the config):
// one update of 4 steps logs TRL's PPO metrics, and output_dir holds the policy and its value model.
// A bad key value is refused with the config file named.
func TestPPOShippedConfig(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/no_robots_test_sft.parquet", "data/hh_rlhf_harmless_base_test.parquet")
	tmp := t.TempDir()
	rm := filepath.Join(tmp, "reward")
	r := runCLI(t, "reward", "train", "--config", "configs/reward/stories260k.yaml", "--set", "output_dir="+rm,
		"--set", "max_steps=2", "--set", "max_train_samples=8", "--set", "eval_split=0", "--set", "report_plots=false")
	if r.Code != 0 {
		t.Fatalf("reward train: %s", r.Stderr)
	}
	src, err := os.ReadFile(filepath.Join(sharedtest.RepoRoot(t), "configs", "ppo", "stories260k.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "path: runs/reward-stories260k") {
		t.Fatal("configs/ppo/stories260k.yaml no longer names runs/reward-stories260k")
	}
	cfg := filepath.Join(tmp, "ppo.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(src), "path: runs/reward-stories260k", "path: "+rm, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	r = runCLI(t, "ppo", "--config", cfg, "--set", "output_dir="+out, "--set", "max_train_samples=16",
		"--set", "max_steps=4", "--set", "save_steps=4", "--set", "report_plots=false", "--set", "response_length=8")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	if want := "ppo: 1 prompts skipped: with response_length 8 they do not fit max_position_embeddings 512\nppo: 15 prompts from ../shared/data/no_robots_test_sft.parquet; 8 per rollout batch, 4 optimizer steps on each (num_ppo_epochs 2 × num_mini_batches 2); value model " + rm; !strings.Contains(r.Stderr, want) {
		t.Errorf("stderr %q\nwant %q", r.Stderr, want)
	}
	if !strings.HasPrefix(r.Stdout, "ppo: 4 steps, train loss ") || !strings.HasSuffix(strings.TrimSpace(r.Stdout), "model in "+out) {
		t.Errorf("stdout %q", r.Stdout)
	}
	ms := testutil.ReadMetrics(t, out)
	if len(ms) != 4 {
		t.Fatalf("%d metrics lines, want 4", len(ms))
	}
	for _, m := range ms {
		for _, k := range []string{"objective/kl", "objective/scores", "objective/rlhf_reward", "policy/clipfrac_avg", "val/clipfrac_avg", "loss/policy_avg", "loss/value_avg"} {
			if _, ok := m[k]; !ok {
				t.Errorf("metrics %v: no %s", m, k)
			}
		}
	}
	for _, f := range []string{"model.safetensors", "value_model/model.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	r = runCLI(t, "ppo", "--config", cfg, "--set", "output_dir="+t.TempDir(), "--set", "cliprange=0")
	if want := cfg + ": cliprange 0: want > 0"; r.Code == 0 || !strings.Contains(r.Stderr, want) {
		t.Errorf("exit %d, stderr %q; want %q", r.Code, r.Stderr, want)
	}
}
