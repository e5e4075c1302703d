package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/demo/world"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/winrate"
)

// microOptions is the whole pipeline at the smallest size that still runs every stage's real job:
// a world of a few dozen rows, a one-layer model, a couple of optimizer steps per stage.
func microOptions(t *testing.T, out string) Options {
	wc := world.Quick()
	wc.NumSFT, wc.NumPrefs, wc.NumHeldOutPairs = 40, 24, 8
	wc.NumPrompts, wc.NumHeldOutPrompts = 6, 8 // and one safety prompt each (SafetyRate 0.1)
	wc.NumSafetyPairs, wc.NumHeldOutSafetyPairs = 8, 4
	wc.NumGAtt, wc.NumGAttEval, wc.EvalTurns, wc.MaxGAttTurns, wc.MaxTurns = 4, 2, 3, 3, 3
	off := false
	return Options{
		Out:       out,
		ConfigDir: filepath.Join(sharedtest.RepoRoot(t), DefaultConfigDir),
		Seed:      7,
		World:     &wc,
		Eval:      EvalSize{Samples: 1, Temperature: 1, MaxNewTokens: 8},
		Sets: map[string][]string{
			StageInit:      {"hidden_size=32", "intermediate_size=64", "num_hidden_layers=1", "num_attention_heads=2", "num_key_value_heads=2"},
			StageSFT:       {"max_steps=2", "logging_steps=1"},
			StageReward:    {"max_steps=2", "logging_steps=1"},
			StageSafetyRM:  {"max_steps=2", "logging_steps=1"},
			StageGRPO:      {"max_steps=2", "logging_steps=1", "num_generations=2", "per_device_train_batch_size=4", "max_completion_length=8"},
			StageSample:    {"num_samples_per_prompt=3", "max_new_tokens=8"},
			StageRS:        {"max_steps=1"},
			StagePPO:       {"max_steps=4", "per_device_train_batch_size=2", "response_length=8"}, // one update of 4 responses
			StageDPO:       {"max_steps=2", "logging_steps=1"},
			StageGAttSynth: {"max_new_tokens=8", "max_dialogues=2"},
			StageGAttSFT:   {"max_steps=1"},
			StageGAttEval:  {"max_new_tokens=8"},
		},
		LlamaCppDir: filepath.Join(sharedtest.RepoRoot(t), "conformance", "llamacpp"),
		Log:         &bytes.Buffer{},
		Progress:    &off,
	}
}

// TestMicroDemo runs every stage on the micro configuration twice and checks the plumbing: each
// stage's output is where the next one reads it, every measurement of the table is filled in from
// the run, and the two runs give the same RESULTS table. A few seconds.
func TestMicroDemo(t *testing.T) {
	dir := t.TempDir()
	var tables []string
	for i, out := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")} {
		opts := microOptions(t, out)
		res, err := Run(context.Background(), opts)
		if err != nil {
			t.Fatalf("run %d: %v\nlog:\n%s", i, err, opts.Log.(*bytes.Buffer).String())
		}
		if i == 0 {
			checkMicroResults(t, out, res)
		}
		table, err := readResultsTable(filepath.Join(out, ResultsFile))
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, table)
	}
	if tables[0] != tables[1] {
		t.Errorf("two runs of the same seed give different tables:\n%s\n---\n%s", tables[0], tables[1])
	}
}

