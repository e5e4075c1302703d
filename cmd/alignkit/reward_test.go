package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/reward"
)

// TestRewardShippedConfig runs configs/reward/stories260k.yaml as a user would from the repository
// root, cut to 12 steps over 16 pairs: the summary line comes first, the training accuracy logged
// in metrics.jsonl climbs above 0.5, evaluation runs at the end, and output_dir holds a finished
// LlamaForSequenceClassification model with the chat template it was trained with.
func TestRewardShippedConfig(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/hh_rlhf_harmless_base_test.parquet")
	out := t.TempDir()
	r := runCLI(t, "reward", "train", "--config", "configs/reward/stories260k.yaml", "--set", "output_dir="+out,
		"--set", "max_train_samples=16", "--set", "max_steps=12", "--set", "learning_rate=2e-3", "--set", "logging_steps=4",
		"--set", "eval_steps=12", "--set", "save_steps=12", "--set", "max_length=128", "--set", "max_prompt_length=64",
		"--set", "report_plots=false")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	want := "reward data: hh_rlhf_harmless_base_test.parquet: 16 pairs, 0 skipped as chosen == rejected; margins: none; score head initialised on a causal LM; train: 16 pairs"
	if first, _, _ := strings.Cut(r.Stderr, "\n"); !strings.HasPrefix(first, want) {
		t.Errorf("first stderr line:\n got %s\nwant %s...", first, want)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json",
		"metrics.jsonl", "trainer_state.json", "training_complete.json", "checkpoint-12"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("output_dir lacks %s", f)
		}
	}
	lines := testutil.ReadMetrics(t, out)
	first, last := lines[0], lines[len(lines)-1]
	if !(last["accuracy"] > 0.5 && last["accuracy"] > first["accuracy"] && last["loss"] < first["loss"]) {
		t.Errorf("training accuracy does not climb: first %v\nlast %v", first, last)
	}
	if _, ok := last["eval_accuracy"]; !ok {
		t.Errorf("no eval_accuracy at the last step: %v", last)
	}
	ck, err := checkpoint.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if c := ck.Weights.Config; len(c.Architectures) != 1 || c.Architectures[0] != "LlamaForSequenceClassification" || c.NumLabels != 1 {
		t.Errorf("saved config: %v, num_labels %d", c.Architectures, c.NumLabels)
	}
	if !strings.Contains(ck.Tok.ChatTemplate(), "[INST]") {
		t.Errorf("saved tokenizer has no llama-2 template: %q", ck.Tok.ChatTemplate())
	}
}

