package rlhf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/train"
)

// runConfig: 2 rounds on 4 alpaca instructions (chatml), 2 held out, K = 3, 10-token answers,
// 3 SFT steps per round with a checkpoint every 2, a reward model trained in the test.
func runConfig(t *testing.T) rlhf.RunConfig {
	shared := sharedDir(t)
	cfg := rlhf.DefaultRunConfig()
	cfg.ModelNameOrPath = filepath.Join(shared, "models", "stories260K")
	cfg.RewardModelNameOrPath = trainedReward(t)
	cfg.Data.DatasetName = filepath.Join(shared, "data", "alpaca_en_demo.parquet")
	cfg.Data.EvalSplit = 0.1
	cfg.Data.MaxTrainSamples = 4
	cfg.Data.MaxEvalSamples = 2
	cfg.Data.ChatTemplate = "chatml"
	cfg.Data.MaxLength = 128
	cfg.OutputDir = filepath.Join(t.TempDir(), "run")
	cfg.NumSamplesPerPrompt = 3
	cfg.MaxNewTokens = 10
	cfg.Seed = 11
	cfg.NumRounds = 2
	cfg.SFT.MaxSteps = 3
	cfg.SFT.PerDeviceTrainBatchSize = 4
	cfg.SFT.LearningRate = 1e-3
	cfg.SFT.LoggingSteps = 1
	cfg.SFT.SaveSteps = 2
	no := false
	cfg.SFT.ReportPlots = &no
	return cfg
}

type stageAt struct {
	Round int
	Stage string
}

// runUntil runs the loop, cancelling it right after stop completes (zero stop: never), and returns
// the stages it ran and its error.
func runUntil(t *testing.T, cfg rlhf.RunConfig, stop stageAt) ([]stageAt, []rlhf.RoundSummary, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ran []stageAt
	rows, err := rlhf.RunAfterStage(ctx, cfg, func(r int, s string) {
		ran = append(ran, stageAt{r, s})
		if (stageAt{r, s}) == stop {
			cancel()
		}
	}, train.WithLogWriter(io.Discard), train.WithProgressBar(false))
	return ran, rows, err
}

