package ppo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/train"
)

// chainConfig: one rejection-sampling round on 4 alpaca instructions (as rlhf's own tests), then a
// ppo: stage of one 2-step update on no_robots prompt strings.
func chainConfig(t *testing.T) RLHFConfig {
	dir := sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/alpaca_en_demo.parquet", "data/no_robots_test_sft.parquet")
	cfg := DefaultRLHFConfig()
	cfg.ModelNameOrPath = filepath.Join(dir, "models", "stories260K")
	cfg.RewardModelNameOrPath = rewardModel(t, 3)
	cfg.Data.DatasetName = filepath.Join(dir, "data", "alpaca_en_demo.parquet")
	cfg.Data.EvalSplit, cfg.Data.MaxTrainSamples, cfg.Data.MaxEvalSamples = 0.1, 4, 2
	cfg.Data.ChatTemplate, cfg.Data.MaxLength = "chatml", 128
	cfg.OutputDir = filepath.Join(t.TempDir(), "run")
	cfg.NumSamplesPerPrompt, cfg.MaxNewTokens, cfg.Seed, cfg.NumRounds = 2, 8, 11, 1
	cfg.SFT.MaxSteps, cfg.SFT.PerDeviceTrainBatchSize, cfg.SFT.LearningRate, cfg.SFT.LoggingSteps = 2, 4, 1e-3, 1
	no := false
	cfg.SFT.ReportPlots = &no
	cfg.PPO.DatasetName = filepath.Join(dir, "data", "no_robots_test_sft.parquet")
	cfg.PPO.Columns = map[string]string{"prompt": "prompt"}
	cfg.PPO.MaxTrainSamples, cfg.PPO.ResponseLength, cfg.PPO.NumPPOEpochs = 8, 8, 2
	cfg.PPO.MaxSteps, cfg.PPO.PerDeviceTrainBatchSize, cfg.PPO.LearningRate, cfg.PPO.LoggingSteps = 2, 4, 1e-3, 1
	cfg.PPO.ReportPlots = &no
	return cfg
}

// Rejection sampling, then PPO on its policy (Llama 2's RLHF-V5): the ppo: stage starts from round
// 1's fine-tuned policy, writes output_dir/ppo with the policy and its value model, and a second
// run of the same config finds the stage complete and trains nothing.
func TestRLHFThenPPO(t *testing.T) {
	cfg := chainConfig(t)
	var log bytes.Buffer
	rows, res, err := RunRLHF(context.Background(), cfg, train.WithLogWriter(&log), train.WithProgressBar(false))
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	policy := rows[len(rows)-1].Policy
	if want := filepath.Join(cfg.OutputDir, "round-1", "checkpoint"); policy != want {
		t.Fatalf("last policy %s, want %s", policy, want)
	}
	if !strings.Contains(log.String(), "rlhf run: ppo on "+policy+" into "+filepath.Join(cfg.OutputDir, PPODir)) || res.Steps != 2 {
		t.Fatalf("steps %d, log:\n%s", res.Steps, log.String())
	}
	if ms := testutil.ReadMetrics(t, res.OutputDir); len(ms) != 2 || ms[0]["objective/kl"] != 0 {
		t.Fatalf("ppo metrics %v", ms)
	}
	for _, f := range []string{"model.safetensors", filepath.Join(ValueModelDir, "model.safetensors")} {
		if _, err := os.Stat(filepath.Join(cfg.OutputDir, PPODir, f)); err != nil {
			t.Fatal(err)
		}
	}
	log.Reset()
	_, res, err = RunRLHF(context.Background(), cfg, train.WithLogWriter(&log), train.WithProgressBar(false))
	if err != nil || res.Steps != 0 || !strings.Contains(log.String(), "rlhf run: the ppo stage in "+filepath.Join(cfg.OutputDir, PPODir)+" is complete") {
		t.Fatalf("second run: %v, %d steps, log:\n%s", err, res.Steps, log.String())
	}
}

func TestRLHFPPOBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*RLHFConfig)
		want string
	}{
		{"policy", func(c *RLHFConfig) { c.PPO.ModelNameOrPath = "x" }, "ppo.model_name_or_path: set by the loop (the last round's policy); use model_name_or_path at the top level"},
		{"output", func(c *RLHFConfig) { c.PPO.OutputDir = "x" }, "ppo.output_dir: set by the loop (output_dir/ppo)"},
		{"prompts", func(c *RLHFConfig) { c.PPO.DatasetName = "" }, "ppo.dataset_name: must be set: PPO's prompts (the top level's dataset_name holds the held-out prompts too)"},
		{"ppo key", func(c *RLHFConfig) { c.PPO.Lam = 2 }, "ppo.lam 2: want a value in [0, 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := chainConfig(t)
			tc.edit(&c)
			if _, _, err := RunRLHF(context.Background(), c, train.WithLogWriter(&bytes.Buffer{})); err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			if _, err := os.Stat(c.OutputDir); !os.IsNotExist(err) {
				t.Fatalf("output_dir written before the ppo: section was checked (%v)", err)
			}
		})
	}
	// Without a ppo: section nothing of PPO is checked or run.
	c := chainConfig(t)
	c.PPO = NewTrainConfig()
	c.PPO.Lam = 2 // a ppo: section that sets one key is checked ...
	if !c.HasPPO() || c.Validate() == nil {
		t.Fatal("a ppo: section with lam 2 passed")
	}
	c.PPO = NewTrainConfig() // ... only when the section sets nothing
	if err := c.Validate(); c.HasPPO() || err != nil {
		t.Fatalf("an empty ppo: section: HasPPO %v, %v", c.HasPPO(), err)
	}
}