// TestRewardConfigKeys loads the shipped config and checks the keys the reward trainer adds.
func TestRewardConfigKeys(t *testing.T) {
	cfg := reward.DefaultConfig()
	if err := conf.Load(filepath.Join(sharedtest.RepoRoot(t), "configs", "reward", "stories260k.yaml"), []string{"margin_preset=small", "rating_column=rating", "margin_map={\"much better\": 1.5}", "center_rewards_coefficient=0.01"}, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.MarginPreset != "small" || cfg.RatingColumn != "rating" || cfg.MarginMap["much better"] != 1.5 || cfg.CenterRewardsCoefficient != 0.01 || cfg.MaxPromptLength != 192 {
		t.Errorf("config: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

// TestRewardScoreCLI scores a real multi-turn Parquet file through the command line: stdout reports
// the rows, and the output holds the input's rows in order with the rewards the Go API gives.
func TestRewardScoreCLI(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/capybara_test.parquet")
	rm, err := checkpoint.Open(filepath.Join(shared, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	if rm, err = reward.FromCausalLM(rm, 1); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "rm")
	if err := checkpoint.Save(model, rm, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(shared, "data", "capybara_test.parquet")
	out := filepath.Join(dir, "scored.parquet")
	r := runCLI(t, "reward", "score", "--model", model, "--input", in, "--output", out,
		"--batch-size", "16", "--chat-template", "chatml", "--max-length", "64")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	if r.Stdout != "scored 200 rows into "+out+" (column reward)\n" {
		t.Errorf("stdout %q", r.Stdout)
	}
	back, err := data.ReadRows(out)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := data.ReadRows(in)
	if err != nil {
		t.Fatal(err)
	}
	s, err := reward.NewScorer(model, reward.WithChatTemplate("chatml"), reward.WithMaxLength(64))
	if err != nil {
		t.Fatal(err)
	}
	items, err := reward.ItemsFromRows(orig, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.ScoreItems(context.Background(), items, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 200 {
		t.Fatalf("%d rows back", len(back))
	}
	for i := range back {
		if back[i].Fields["reward"] != want[i] || back[i].Fields["source"] != orig[i].Fields["source"] {
			t.Fatalf("row %d: reward %v source %v, want %v %v", i, back[i].Fields["reward"], back[i].Fields["source"], want[i], orig[i].Fields["source"])
		}
	}
}

// TestRewardBadInput: identical pairs are a warning, not an error; every real error is exit status
// 1 with one line naming the file, row, column or key, and leaves no output behind.
func TestRewardBadInput(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K/model.safetensors")
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dups := write("dups.jsonl", `{"prompt": "The cat", "chosen": " sat on the mat.", "rejected": " flew away."}
{"prompt": "The dog", "chosen": " ran.", "rejected": " ran."}
{"prompt": "The sun", "chosen": " was warm.", "rejected": " was green."}
`)
	noRejected := write("norej.jsonl", `{"prompt": "The cat", "chosen": " sat."}`+"\n")
	toScore := write("score.jsonl", `{"prompt": "The cat", "response": " sat."}`+"\n")
	stories := filepath.Join(shared, "models", "stories260K")
	cfg := write("cfg.yaml", "model_name_or_path: "+stories+"\nmax_steps: 1\nper_device_train_batch_size: 2\nreport_plots: false\n")
	base := []string{"reward", "train", "--config", cfg}

	out := filepath.Join(dir, "dups-out")
	r := runCLI(t, append(base, "--set", "dataset_name="+dups, "--set", "output_dir="+out)...)
	if r.Code != 0 {
		t.Fatalf("identical pair: exit %d: %s", r.Code, r.Stderr)
	}
	if first, _, _ := strings.Cut(r.Stderr, "\n"); first != "warning: "+dups+": skipped 1 row whose chosen is identical to rejected (row 1)" {
		t.Errorf("first stderr line %q", first)
	}
	if !strings.Contains(r.Stderr, ": 2 pairs, 1 skipped as chosen == rejected;") {
		t.Errorf("summary: %s", r.Stderr)
	}

	scoreOut := filepath.Join(dir, "scored.jsonl")
	trainOut := filepath.Join(dir, "bad-out")
	cases := []struct {
		args []string
		want string
		out  string
	}{
		{append(base, "--set", "dataset_name="+noRejected, "--set", "output_dir="+trainOut),
			"alignkit: " + noRejected + `: row 0: missing column "rejected"`, trainOut},
		{append(base, "--set", "dataset_name="+dups, "--set", "output_dir="+trainOut, "--set", "margin_presets=small"),
			`alignkit: --set margin_presets: unknown key "margin_presets" (did you mean "margin_preset"?)`, trainOut},
		{[]string{"reward", "score", "--model", stories, "--input", toScore, "--output", scoreOut},
			"alignkit: " + stories + " is not a reward model: it has no score.weight (architectures LlamaForCausalLM); train one with `alignkit reward train`", scoreOut},
		{[]string{"reward", "score", "--model", stories, "--input", toScore},
			`alignkit: required flag(s) "output" not set`, scoreOut},
	}
	for _, tc := range cases {
		r := runCLI(t, tc.args...)
		if r.Code != 1 || r.ErrorLine() != tc.want {
			t.Errorf("%v:\n exit %d, %s\nwant %s", tc.args, r.Code, r.ErrorLine(), tc.want)
		}
		if _, err := os.Stat(tc.out); !os.IsNotExist(err) {
			t.Errorf("%v: %s exists after the failure", tc.args, tc.out)
		}
	}
}

// TestRewardMistralConfig checks that the 7B config is a valid reward config with the Llama 2
// recipe's numbers: 512 pairs per step, lr 1e-5 cosine down to 10%, 3% warm-up, one epoch.
func TestRewardMistralConfig(t *testing.T) {
	cfg := reward.DefaultConfig()
	if err := conf.Load(filepath.Join(sharedtest.RepoRoot(t), "configs", "reward", "mistral-7b.yaml"), nil, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c := cfg.Defaults()
	got := []any{c.PerDeviceTrainBatchSize * c.GradientAccumulationSteps, c.LearningRate, c.LRSchedulerType,
		*c.LRSchedulerKwargs.MinLRRate, c.WarmupRatio, c.NumTrainEpochs, c.Data.ChatTemplate, c.MarginPreset, c.CenterRewardsCoefficient}
	want := []any{512, 1e-5, "cosine_with_min_lr", 0.1, 0.03, 1.0, "zephyr", "none", 0.01}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

// TestRewardScoreTwoModelsCLI scores rows with a helpfulness and a safety reward model: each
// model's score, the combined reward (Llama 2's choice, reward.Select, by the is_safety column) and
// used_safety, each against the models' own scores; bad flags are one line.
func TestRewardScoreTwoModelsCLI(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K/model.safetensors")
	dir := t.TempDir()
	paths := map[string]string{}
	for i, role := range []string{reward.RoleHelpfulness, reward.RoleSafety} {
		ck, err := checkpoint.Open(filepath.Join(shared, "models", "stories260K"))
		if err != nil {
			t.Fatal(err)
		}
		rm, err := reward.FromCausalLM(ck, uint64(3+i))
		if err != nil {
			t.Fatal(err)
		}
		paths[role] = filepath.Join(dir, role)
		if err := checkpoint.Save(paths[role], rm, hf.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	prompts := []string{"The cat", "Once upon a time", "Tom saw a dog"}
	answers := []string{" sat on the mat.", " there was a girl.", " and ran home."}
	flags := []bool{false, true, false}
	var b strings.Builder
	items := make([]reward.Item, len(prompts))
	for i := range prompts {
		fmt.Fprintf(&b, "{\"prompt\": %q, \"response\": %q, \"unsafe\": %v}\n", prompts[i], answers[i], flags[i])
		items[i] = reward.Item{Prompt: prompts[i], Response: answers[i]}
	}
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	hm, sm := "--reward-model="+paths[reward.RoleHelpfulness]+":helpfulness", "--reward-model="+paths[reward.RoleSafety]+":safety"
	r := runCLI(t, "reward", "score", sm, hm, "--safety-column", "unsafe", "--input", in, "--output", out)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	if want := "scored 3 rows into " + out + " (columns reward_helpfulness, reward_safety, reward, used_safety)\n"; r.Stdout != want {
		t.Errorf("stdout %q, want %q", r.Stdout, want)
	}
	own := map[string][]float64{}
	for role, p := range paths {
		s, err := reward.NewScorer(p)
		if err != nil {
			t.Fatal(err)
		}
		if own[role], err = s.ScoreItems(context.Background(), items, nil); err != nil {
			t.Fatal(err)
		}
	}
	want, used, err := reward.Select(own[reward.RoleHelpfulness], own[reward.RoleSafety], flags)
	if err != nil {
		t.Fatal(err)
	}
	back, err := data.ReadRows(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range back {
		f := row.Fields
		if f["reward_helpfulness"] != own[reward.RoleHelpfulness][i] || f["reward_safety"] != own[reward.RoleSafety][i] ||
			f["reward"] != want[i] || f["used_safety"] != used[i] || f["prompt"] != prompts[i] {
			t.Errorf("row %d: %v\nwant helpfulness %v safety %v reward %v used %v", i, f,
				own[reward.RoleHelpfulness][i], own[reward.RoleSafety][i], want[i], used[i])
		}
	}

	bad := filepath.Join(dir, "bad.jsonl")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", paths[reward.RoleHelpfulness], hm},
			"alignkit: --model, --reward-model: both are set; use --model for one reward model or --reward-model for each of several"},
		{[]string{hm, "--reward-model", paths[reward.RoleSafety] + ":harmless"},
			`alignkit: --reward-model: reward_models[1].role: unknown "harmless" (want helpfulness or safety)`},
		{[]string{"--reward-model", paths[reward.RoleSafety]},
			"alignkit: --reward-model \"" + paths[reward.RoleSafety] + "\": want PATH:ROLE with ROLE helpfulness or safety"},
		{[]string{hm, sm}, "alignkit: " + in + `: row 0: no "is_safety" column (which prompts are safety prompts; set --safety-column)`},
		{nil, "alignkit: --model or --reward-model: one must be set (the reward model that scores)"},
	} {
		r := runCLI(t, append([]string{"reward", "score", "--input", in, "--output", bad}, tc.args...)...)
		if r.Code != 1 || r.ErrorLine() != tc.want {
			t.Errorf("%v:\n exit %d, %s\nwant %s", tc.args, r.Code, r.ErrorLine(), tc.want)
		}
		if _, err := os.Stat(bad); !os.IsNotExist(err) {
			t.Errorf("%v: %s exists after the failure", tc.args, bad)
		}
	}
}