func readState(t *testing.T, cfg rlhf.RunConfig) (round int, stage, policy string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(cfg.OutputDir, rlhf.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Round  int    `json:"round"`
		Stage  string `json:"stage"`
		Policy string `json:"policy"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	return st.Round, st.Stage, st.Policy
}

// The loop end to end: stopped between rounds 1 and 2, then inside round 2 after selection, and
// resumed each time at the stage where it stopped, it leaves every round's artefacts; the pool keeps
// per prompt the best sample of all rounds so far; round 2 samples with round 1's fine-tuned policy.
func TestRunResumes(t *testing.T) {
	cfg := runConfig(t)
	cfg.APIKey = "sk-must-not-be-saved" // unused by the local backend, and never written
	round := func(r int, parts ...string) string {
		return filepath.Join(append([]string{cfg.OutputDir, "round-" + string(rune('0'+r))}, parts...)...)
	}

	// First run: stop after round 1's evaluation.
	ran, _, err := runUntil(t, cfg, stageAt{1, rlhf.StageEval})
	want := []stageAt{{0, "eval"}, {1, "sample"}, {1, "select"}, {1, "train"}, {1, "eval"}}
	if !errors.Is(err, rlhf.ErrInterrupted) || !reflect.DeepEqual(ran, want) {
		t.Fatalf("first run: %v, stages %v", err, ran)
	}
	if err.Error() != "rlhf run interrupted before round 2 stage sample (rerun with the same config to resume): context canceled" {
		t.Errorf("interruption: %v", err)
	}
	if r, s, p := readState(t, cfg); r != 1 || s != "eval" || p != round(1, "checkpoint") {
		t.Errorf("state after round 1: %d %s %s", r, s, p)
	}
	if raw, _ := os.ReadFile(filepath.Join(cfg.OutputDir, rlhf.StateFile)); bytes.Contains(raw, []byte("sk-must-not")) || bytes.Contains(raw, []byte("api_key")) {
		t.Errorf("state.json holds the API key:\n%s", raw)
	}
	if _, err := os.Stat(round(2)); !os.IsNotExist(err) {
		t.Errorf("round 2 started before the stop: %v", err)
	}
	r1Samples, err := os.ReadFile(round(1, "samples", rlhf.SamplesFile))
	if err != nil {
		t.Fatal(err)
	}

	// A resume with another config is refused (num_rounds alone may change).
	other := cfg
	other.NumSamplesPerPrompt = 2
	_, err = rlhf.Run(context.Background(), other, train.WithLogWriter(io.Discard))
	if err == nil || err.Error() != "output_dir "+cfg.OutputDir+" holds a run with num_samples_per_prompt = 3, this config has 2: resume with the same config (only num_rounds may change) or choose another output_dir" {
		t.Errorf("changed config: %v", err)
	}

	// Second run: resumes at round 2's sampling, stops after its selection.
	ran, _, err = runUntil(t, cfg, stageAt{2, rlhf.StageSelect})
	if want := []stageAt{{2, "sample"}, {2, "select"}}; !errors.Is(err, rlhf.ErrInterrupted) || !reflect.DeepEqual(ran, want) {
		t.Fatalf("second run: %v, stages %v", err, ran)
	}
	// Third run: fine-tunes and evaluates round 2.
	var log bytes.Buffer
	rows, err := rlhf.RunAfterStage(context.Background(), cfg, func(r int, s string) { ran = append(ran, stageAt{r, s}) },
		train.WithLogWriter(&log), train.WithProgressBar(false))
	if err != nil {
		t.Fatal(err)
	}
	if want := []stageAt{{2, "sample"}, {2, "select"}, {2, "train"}, {2, "eval"}}; !reflect.DeepEqual(ran, want) {
		t.Errorf("third run stages %v", ran)
	}
	if !strings.Contains(log.String(), "resuming "+cfg.OutputDir+" after round 2 stage select") {
		t.Errorf("log does not say where it resumed:\n%s", log.String())
	}
	if again, _ := os.ReadFile(round(1, "samples", rlhf.SamplesFile)); !bytes.Equal(again, r1Samples) {
		t.Errorf("round 1's samples were rewritten by the resumed run")
	}

	// Every round's artefacts.
	for r := 1; r <= 2; r++ {
		for _, p := range [][]string{
			{"samples", rlhf.SamplesFile}, {"samples", rlhf.BestFile}, {"samples", rlhf.CurvesFile}, {"samples", rlhf.CurvesPlot},
			{"samples", rlhf.CompleteFile}, {"data", "sft.parquet"}, {"data", "pool.json"},
			{"checkpoint", "training_complete.json"}, {"checkpoint", "model.safetensors"}, {"checkpoint", "metrics.jsonl"},
			{"eval", rlhf.EvalFile}, {"eval", rlhf.SamplesFile},
		} {
			if _, err := os.Stat(round(r, p...)); err != nil {
				t.Errorf("round %d: %v", r, err)
			}
		}
	}

	// The pool (keep 1): each prompt's SFT target in round 2 is its best sample over rounds 1 and 2
	// (ties to the earlier round), recomputed here from the two rounds' samples.
	s1, err := rlhf.ReadSamples(round(1, "samples"))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := rlhf.ReadSamples(round(2, "samples"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := rlhf.LoadPool(round(2, "data", "pool.json"))
	if err != nil {
		t.Fatal(err)
	}
	sft2, err := data.Load(data.Source{Path: round(2, "data", "sft.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	byPrompt := map[string]data.Record{}
	for _, rec := range sft2.Records {
		byPrompt[rlhf.Prompt{Messages: rec.Messages[:len(rec.Messages)-1]}.Key()] = rec
	}
	fromRound1 := 0
	for i, p := range s1.Prompts {
		t1, r1 := s1.Best(i)
		t2, r2 := s2.Best(i)
		wantText, wantRound := t1, 1
		if r2 > r1 {
			wantText, wantRound = t2, 2
		}
		top := pool.Top(p.Key())
		if len(top) != 1 || top[0].Text != wantText || top[0].Round != wantRound {
			t.Errorf("prompt %d: pool %+v, want %q from round %d", i, top, wantText, wantRound)
		}
		if rec := byPrompt[p.Key()]; rec.Messages == nil || rec.Messages[len(rec.Messages)-1].Content != wantText {
			t.Errorf("prompt %d: round 2 SFT row %+v, want the answer %q", i, rec.Messages, wantText)
		}
		if wantRound == 1 {
			fromRound1++
		}
	}
	t.Logf("round 2's SFT set keeps %d of %d targets from round 1", fromRound1, len(s1.Prompts))

	// Round 2 sampled with round 1's fine-tuned policy: it differs from the base model, and the
	// round-2 samples are what that checkpoint generates with the run's seeds.
	base := testutil.Stories(t)
	ck1, err := checkpoint.Open(round(1, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(ck1.Weights.Tensors["model.embed_tokens.weight"].Data, base.Weights.Tensors["model.embed_tokens.weight"].Data) {
		t.Errorf("round 1's fine-tuning left the weights unchanged")
	}
	gen, err := rlhf.NewLocal(ck1, "chatml")
	if err != nil {
		t.Fatal(err)
	}
	regen, err := gen.Generate(context.Background(), s2.Prompts, 3, rlhf.Sampling{Temperature: 1, TopP: 1, MaxNewTokens: 10, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(regen, s2.Completions[0]) {
		t.Errorf("round 2 samples %q, round 1's policy generates %q", s2.Completions[0], regen)
	}

	// The summary: rounds 0, 1, 2 in summary.json, summary.md and the return value.
	if len(rows) != 3 || rows[0].Round != 0 || rows[2].Round != 2 || rows[2].Policy != round(2, "checkpoint") ||
		rows[1].SFTExamples == nil || *rows[1].SFTExamples != 4 || rows[0].SampleMeanReward != nil || rows[1].SFTTrainLoss == nil {
		t.Fatalf("summary %+v", rows)
	}
	for _, r := range rows {
		if !(r.EvalMaxReward >= r.EvalMeanReward) {
			t.Errorf("round %d: eval max %v below mean %v", r.Round, r.EvalMaxReward, r.EvalMeanReward)
		}
	}
	md, err := os.ReadFile(filepath.Join(cfg.OutputDir, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(md)), "\n"); len(lines) != 5 || !strings.HasPrefix(lines[4], "| 2 | ") {
		t.Errorf("summary.md:\n%s", md)
	}
	var sj struct {
		Rounds []rlhf.RoundSummary `json:"rounds"`
	}
	raw, _ := os.ReadFile(filepath.Join(cfg.OutputDir, "summary.json"))
	if err := json.Unmarshal(raw, &sj); err != nil || !reflect.DeepEqual(sj.Rounds, rows) {
		t.Errorf("summary.json %s: %v", raw, err)
	}

	// A finished run started again does nothing; one more round extends it.
	ran = nil
	if _, err := rlhf.RunAfterStage(context.Background(), cfg, func(r int, s string) { ran = append(ran, stageAt{r, s}) }, train.WithLogWriter(io.Discard)); err != nil || ran != nil {
		t.Errorf("rerun of a finished run: %v, stages %v", err, ran)
	}
}

func TestRunConfigErrors(t *testing.T) {
	cases := []struct {
		edit func(*rlhf.RunConfig)
		want string
	}{
		{func(c *rlhf.RunConfig) { c.NumSamplesPerPrompt = 0 }, "num_samples_per_prompt 0: want K >= 1 completions per prompt"},
		{func(c *rlhf.RunConfig) { c.Data.EvalSplit = 0 }, "eval_dataset_name / eval_split: set one: each round's policy is scored on held-out prompts"},
		{func(c *rlhf.RunConfig) { c.Backend, c.BaseURL = rlhf.BackendOpenAI, "http://127.0.0.1:1/v1" },
			"backend openai: rlhf run samples with the policy it has just fine-tuned, which needs backend local"},
		{func(c *rlhf.RunConfig) { c.SFT.OutputDir = "x" }, "sft.output_dir: set by the loop (output_dir/round-r/checkpoint)"},
		{func(c *rlhf.RunConfig) { c.SFT.LearningRate = -1 }, "sft.learning_rate: must be > 0, got -1"},
		{func(c *rlhf.RunConfig) { c.PoolKeep = 0 }, "pool_keep 0: want at least 1 sample per prompt"},
		{func(c *rlhf.RunConfig) {
			c.RewardModels = []reward.ModelSpec{{Path: c.RewardModelNameOrPath, Role: reward.RoleHelpfulness}}
		}, "reward_model_name_or_path, reward_models: both are set; use one (reward_models for a helpfulness and a safety model)"},
		{func(c *rlhf.RunConfig) {
			c.RewardModels = []reward.ModelSpec{{Path: c.RewardModelNameOrPath, Role: reward.RoleHelpfulness}, {Path: c.RewardModelNameOrPath, Role: reward.RoleSafety}}
			c.RewardModelNameOrPath = ""
		}, filepath.Join(sharedDir(t), "data", "alpaca_en_demo.parquet") + `: row 0: no "is_safety" column (which prompts are safety prompts; set safety_column)`},
	}
	for _, tc := range cases {
		cfg := runConfig(t)
		tc.edit(&cfg)
		_, err := rlhf.Run(context.Background(), cfg, train.WithLogWriter(io.Discard))
		if err == nil || err.Error() != tc.want {
			t.Errorf("error %v\nwant  %s", err, tc.want)
		}
		if _, err := os.Stat(cfg.OutputDir); !os.IsNotExist(err) {
			t.Errorf("%s: output_dir was created", tc.want)
		}
	}
}

// TestRunWithLoRA: with sft.use_peft each round's policy is a PEFT adapter directory over the
// unchanged base: round 1 trains a new adapter, round 2 samples with it and keeps training it (not a
// fresh one), and every adapter records the real base, not the round before.
func TestRunWithLoRA(t *testing.T) {
	cfg := runConfig(t)
	cfg.SFT.Model.Lora.UsePEFT = true
	r := 4
	cfg.SFT.Model.Lora.LoraR = &r
	var log bytes.Buffer
	if _, err := rlhf.Run(context.Background(), cfg, train.WithLogWriter(&log), train.WithProgressBar(false)); err != nil {
		t.Fatal(err)
	}
	round := func(r int, parts ...string) string {
		return filepath.Join(append([]string{cfg.OutputDir, "round-" + string(rune('0'+r))}, parts...)...)
	}
	if _, _, p := readState(t, cfg); p != round(2, "checkpoint") {
		t.Errorf("final policy %s", p)
	}
	var adapters [2][]byte
	for r := 1; r <= 2; r++ {
		if _, err := os.Stat(round(r, "checkpoint", "model.safetensors")); !os.IsNotExist(err) {
			t.Errorf("round %d saved a full model: %v", r, err)
		}
		raw, err := os.ReadFile(round(r, "checkpoint", "adapter_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ac struct {
			Base string `json:"base_model_name_or_path"`
			R    int    `json:"r"`
		}
		if err := json.Unmarshal(raw, &ac); err != nil {
			t.Fatal(err)
		}
		if ac.Base != cfg.ModelNameOrPath || ac.R != 4 {
			t.Errorf("round %d adapter: base %q r %d, want %q and 4", r, ac.Base, ac.R, cfg.ModelNameOrPath)
		}
		if adapters[r-1], err = os.ReadFile(round(r, "checkpoint", "adapter_model.safetensors")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(round(r, "eval", rlhf.EvalFile)); err != nil {
			t.Errorf("round %d: %v", r, err)
		}
	}
	if bytes.Equal(adapters[0], adapters[1]) {
		t.Error("round 2's adapter equals round 1's: it did not train")
	}
	for _, want := range []string{
		"training a new LoRA adapter over " + cfg.ModelNameOrPath + ": r 4, alpha 32",
		"training the LoRA adapter in " + round(1, "checkpoint") + " over " + cfg.ModelNameOrPath + ": r 4, alpha 32",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, log.String())
		}
	}
	// The final policy opens as a model: base plus adapter, unmerged.
	ck, err := checkpoint.Open(round(2, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if ck.Adapter == nil || ck.Source != cfg.ModelNameOrPath {
		t.Errorf("opened policy: adapter %v, source %s", ck.Adapter != nil, ck.Source)
	}
}

// TestRunTwoRewardModels: a round of rlhf run with a helpfulness and a safety reward model scores
// its training and held-out samples with the combined reward and keeps both models' scores.
func TestRunTwoRewardModels(t *testing.T) {
	s := twoModelConfig(t)
	cfg := runConfig(t)
	cfg.RewardModelNameOrPath, cfg.RewardModels = "", s.RewardModels
	cfg.Data.DatasetName, cfg.Data.ChatTemplate = s.Data.DatasetName, ""
	cfg.Data.EvalSplit, cfg.Data.MaxTrainSamples, cfg.Data.MaxEvalSamples = 0.25, 0, 0
	cfg.NumRounds = 1
	if _, err := rlhf.Run(context.Background(), cfg, train.WithLogWriter(io.Discard), train.WithProgressBar(false)); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"round-1/samples", "round-1/eval", "round-0/eval"} {
		rows, err := data.ReadParquet(filepath.Join(cfg.OutputDir, dir, rlhf.SamplesFile))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			f := r.Fields
			help, safe, used, got := anyFloats(f["rewards_helpfulness"]), anyFloats(f["rewards_safety"]), anyBools(f["used_safety"]), anyFloats(f["rewards"])
			for j := range got {
				want := help[j]
				if used[j] {
					want = safe[j]
				}
				if len(got) != cfg.NumSamplesPerPrompt || got[j] != want {
					t.Errorf("%s row %d sample %d: reward %v, want %v (helpfulness %v, safety %v, used safety %v)", dir, i, j, got[j], want, help[j], safe[j], used[j])
				}
			}
		}
	}
}