func checkMicroResults(t *testing.T, out string, res *Results) {
	t.Helper()
	for _, f := range []string{
		MarkerFile, ResultsFile, ResultsJSONFile, TimingsFile, "correctness.png",
		"data/sft.jsonl", "tokenizer/tokenizer.model", "init/config.json", "sft/training_complete.json",
		"reward/training_complete.json", "rlhf-sample/best.parquet", "rlhf-sample/reward_vs_k.png",
		"rs-sft/training_complete.json", "ppo/training_complete.json", "ppo/value_model/config.json", "dpo/training_complete.json", "gatt-synth/gatt.parquet",
		"reward-safety/training_complete.json", "grpo/training_complete.json", "data/safety_prefs.jsonl",
		"gatt-sft/training_complete.json", "gatt-eval/gatt_eval.json", "gatt-eval/gatt_eval.png", "export/demo.gguf",
	} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	var stages []string
	for _, c := range res.Correctness {
		stages = append(stages, c.Stage)
		// 8 held-out prompts and a safety prompt, one greedy and one sampled answer each.
		if c.Greedy.All.Total != 9 || c.Sampled.All.Total != 9 || c.Greedy.Safety.Total != 1 ||
			c.Greedy.Knowledge.Total+c.Greedy.Misconceived.Total+c.Greedy.Self.Total != 8 ||
			c.Refusal.Total != 1 || c.OverRefusal.Total != 8 || c.Refusal.Correct != c.Greedy.Safety.Correct {
			t.Errorf("%s correctness counts %+v", c.Stage, c)
		}
		if m := c.RM; m == nil || m.SafetyPrompts != 1 || m.OtherPrompts != 8 || !(m.Safety > 0 && m.Safety < 100) || !(m.Helpfulness > 0 && m.Helpfulness < 100) {
			t.Errorf("%s reward model scores %+v", c.Stage, m)
		}
	}
	if got := strings.Join(stages, ","); got != "SFT,rejection sampling,PPO,DPO,GRPO,GAtt" {
		t.Errorf("correctness stages %s", got)
	}
	if res.Model.Layers != 1 || res.Model.Hidden != 32 || res.Model.Vocab != len(world.Pieces()) {
		t.Errorf("model %+v", res.Model)
	}
	if res.RewardModel == nil || len(res.RewardModel.ByRating) == 0 {
		t.Errorf("reward model %+v", res.RewardModel)
	}
	if k := res.RewardVsK; k == nil || len(k.N) != 3 || k.Prompts != 7 {
		t.Errorf("reward vs K %+v", k)
	}
	if res.DPO == nil {
		t.Error("no DPO result")
	}
	// One update: 2 PPO epochs x 2 mini-batches of 2 responses, on one rollout of 4.
	if p := res.PPO; p == nil || p.Steps != 4 || p.Episodes != 4 || !(p.FirstKL == p.LastKL) ||
		p.LastEOS < 0 || p.LastEOS > 1 || !(p.LastLength >= 1 && p.LastLength <= 8) {
		t.Errorf("PPO %+v", p)
	}
	if res.SafetyRewardModel == nil || res.GRPO == nil || res.GRPO.Steps != 2 {
		t.Errorf("safety reward model %+v, GRPO %+v", res.SafetyRewardModel, res.GRPO)
	}
	if k := res.RewardVsK; k == nil || k.SampleRefusal.Total != 3 || k.BestRefusal.Total != 1 {
		t.Errorf("reward vs K refusals %+v", k)
	}
	if g := res.GAtt; g == nil || len(g.Turns) != 3 || g.Dialogues != 2 {
		t.Errorf("GAtt %+v", g)
	}
	if e := res.Export; e == nil || e.Bytes == 0 || len(e.Turns) != 3 || e.LlamaCppNote == "" {
		t.Errorf("export %+v", e)
	}
	// The final model against SFT on the 9 held-out prompts, each shown in the order Swaps draws.
	swapped := 0
	for _, sw := range winrate.Swaps(9, res.Seed) {
		if sw {
			swapped++
		}
	}
	if w := res.WinRate; w == nil || w.Judgements != 9 || w.Swapped != swapped || w.ModelA != WinRateFinal || w.ModelB != WinRateBase ||
		math.Abs(w.WinRate+w.TieRate+w.LossRate-1) > 1e-12 || w.Valid != 9 {
		t.Errorf("win rate %+v (want 9 judgements, %d swapped)", w, swapped)
	}
	// 11: GAtt, the two reward-vs-K checks, DPO accuracy, RS/DPO correctness greedy and sampled,
	// PPO and GRPO vs SFT, the final model's win rate, and Fig. 14 for rejection sampling and PPO.
	if len(res.Checks) != 11 {
		t.Errorf("%d checks: %+v", len(res.Checks), res.Checks)
	}
	var back Results
	b, err := os.ReadFile(filepath.Join(out, ResultsJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(out, ResultsFile))
	for _, want := range []string{"| Stage | Measurement | Result | Target |", "expected max reward of N samples", "held-out preference accuracy", "adherence by turn",
		"greedy refusals: on safety prompts", "safety RM on safety prompts", "GRPO vs SFT", "PPO vs SFT", "rejection sampling vs SFT", "objective/kl (policy vs its start", "win rate, greedy answers judged by both reward models"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
}

// TestPrepareOutForce: --force empties a previous demo's directory (one holding demo.json), and
// leaves a missing directory created and an empty one as it is.
func TestPrepareOutForce(t *testing.T) {
	dir := t.TempDir()
	prev := filepath.Join(dir, "prev")
	if err := os.MkdirAll(filepath.Join(prev, "sft"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{MarkerFile, ResultsFile, "sft/config.json"} {
		if err := os.WriteFile(filepath.Join(prev, f), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := prepareOut(prev, true); err != nil {
		t.Fatal(err)
	}
	if es, err := os.ReadDir(prev); err != nil || len(es) != 0 {
		t.Errorf("after --force: %v, %v", es, err)
	}
	for _, d := range []string{filepath.Join(dir, "new", "deeper"), prev} {
		if err := prepareOut(d, false); err != nil {
			t.Errorf("%s: %v", d, err)
		}
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
}
