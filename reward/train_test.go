package reward

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/train"
)

// smallConfig is a short run on stories260K: batches of 4 pairs, rows of at most 128 tokens.
func smallConfig(t *testing.T, dataset string) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ModelNameOrPath = storiesPath(t)
	cfg.Data.DatasetName = dataset
	cfg.Data.ChatTemplate = "llama-2"
	cfg.Data.MaxLength = 128
	cfg.PerDeviceTrainBatchSize = 4
	cfg.PerDeviceEvalBatchSize = 4
	cfg.LearningRate = 2e-3
	cfg.LoggingSteps = 2
	cfg.OutputDir = filepath.Join(t.TempDir(), "out")
	off := false
	cfg.ReportPlots = &off
	return cfg
}

// TestTrainRealData trains stories260K's fresh score head (and backbone) on 16 real pairs of each
// shape: hh-rlhf transcripts (implicit prompt, strings) and orca (explicit prompt, message lists).
// The logged training accuracy starts near chance and rises above 0.5 while the loss falls, and
// the saved model, scored afresh by the Scorer, ranks the chosen answer above the rejected one for
// most of these pairs.
func TestTrainRealData(t *testing.T) {
	for _, name := range []string{"hh_rlhf_harmless_base_test.parquet", "orca_dpo_pairs_validation_chat.parquet"} {
		t.Run(name, func(t *testing.T) {
			cfg := smallConfig(t, sharedData(t, name))
			cfg.Data.MaxTrainSamples = 16
			cfg.MaxPromptLength = 64 // orca's prompts would otherwise leave its answers a token or two
			cfg.MaxSteps = 12
			var log strings.Builder
			res, err := Run(context.Background(), cfg, train.WithLogWriter(&log))
			if err != nil {
				t.Fatal(err)
			}
			if res.Steps != 12 {
				t.Fatalf("%d steps", res.Steps)
			}
			lines := testutil.ReadMetrics(t, cfg.OutputDir)
			if len(lines) != 6 {
				t.Fatalf("%d metrics lines, want 6 (logging every 2 of 12 steps)", len(lines))
			}
			first, last := lines[0], lines[len(lines)-1]
			for _, k := range []string{"loss", "accuracy", "margin", "reward/min", "reward/mean", "reward/max", "centering"} {
				if _, ok := last[k]; !ok {
					t.Errorf("metrics line lacks %q: %v", k, last)
				}
			}
			if !(last["accuracy"] > 0.5 && last["accuracy"] > first["accuracy"] && last["loss"] < first["loss"] && last["margin"] > first["margin"]) {
				t.Errorf("no learning: first %v\nlast %v", first, last)
			}
			if last["reward/min"] > last["reward/mean"] || last["reward/mean"] > last["reward/max"] {
				t.Errorf("reward min/mean/max out of order: %v", last)
			}
			if !strings.Contains(log.String(), "reward data: "+name+": 16 pairs, 0 skipped as chosen == rejected; margins: none; score head initialised on a causal LM") {
				t.Errorf("log:\n%s", log.String())
			}

			// No truncation options: the scorer reads the trained model's alignkit_reward.json
			// (max_length 128, max_prompt_length 64) and cuts pairs as training did.
			s, err := NewScorer(cfg.OutputDir)
			if err != nil {
				t.Fatal(err)
			}
			if s.maxLength != 128 || s.maxPromptLength != 64 {
				t.Fatalf("scorer cuts at %d/%d, training cut at 128/64", s.maxLength, s.maxPromptLength)
			}
			set, err := LoadPairs(cfg.Data.DatasetName, nil, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			var ci, ri []Item
			for _, p := range set.Pairs[:16] {
				ci = append(ci, Item{Prompt: p.Prompt, Response: p.Chosen, PromptMessages: p.PromptMessages, ResponseMessages: p.ChosenMessages})
				ri = append(ri, Item{Prompt: p.Prompt, Response: p.Rejected, PromptMessages: p.PromptMessages, ResponseMessages: p.RejectedMessages})
			}
			// The saved tokenizer_config.json carries the llama-2 template the data was rendered with,
			// so the scorer needs no --chat-template to see the training tokens.
			rc, err := s.ScoreItems(context.Background(), ci, nil)
			if err != nil {
				t.Fatal(err)
			}
			rr, err := s.ScoreItems(context.Background(), ri, nil)
			if err != nil {
				t.Fatal(err)
			}
			correct := 0
			for i := range rc {
				if rc[i] > rr[i] {
					correct++
				}
			}
			if correct < 12 {
				t.Errorf("the saved model ranks %d of 16 training pairs right", correct)
			}
		})
	}
}

// ratedRows are hh-rlhf pairs with a Llama 2 rating label cycling over the four levels.
func ratedRows(t *testing.T, from, n int) []map[string]any {
	t.Helper()
	rows, err := data.ReadRows(sharedData(t, "hh_rlhf_harmless_base_test.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	labels := []string{"Significantly better", "Better", "Slightly better", "Negligibly better / unsure"}
	var out []map[string]any
	for i := from; i < from+n; i++ {
		out = append(out, map[string]any{"chosen": rows[i].Fields["chosen"], "rejected": rows[i].Fields["rejected"], "rating": labels[i%4]})
	}
	return out
}

// TestTrainRatingBuckets trains with Llama 2's "large" margins from a rating column and checks
// the eval accuracy per rating (Table 28) against the saved model scored afresh: each bucket's
// eval_accuracy/<rating> is the share of its pairs that the scorer ranks right.
func TestTrainRatingBuckets(t *testing.T) {
	trainFile := testutil.WriteJSONL(t, "train.jsonl", ratedRows(t, 0, 16)...)
	evalFile := testutil.WriteJSONL(t, "eval.jsonl", ratedRows(t, 100, 16)...)
	cfg := smallConfig(t, trainFile)
	cfg.Data.EvalDatasetName = evalFile
	cfg.RatingColumn = "rating"
	cfg.MarginPreset = "large"
	cfg.CenterRewardsCoefficient = 0.01
	cfg.MaxSteps = 4
	var log strings.Builder
	if _, err := Run(context.Background(), cfg, train.WithLogWriter(&log)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), `margins: from rating column "rating" (preset large, 0 custom)`) {
		t.Errorf("log:\n%s", log.String())
	}
	lines := testutil.ReadMetrics(t, cfg.OutputDir)
	last := lines[len(lines)-1]

	set, err := LoadPairs(evalFile, nil, "rating", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewScorer(cfg.OutputDir, WithMaxLength(128))
	if err != nil {
		t.Fatal(err)
	}
	var ci, ri []Item
	for _, p := range set.Pairs {
		ci = append(ci, Item{PromptMessages: p.PromptMessages, ResponseMessages: p.ChosenMessages})
		ri = append(ri, Item{PromptMessages: p.PromptMessages, ResponseMessages: p.RejectedMessages})
	}
	rc, _ := s.ScoreItems(context.Background(), ci, nil)
	rr, err := s.ScoreItems(context.Background(), ri, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The trainer scores with the training graph and the scorer with the inference engine; the two
	// agree to float32 rounding, which can flip a pair whose two rewards are within it. So each
	// accuracy must lie between the share of pairs the scorer ranks right by a clear margin and the
	// share it does not rank wrong by one.
	const tie = 1e-4
	lo, hi := map[string]float64{}, map[string]float64{}
	for i, b := range set.Buckets {
		for _, k := range []string{"eval_accuracy", "eval_accuracy/" + bucketKey(b)} {
			if rc[i]-rr[i] > tie {
				lo[k]++
			}
			if rc[i]-rr[i] > -tie {
				hi[k]++
			}
		}
	}
	n := map[string]float64{"eval_accuracy": 16}
	for _, b := range []string{"significantly better", "better", "slightly better", "negligibly better / unsure"} {
		n["eval_accuracy/"+bucketKey(b)] = 4
	}
	for k, size := range n {
		got, ok := last[k]
		if !ok || got < lo[k]/size-1e-12 || got > hi[k]/size+1e-12 {
			t.Errorf("%s = %v (present %v), scorer says between %v and %v", k, got, ok, lo[k]/size, hi[k]/size)
		}
	}
	for _, k := range []string{"eval_loss", "eval_margin", "eval_reward/mean", "eval_centering"} {
		if _, ok := last[k]; !ok {
			t.Errorf("no %s in %v", k, last)
		}
	}
}

// TestTaskLossAndGradient checks the task's loss against Loss on the graph's own rewards with the
// Table 27 margins of each pair's rating, and its gradient with respect to score.weight and a
// backbone tensor against central finite differences of that loss.
func TestTaskLossAndGradient(t *testing.T) {
	cfg := smallConfig(t, testutil.WriteJSONL(t, "rated.jsonl", ratedRows(t, 0, 4)...))
	cfg.RatingColumn = "rating"
	cfg.MarginPreset = "small"
	cfg.CenterRewardsCoefficient = 0.05
	job, err := Prepare(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	task := job.Task.(*Task)
	sel := []int{0, 1, 2, 3}
	// Ratings cycle significantly better, better, slightly better, negligibly: margins 1, 2/3, 1/3, 0.
	wantM := []float64{1, 2.0 / 3, 1.0 / 3, 0}
	for i, m := range task.TrainSet.Margins {
		if math.Abs(m-wantM[i]) > 1e-15 {
			t.Fatalf("margins %v, want %v", task.TrainSet.Margins, wantM)
		}
	}
	pb, err := task.TrainData.Pairs(sel)
	if err != nil {
		t.Fatal(err)
	}
	r, err := lm.New(task.Model.Ckpt, 0).Rewards(&pb.Batch)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Loss(r[:4], r[4:], wantM, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	params := task.Params()
	grads := make([][]float32, len(params))
	for i, p := range params {
		grads[i] = make([]float32, len(p.Value))
	}
	m, err := task.Step(context.Background(), train.Batch{Examples: sel, Accum: 1}, grads, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.Loss-want.Loss) > 1e-6 || m.Values["accuracy"] != want.Metrics["accuracy"] {
		t.Fatalf("task loss %v accuracy %v, Loss on the graph's rewards %v %v", m.Loss, m.Values["accuracy"], want.Loss, want.Metrics["accuracy"])
	}
	lossAt := func() float64 {
		m, _, _, err := task.run(task.Model, task.TrainData, task.TrainSet, sel, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		return m.Loss
	}
	for _, name := range []string{model.ScoreKey, model.FinalNormKey} {
		var pi int
		for i, p := range params {
			if p.Name == name {
				pi = i
			}
		}
		v := params[pi].Value
		for _, j := range []int{0, 17, 63} {
			const h = 1e-2
			old := v[j]
			v[j] = old + h
			up := lossAt()
			v[j] = old - h
			down := lossAt()
			v[j] = old
			num := (up - down) / (2 * h)
			if g := float64(grads[pi][j]); math.Abs(g-num) > 2e-3*math.Max(1, math.Abs(num)) {
				t.Errorf("%s[%d]: analytic %v, finite difference %v", name, j, g, num)
			}
		}
	}
}

// TestTrainIdenticalPairs: rows whose chosen equals rejected (an implicit-prompt transcript
// repeated, an explicit prompt with the same answer twice) are skipped with one warning line and
// counted; the rest train.
func TestTrainIdenticalPairs(t *testing.T) {
	rows := ratedRows(t, 0, 6)
	rows[1]["rejected"] = rows[1]["chosen"]
	rows = append(rows, map[string]any{"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: hello", "rating": "Better"})
	path := testutil.WriteJSONL(t, "dups.jsonl", rows...)
	explicit := testutil.WriteJSONL(t, "explicit.jsonl",
		map[string]any{"prompt": "The cat", "chosen": " sat on the mat.", "rejected": " sat on the mat."},
		map[string]any{"prompt": "The dog", "chosen": " ran home.", "rejected": " flew."},
	)
	for _, tc := range []struct {
		path    string
		pairs   int
		skipped []int
		warning string
	}{
		{path, 5, []int{1, 6}, "warning: " + path + ": skipped 2 rows whose chosen is identical to rejected (rows 1, 6)"},
		{explicit, 1, []int{0}, "warning: " + explicit + ": skipped 1 row whose chosen is identical to rejected (row 0)"},
	} {
		cfg := smallConfig(t, tc.path)
		cfg.PerDeviceTrainBatchSize = 2
		cfg.MaxSteps = 1
		var log strings.Builder
		if _, err := Run(context.Background(), cfg, train.WithLogWriter(&log)); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(log.String(), tc.warning+"\n") {
			t.Errorf("log starts:\n%s\nwant %s", log.String(), tc.warning)
		}
		job, err := Prepare(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		sum := job.Task.(*Task).Summary
		if sum.Pairs != tc.pairs || sum.Identical != len(tc.skipped) {
			t.Errorf("%s: %d pairs, %d identical; want %d, %d", tc.path, sum.Pairs, sum.Identical, tc.pairs, len(tc.skipped))
		}
	}
}

// TestTrainBadInput: each bad config or file is one error line naming the key, file, row or
// column, and nothing is written to output_dir.
func TestTrainBadInput(t *testing.T) {
	noRejected := testutil.WriteJSONL(t, "norej.jsonl", map[string]any{"prompt": "The cat", "chosen": " sat."})
	rated := testutil.WriteJSONL(t, "rated.jsonl", map[string]any{"prompt": "The cat", "chosen": " sat.", "rejected": " flew.", "rating": "meh"})
	allSame := testutil.WriteJSONL(t, "same.jsonl", map[string]any{"prompt": "The cat", "chosen": " sat.", "rejected": " sat."})
	sft := sharedData(t, "alpaca_en_demo.parquet")
	cases := []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"missing column", func(c *Config) { c.Data.DatasetName = noRejected }, noRejected + `: row 0: missing column "rejected"`},
		{"sft data", func(c *Config) { c.Data.DatasetName = sft }, sft + `: row 0: missing column "chosen"`},
		{"every pair identical", func(c *Config) { c.Data.DatasetName = allSame }, allSame + ": every one of its 1 rows has chosen identical to rejected"},
		{"rating column absent", func(c *Config) { c.Data.DatasetName = noRejected; c.RatingColumn = "score" },
			`rating_column: ` + noRejected + ` has no column "score" (columns: [chosen prompt])`},
		{"unknown rating", func(c *Config) { c.Data.DatasetName = rated; c.RatingColumn = "rating"; c.MarginPreset = "small" },
			rated + `: row 0: column "rating": rating "meh" has no margin: want one of better, negligibly better, negligibly better / unsure, significantly better, slightly better, unsure`},
		{"preset without ratings", func(c *Config) { c.MarginPreset = "large" },
			"margin_preset/margin_map: margins come from a rating column; set rating_column (or give the data a margin column instead)"},
		{"unknown preset", func(c *Config) { c.MarginPreset = "huge" }, `margin_preset: unknown "huge" (want none, small or large)`},
		{"packing", func(c *Config) { c.Data.Packing = true }, "packing: the reward model reads one score per row, so rows cannot be packed; remove packing"},
		{"loss mask", func(c *Config) { c.Data.LossMask = "all" }, "loss_mask: the reward model has no token loss; remove loss_mask"},
		{"centering", func(c *Config) { c.CenterRewardsCoefficient = -1 }, "center_rewards_coefficient: must be a finite number >= 0, got -1"},
		{"prompt length", func(c *Config) { c.MaxPromptLength = -1 }, "max_prompt_length: must be >= 0, got -1"},
		{"model", func(c *Config) { c.ModelNameOrPath = "/nonexistent" }, "model_name_or_path: opening model: stat /nonexistent: no such file or directory"},
	}
	for _, tc := range cases {
		cfg := smallConfig(t, rated)
		cfg.MaxSteps = 1
		tc.set(&cfg)
		_, err := Run(context.Background(), cfg, train.WithLogWriter(&strings.Builder{}))
		if errText(err) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, errText(err), tc.want)
		}
		if _, err := os.Stat(cfg.OutputDir); !os.IsNotExist(err) {
			t.Errorf("%s: output_dir exists after a failed start", tc.name)
		}
	}
}

// TestGradientCheckpointingReachesModels: gradient_checkpointing sets Checkpoint on the training
// model and on the separate evaluation model (eval batch 2, train batch 4), and is off by default.
func TestGradientCheckpointingReachesModels(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := smallConfig(t, testutil.WriteJSONL(t, "rated.jsonl", ratedRows(t, 0, 8)...))
		cfg.Data.EvalDatasetName = testutil.WriteJSONL(t, "eval.jsonl", ratedRows(t, 8, 4)...)
		cfg.PerDeviceEvalBatchSize = 2
		cfg.GradientCheckpointing = on
		job, err := Prepare(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		task := job.Task.(*Task)
		if task.EvalModel == task.Model {
			t.Fatal("the evaluation model is the training model: the test would not check it")
		}
		if task.Model.Checkpoint != on || task.EvalModel.Checkpoint != on {
			t.Errorf("gradient_checkpointing %v: model %v, eval model %v", on, task.Model.Checkpoint, task.EvalModel.Checkpoint)
		}
	}
}

// TestLoRARewardModelScores: a LoRA reward model (use_peft over stories260K's causal LM) saves a
// PEFT SEQ_CLS adapter directory with the score head among its saved modules; NewScorer opens that
// directory as PEFT's AutoPeftModelForSequenceClassification does and scores unmerged exactly as
// the merged model does (within float32 rounding), and the eval accuracy it logged is reproduced.
func TestLoRARewardModelScores(t *testing.T) {
	cfg := smallConfig(t, testutil.WriteJSONL(t, "train.jsonl", ratedRows(t, 0, 16)...))
	cfg.Model.Lora.UsePEFT = true
	cfg.MaxSteps = 4
	cfg.LearningRate = 1e-2
	if _, err := Run(context.Background(), cfg, train.WithLogWriter(io.Discard)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.OutputDir, "model.safetensors")); !os.IsNotExist(err) {
		t.Fatalf("a LoRA reward run saved a full model: %v", err)
	}
	s, err := NewScorer(cfg.OutputDir, WithMaxLength(128))
	if err != nil {
		t.Fatal(err)
	}
	ck := s.Model()
	if ck.Adapter == nil || ck.Adapter.Saved[model.ScoreKey] == nil {
		t.Fatalf("the opened reward model has no adapter with a saved score head")
	}
	merged, err := lora.Merge(ck.Weights, ck.Adapter)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := NewScorerFromModel(&checkpoint.Model{Weights: merged, Tok: ck.Tok, Source: "merged"}, WithMaxLength(128))
	if err != nil {
		t.Fatal(err)
	}
	prompts := []string{"Once upon a time", "Lily saw a cat.", "Tom had a ball"}
	answers := []string{" there was a dog.", " It was big and red and happy.", " and he played."}
	a, err := s.ScoreText(context.Background(), prompts, answers)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ms.ScoreText(context.Background(), prompts, answers)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-4*math.Max(1, math.Abs(b[i])) {
			t.Errorf("text %d: unmerged %v, merged %v", i, a[i], b[i])
		}
	}
	if a[0] == a[1] && a[1] == a[2] {
		t.Errorf("every text scores %v: the head is not read", a[0])
	}
	// Opened as a plain model, the adapter names what it is.
	if _, err := checkpoint.Open(cfg.OutputDir); err == nil || !strings.Contains(err.Error(), "a reward model's adapter (task_type SEQ_CLS) over the causal LM") {
		t.Errorf("checkpoint.Open: %v", err)
	}
}
