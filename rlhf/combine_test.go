package rlhf_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
)

// twoModelConfig samples 4 story prompts, every other one a safety prompt (is_safety), K = 4,
// scored by a helpfulness and a safety reward model (stories260K with fresh score heads).
func twoModelConfig(t *testing.T) rlhf.SampleConfig {
	t.Helper()
	dir := t.TempDir()
	cfg := rlhf.DefaultSampleConfig()
	cfg.ModelNameOrPath = storiesDir(t)
	for i, role := range []string{reward.RoleHelpfulness, reward.RoleSafety} {
		p := filepath.Join(dir, role)
		if err := checkpoint.Save(p, rewardFrom(t, testutil.Stories(t), uint64(11+i)), hf.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		cfg.RewardModels = append(cfg.RewardModels, reward.ModelSpec{Path: p, Role: role})
	}
	var b strings.Builder
	for i, p := range []string{"Once upon a time", "The cat sat", "Tom wanted to", "Lily had a red ball"} {
		fmt.Fprintf(&b, "{\"prompt\": %q, \"is_safety\": %v}\n", p, i%2 == 1)
	}
	cfg.Data.DatasetName = filepath.Join(dir, "prompts.jsonl")
	if err := os.WriteFile(cfg.Data.DatasetName, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.OutputDir = filepath.Join(dir, "samples")
	cfg.NumSamplesPerPrompt = 4
	cfg.MaxNewTokens = 10
	cfg.TopK = 50
	cfg.Seed = 3
	return cfg
}

// With two reward models every sample is scored by both, its reward is Llama 2's choice between
// them (reward.Select, by the prompt's is_safety flag), samples.parquet keeps both models' scores
// and the choice, and best.parquet holds the sample with the best combined reward.
func TestRunSampleTwoRewardModels(t *testing.T) {
	cfg := twoModelConfig(t)
	if _, err := rlhf.RunSample(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	rows, err := data.ReadParquet(filepath.Join(cfg.OutputDir, rlhf.SamplesFile))
	if err != nil {
		t.Fatal(err)
	}
	best, err := data.ReadParquet(filepath.Join(cfg.OutputDir, rlhf.BestFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || len(best) != 4 {
		t.Fatalf("%d sample rows, %d best rows, want 4 each", len(rows), len(best))
	}
	scorers := map[string]*reward.Scorer{}
	for _, s := range cfg.RewardModels {
		if scorers[s.Role], err = reward.NewScorer(s.Path); err != nil {
			t.Fatal(err)
		}
	}
	usedBoth := map[bool]bool{}
	differs := false
	for i, r := range rows {
		f := r.Fields
		prompt := f["prompt"].(string)
		comps := anyStrings(f["completions"])
		prompts := slices.Repeat([]string{prompt}, len(comps))
		own := map[string][]float64{}
		for role, sc := range scorers {
			if own[role], err = sc.ScoreText(context.Background(), prompts, comps); err != nil {
				t.Fatal(err)
			}
		}
		safety := i%2 == 1
		want, used, err := reward.Select(own[reward.RoleHelpfulness], own[reward.RoleSafety], slices.Repeat([]bool{safety}, len(comps)))
		if err != nil {
			t.Fatal(err)
		}
		if got := anyFloats(f["rewards_helpfulness"]); !slices.Equal(got, own[reward.RoleHelpfulness]) {
			t.Errorf("row %d: rewards_helpfulness %v, want the model's own %v", i, got, own[reward.RoleHelpfulness])
		}
		if got := anyFloats(f["rewards_safety"]); !slices.Equal(got, own[reward.RoleSafety]) {
			t.Errorf("row %d: rewards_safety %v, want the model's own %v", i, got, own[reward.RoleSafety])
		}
		if got := anyFloats(f["rewards"]); !slices.Equal(got, want) {
			t.Errorf("row %d: rewards %v, want the combined %v", i, got, want)
		}
		if got := anyBools(f["used_safety"]); !slices.Equal(got, used) {
			t.Errorf("row %d: used_safety %v, want %v", i, got, used)
		}
		for _, u := range used {
			usedBoth[u] = true
		}
		// The best sample is the argmax of the combined reward (ties: the first).
		b := 0
		for j, v := range want {
			if v > want[b] {
				b = j
			}
		}
		if f["best_index"] != int64(b) || f["best_reward"] != want[b] {
			t.Errorf("row %d: best %v (%v), want %d (%v)", i, f["best_index"], f["best_reward"], b, want[b])
		}
		if best[i].Fields["completion"] != comps[b] || best[i].Fields["reward"] != want[b] {
			t.Errorf("best row %d: %v, want completion %q reward %v", i, best[i].Fields, comps[b], want[b])
		}
		hb := 0
		for j, v := range own[reward.RoleHelpfulness] {
			if v > own[reward.RoleHelpfulness][hb] {
				hb = j
			}
		}
		differs = differs || hb != b
	}
	if !usedBoth[true] || !usedBoth[false] {
		t.Errorf("used_safety took one value only (%v): the run does not exercise the combination", usedBoth)
	}
	if !differs {
		t.Errorf("the combined reward picked the helpfulness model's best for every prompt: the test cannot tell them apart")
	}
}

func anyBools(v any) []bool {
	var out []bool
	for _, x := range v.([]any) {
		out = append(out, x.(bool))
	}
	return out
}

// Bad reward model keys are one line naming the key, file or column, before output_dir is made.
func TestRunSampleRewardModelsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*rlhf.SampleConfig)
		want func(rlhf.SampleConfig) string
	}{
		{"both keys", func(c *rlhf.SampleConfig) { c.RewardModelNameOrPath = c.RewardModels[0].Path },
			func(rlhf.SampleConfig) string {
				return "reward_model_name_or_path, reward_models: both are set; use one (reward_models for a helpfulness and a safety model)"
			}},
		{"unknown role", func(c *rlhf.SampleConfig) { c.RewardModels[1].Role = "harmless" },
			func(rlhf.SampleConfig) string {
				return `reward_models[1].role: unknown "harmless" (want helpfulness or safety)`
			}},
		{"missing safety column", func(c *rlhf.SampleConfig) { c.SafetyColumn = "unsafe" },
			func(c rlhf.SampleConfig) string {
				return c.Data.DatasetName + `: row 0: no "unsafe" column (which prompts are safety prompts; set safety_column)`
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := twoModelConfig(t)
			tc.edit(&cfg)
			_, err := rlhf.RunSample(context.Background(), cfg, io.Discard)
			if want := tc.want(cfg); err == nil || err.Error() != want {
				t.Errorf("error %v\nwant  %s", err, want)
			}
			if _, err := os.Stat(cfg.OutputDir); !os.IsNotExist(err) {
				t.Errorf("output_dir was created: %v", err)
			}
		})
	}
}

// RLPromptArgs.Load gives the RL trainers their prompts, reward models and safety flags in one
// step: with two models each prompt's flag is its row's is_safety; with none, no models; a file
// without the column is one error naming it. Validate's errors name the key.
func TestRLPromptArgs(t *testing.T) {
	cfg := twoModelConfig(t)
	gen, err := rlhf.NewLocal(testutil.Stories(t), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := rlhf.RLPromptArgs{DatasetName: cfg.Data.DatasetName, RewardModels: cfg.RewardModels}
	ps, models, err := a.Load(ctx, gen, 8, 256, "ppo", "response_length", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if models == nil || !models.Combined() || len(ps.Prompts) != 4 {
		t.Fatalf("models %v, %d prompts", models, len(ps.Prompts))
	}
	for i, p := range ps.Prompts {
		if p.Safety != (i%2 == 1) {
			t.Errorf("prompt %d: safety %v, want %v", i, p.Safety, i%2 == 1)
		}
	}
	none := a
	none.RewardModels = nil
	if _, models, err := none.Load(ctx, gen, 8, 256, "grpo", "max_completion_length", io.Discard); err != nil || models != nil {
		t.Errorf("no reward models: models %v, error %v", models, err)
	}
	other := a
	other.SafetyColumn = "harmful"
	if _, _, err := other.Load(ctx, gen, 8, 256, "ppo", "response_length", io.Discard); err == nil || !strings.Contains(err.Error(), `"harmful"`) {
		t.Errorf("missing safety column: error %v, want one naming it", err)
	}
	for _, c := range []struct {
		a    rlhf.RLPromptArgs
		want string
	}{
		{rlhf.RLPromptArgs{}, "dataset_name: must be set (the prompts)"},
		{rlhf.RLPromptArgs{DatasetName: "p.jsonl", MaxTrainSamples: -1}, "max_train_samples -1: want >= 0 (0: all)"},
		{rlhf.RLPromptArgs{DatasetName: "p.jsonl", RewardModels: []reward.ModelSpec{{Role: reward.RoleSafety}}}, "reward_models[0].path: must be set"},
	} {
		if err := c.a.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("%+v: error %v, want %q", c.a, err, c.want)
		}
	}
	if got := (rlhf.RLPromptArgs{}).Defaults().SafetyColumn; got != rlhf.DefaultSafetyColumn {
		t.Errorf("default safety_column %q", got)
	}
}
