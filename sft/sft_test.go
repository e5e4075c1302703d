package sft

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/train"
)

// TestLoss checks the loss, its derivative and the accuracy against values worked by hand.
func TestLoss(t *testing.T) {
	// Two rows: 1 trained token with log-prob -2, and 3 with log-probs summing to -6. TRL's loss is
	// the mean over the 4 tokens, (2+6)/4 = 2, not the mean of the row means (2+2)/2; each row's
	// summed log-prob enters with weight -1/4.
	s := model.Stats{LogProb: []float64{-2, -6}, Tokens: []float64{1, 3}, Correct: []float64{1, 2}}
	loss, d, err := Loss(s)
	if err != nil || loss != 2 || !slices.Equal(d, []float64{-0.25, -0.25}) {
		t.Errorf("Loss = %v, %v, %v; want 2, [-0.25 -0.25]", loss, d, err)
	}
	// 3 of the 4 tokens are argmax-correct.
	if acc, n := MeanTokenAccuracy(s); acc != 0.75 || n != 4 {
		t.Errorf("MeanTokenAccuracy = %v over %v, want 0.75 over 4", acc, n)
	}
	// Unequal rows: 2 tokens at -1 each and 6 at -0.5 each: (2+3)/8 = 0.625.
	if loss, _, _ := Loss(model.Stats{LogProb: []float64{-2, -3}, Tokens: []float64{2, 6}}); loss != 0.625 {
		t.Errorf("loss %v, want 0.625", loss)
	}
	if _, _, err := Loss(model.Stats{LogProb: []float64{0}, Tokens: []float64{0}}); err == nil || err.Error() != "sft: the batch has no trained token" {
		t.Errorf("empty batch: %v", err)
	}
}

func TestConfig(t *testing.T) {
	d := DefaultConfig()
	if d.LearningRate != 2e-5 || d.Data.MaxLength != 1024 || d.PerDeviceTrainBatchSize != 8 || d.LoggingSteps != 10 || *d.Seed != 42 {
		t.Errorf("defaults: %+v", d)
	}
	ok := Config{ModelNameOrPath: "m", Data: data.Args{DatasetName: "d.jsonl"}}
	ok.OutputDir = "out"
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"valid", func(*Config) {}, ""},
		{"no model", func(c *Config) { c.ModelNameOrPath = "" }, "model_name_or_path: must be set (an HF model directory or a .gguf file)"},
		{"no output", func(c *Config) { c.OutputDir = "" }, "output_dir: must be set"},
		{"train key", func(c *Config) { c.WarmupRatio = 2 }, "warmup_ratio: must be in [0, 1], got 2"},
		{"no data", func(c *Config) { c.Data.DatasetName = "" }, "dataset_name: must be set (a .parquet, .jsonl or .json file)"},
		{"data key", func(c *Config) { c.Data.LossMask = "everything" }, `loss_mask: unknown "everything" (want all, completion_only, assistant_only or last_turn_only)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			got := ""
			if err := c.Validate(); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestMaskedTargetsGetNoGradient perturbs the label of every masked position (user turns, template
// text) of a real multi-turn batch: the loss and every gradient stay bit-identical. Perturbing one
// trained label instead moves both, so the comparison can fail.
func TestMaskedTargetsGetNoGradient(t *testing.T) {
	c := storiesConfig(t, "capybara_test.parquet")
	c.Data.MaxLength = 256
	c.Data.MaxTrainSamples = 8
	task, _ := prepare(t, c)
	batch, err := task.TrainData.Rows([]int{0, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	vocab := int32(task.Model.Weights().Config.VocabSize)
	pass := func(b *data.Batch) (float64, [][]float32) {
		g := newGrads(task)
		m, err := run(task.Model, b, g, 1)
		if err != nil {
			t.Fatal(err)
		}
		return m.Loss, g
	}
	loss0, g0 := pass(batch)

	masked := *batch
	masked.Targets = slices.Clone(batch.Targets)
	n, firstTrained := 0, -1
	for i, w := range batch.Weights {
		switch {
		case w == 0 && batch.Targets[i] >= 0:
			masked.Targets[i] = (batch.Targets[i] + 1 + int32(i)%7) % vocab
			n++
		case w != 0 && firstTrained < 0:
			firstTrained = i
		}
	}
	if n < 100 || firstTrained < 0 {
		t.Fatalf("%d masked targets, first trained %d: the batch does not exercise masking", n, firstTrained)
	}
	loss1, g1 := pass(&masked)
	if loss1 != loss0 {
		t.Errorf("perturbing %d masked targets moved the loss from %v to %v", n, loss0, loss1)
	}
	for i := range g0 {
		if !slices.Equal(g0[i], g1[i]) {
			t.Errorf("perturbing masked targets changed the gradient of %s", task.Params()[i].Name)
		}
	}

	trained := *batch
	trained.Targets = slices.Clone(batch.Targets)
	trained.Targets[firstTrained] = (batch.Targets[firstTrained] + 1) % vocab
	loss2, g2 := pass(&trained)
	if loss2 == loss0 || slices.Equal(g2[0], g0[0]) {
		t.Errorf("perturbing a trained target left loss %v (was %v) or the gradient unchanged", loss2, loss0)
	}
}

// TestEOSEndsEveryAssistantTurn inspects real multi-turn batches (Capybara under llama-2's template,
// which closes each answer with " </s>"): with assistant_only every assistant turn's closing EOS is
// a trained target and no other EOS is; with last_turn_only only the last one is. Padding is never
// EOS and carries no weight.
func TestEOSEndsEveryAssistantTurn(t *testing.T) {
	shared := sharedDir(t)
	ds, err := data.Load(data.Source{Path: filepath.Join(shared, "data", "capybara_test.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"assistant_only", "last_turn_only"} {
		t.Run(mode, func(t *testing.T) {
			c := storiesConfig(t, "capybara_test.parquet")
			c.Data.MaxLength = 4096
			c.Data.MaxTrainSamples = 40
			c.Data.LossMask = mode
			task, _ := prepare(t, c)
			eos := task.Model.Tok().EOS()
			checked, multi := 0, 0
			for i := 0; i < task.NumExamples(); i += 4 {
				idx := []int{i, i + 1, i + 2, i + 3}
				b, err := task.TrainData.Rows(idx[:min(4, task.NumExamples()-i)])
				if err != nil {
					t.Fatal(err)
				}
				for r := 0; r < b.B; r++ {
					row := b.T * r
					last := int(b.LastIndex[r])
					for k := last + 1; k < b.T; k++ {
						if b.Tokens[row+k] == eos || b.Weights[row+k] != 0 || b.Segments[row+k] != 0 {
							t.Fatalf("row %d: padding at %d is token %d, weight %v, segment %d", r, k, b.Tokens[row+k], b.Weights[row+k], b.Segments[row+k])
						}
					}
					if last+1 == c.Data.MaxLength {
						continue // possibly truncated: its turns are not all there
					}
					rec := ds.Records[b.Rows[r]]
					turns := 0
					for _, m := range rec.Messages {
						if m.Role == "assistant" {
							turns++
						}
					}
					var trainedAt, untrained []int
					for k := 0; k < last; k++ {
						if b.Targets[row+k] != eos {
							continue
						}
						if b.Weights[row+k] == 1 {
							trainedAt = append(trainedAt, k)
						} else {
							untrained = append(untrained, k)
						}
					}
					wantTrained, wantUntrained := turns, 0
					if mode == "last_turn_only" {
						wantTrained, wantUntrained = 1, turns-1
					}
					if len(trainedAt) != wantTrained || len(untrained) != wantUntrained {
						t.Errorf("row %d (%d assistant turns): EOS trained at %v, untrained at %v; want %d trained, %d untrained",
							rec.Row, turns, trainedAt, untrained, wantTrained, wantUntrained)
					}
					// The conversation ends with its last answer's EOS, which is trained in both modes.
					if b.Tokens[row+last] != eos || len(trainedAt) == 0 || trainedAt[len(trainedAt)-1] != last-1 {
						t.Errorf("row %d: ends with token %d; last trained EOS target at %v, want %d", rec.Row, b.Tokens[row+last], trainedAt, last-1)
					}
					checked++
					if turns > 1 {
						multi++
					}
				}
			}
			if checked < 20 || multi < 5 {
				t.Fatalf("only %d whole conversations checked (%d multi-turn)", checked, multi)
			}
		})
	}
}

// TestPackedLossEqualsSingle packs real examples several to a row and checks that each example's
// mean NLL there (the row's weights restricted to its segment) equals its NLL alone, collated by the
// unpacked batcher into a row of its own, within 1e-5; and that the packed batch's loss is the
// token-weighted mean of them (TRL's loss over a packed batch).
func TestPackedLossEqualsSingle(t *testing.T) {
	// Alpaca rows under llama-2's template are short enough (a tenth under 96 tokens) that up to 4
	// share a row of 256.
	c := storiesConfig(t, "alpaca_en_demo.parquet")
	c.Data.MaxLength = 256
	c.Data.MaxTrainSamples = 300
	single, _ := prepare(t, c)
	c.Data.Packing = true
	packed, sum := prepare(t, c)
	m := lm.New(single.Model.Ckpt, 0)

	// Where each source row sits in the unpacked batcher.
	at := map[int]int{}
	for i := 0; i < single.NumExamples(); i++ {
		b, err := single.TrainData.Rows([]int{i})
		if err != nil {
			t.Fatal(err)
		}
		at[b.Rows[0]] = i
	}
	// The packed rows to check: those with the most examples first, 24 examples in all.
	var rows []*data.Batch
	for j := 0; j < packed.NumExamples(); j++ {
		b, err := packed.TrainData.Rows([]int{j})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Rows) > 1 {
			rows = append(rows, b)
		}
	}
	slices.SortStableFunc(rows, func(a, b *data.Batch) int { return len(b.Rows) - len(a.Rows) })
	var examples int
	for i, b := range rows {
		if examples >= 24 {
			rows = rows[:i]
			break
		}
		examples += len(b.Rows)
	}
	if len(rows) == 0 || len(rows[0].Rows) < 3 {
		t.Fatalf("packing gave no row of 3 or more examples (%d rows for %d examples)", sum.Train.RowsPerEpoch, sum.Train.Examples)
	}

	worst := 0.0
	for _, b := range rows {
		segs := len(b.Rows)
		// The examples alone, one row each, from the unpacked batcher.
		var idx []int
		for _, r := range b.Rows {
			i, ok := at[r]
			if !ok {
				t.Fatalf("packed example of row %d is not among the single examples", r)
			}
			idx = append(idx, i)
		}
		alone, err := single.TrainData.Rows(idx)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.LogProbs(alone)
		if err != nil {
			t.Fatal(err)
		}
		// The packed row repeated once per example, the weights kept only on that example's segment.
		rep := &data.Batch{B: segs, T: b.T}
		for k := 1; k <= segs; k++ {
			rep.Tokens = append(rep.Tokens, b.Tokens...)
			rep.Targets = append(rep.Targets, b.Targets...)
			rep.Positions = append(rep.Positions, b.Positions...)
			rep.Segments = append(rep.Segments, b.Segments...)
			rep.LastIndex = append(rep.LastIndex, b.LastIndex...)
			for i, w := range b.Weights {
				if b.Segments[i] != int32(k) {
					w = 0
				}
				rep.Weights = append(rep.Weights, w)
			}
		}
		got, err := m.LogProbs(rep)
		if err != nil {
			t.Fatal(err)
		}
		var lpSum, nSum float64
		for k := range segs {
			g, w := -got.LogProb[k]/got.Tokens[k], -want.LogProb[k]/want.Tokens[k]
			if got.Tokens[k] != want.Tokens[k] || math.Abs(g-w) > 1e-5 {
				t.Errorf("row %d: packed NLL %v over %v tokens, alone %v over %v", b.Rows[k], g, got.Tokens[k], w, want.Tokens[k])
			}
			worst = max(worst, math.Abs(g-w))
			lpSum += want.LogProb[k]
			nSum += want.Tokens[k]
		}
		met, err := run(m, b, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(met.Loss-(-lpSum/nSum)) > 1e-5 {
			t.Errorf("packed row of rows %v: batch loss %v, token-weighted mean alone %v", b.Rows, met.Loss, -lpSum/nSum)
		}
	}
	t.Logf("%d examples in %d packed rows (up to %d a row): largest NLL difference %.2g", examples, len(rows), len(rows[0].Rows), worst)
}

// TestEvalLossFalls trains stories260K for 30 steps on each real SFT file and checks that the
// evaluation loss falls and token accuracy rises, that the metrics file has what the loop logs, and
// that the final model directory holds the trained weights, the tokenizer and the chat template.
func TestEvalLossFalls(t *testing.T) {
	for _, file := range []string{"no_robots_test_sft.parquet", "capybara_test.parquet"} {
		t.Run(file, func(t *testing.T) {
			c := storiesConfig(t, file)
			c.Data.EvalSplit = 0.1
			c.EvalSteps = 10
			task, sum := prepare(t, c)
			before, accBefore := evalLoss(t, task, c.PerDeviceEvalBatchSize)
			res, err := train.Run(t.Context(), c.Args, task, train.WithLogWriter(&bytes.Buffer{}))
			if err != nil {
				t.Fatal(err)
			}
			lines := testutil.ReadMetrics(t, c.OutputDir)
			last := lines[len(lines)-1]
			after, accAfter := last["eval_loss"], last["eval_mean_token_accuracy"]
			t.Logf("%s: eval_loss %.4f -> %.4f, eval_mean_token_accuracy %.4f -> %.4f, train loss %.4f (%s)", file, before, after, accBefore, accAfter, res.TrainLoss, sum)
			if !(after < before-0.3) || !(accAfter > accBefore) {
				t.Errorf("eval_loss %v -> %v, accuracy %v -> %v: want a drop of at least 0.3 and a rise", before, after, accBefore, accAfter)
			}
			var evals int
			for _, l := range lines {
				if _, ok := l["eval_loss"]; ok {
					evals++
				}
				if _, ok := l["loss"]; ok {
					if a, ok := l["mean_token_accuracy"]; !ok || a <= 0 || a >= 1 {
						t.Errorf("step %v: mean_token_accuracy %v", l["step"], l["mean_token_accuracy"])
					}
				}
			}
			if evals != 3 || len(lines) != 6 {
				t.Errorf("%d metrics lines with %d evaluations, want 6 with 3 (steps 10, 20, 30)", len(lines), evals)
			}

			saved, err := checkpoint.Open(c.OutputDir)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range saved.Weights.Names() {
				if !slices.Equal(saved.Weights.Tensors[name].Data, task.Model.Weights().Tensors[name].Data) {
					t.Fatalf("saved %s differs from the trained weights", name)
				}
			}
			src, _ := chat.BuiltinSource("llama-2")
			if saved.Tok.ChatTemplate() != src {
				t.Errorf("saved model's chat template is %q, want llama-2's", saved.Tok.ChatTemplate())
			}
			// The reloaded model gives the final evaluation loss again.
			c2 := c
			c2.ModelNameOrPath = c.OutputDir
			c2.Data.ChatTemplate = "" // now the model's own
			reloaded, _ := prepare(t, c2)
			if got, _ := evalLoss(t, reloaded, c.PerDeviceEvalBatchSize); math.Abs(got-after) > 1e-9 {
				t.Errorf("reloaded model's eval_loss %v, training run's %v", got, after)
			}
		})
	}
}

// TestResumeBitIdentical runs 20 steps with checkpoints every 10, then resumes a second run from
// checkpoint-10 in another directory: every metrics line (tokens_per_second aside) and the final
// weights are bit-identical. logging_steps 3 leaves a logging window open across the checkpoint.
func TestResumeBitIdentical(t *testing.T) {
	c := storiesConfig(t, "no_robots_test_sft.parquet")
	c.Data.EvalSplit = 0.05
	c.Data.MaxLength = 96
	c.MaxSteps, c.SaveSteps, c.LoggingSteps, c.EvalSteps = 20, 10, 3, 5
	c.WarmupSteps = 4
	c.LRSchedulerType = "cosine"
	var log bytes.Buffer
	if _, err := Run(t.Context(), c, train.WithLogWriter(&log)); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(log.String(), "\n"); !strings.HasPrefix(first, "sft data: no_robots_test_sft.parquet (conversation, loss on assistant_only): ") {
		t.Errorf("first log line %q is not the data summary", first)
	}
	r := c
	r.OutputDir = t.TempDir()
	r.ResumeFromCheckpoint = filepath.Join(c.OutputDir, "checkpoint-10")
	if _, err := Run(t.Context(), r, train.WithLogWriter(&bytes.Buffer{})); err != nil {
		t.Fatal(err)
	}
	want, got := testutil.ReadMetrics(t, c.OutputDir), testutil.ReadMetrics(t, r.OutputDir)
	if len(got) != len(want) {
		t.Fatalf("%d metrics lines, want %d", len(got), len(want))
	}
	after := 0
	for i := range want {
		delete(want[i], "tokens_per_second")
		delete(got[i], "tokens_per_second")
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("line %d:\n got %v\nwant %v", i, got[i], want[i])
		}
		if want[i]["step"] > 10 {
			after++
		}
	}
	if after < 4 {
		t.Fatalf("only %d lines after step 10 compared", after)
	}
	a, err := os.ReadFile(filepath.Join(c.OutputDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r.OutputDir, "model.safetensors"))
	if err != nil || !bytes.Equal(a, b) {
		t.Errorf("final model.safetensors differ (%v)", err)
	}
}

// TestNonFiniteLossStops makes the loss overflow honestly: learning_rate 1e30 moves every weight by
// about 1e30 in the first step (AdamW's step is lr·m/√v, about lr whatever the gradient), so the
// second forward pass overflows float32. The run stops with train's NonFiniteError and leaves no
// model in output_dir.
func TestNonFiniteLossStops(t *testing.T) {
	c := storiesConfig(t, "no_robots_test_sft.parquet")
	c.LearningRate = 1e30
	c.MaxSteps = 5
	_, err := Run(t.Context(), c, train.WithLogWriter(&bytes.Buffer{}))
	var nf *train.NonFiniteError
	if !errors.As(err, &nf) || nf.Step != 2 || nf.What != "loss" {
		t.Fatalf("got %v, want a non-finite loss at step 2", err)
	}
	for _, f := range []string{"config.json", "model.safetensors", "training_complete.json"} {
		if _, err := os.Stat(filepath.Join(c.OutputDir, f)); err == nil {
			t.Errorf("output_dir holds %s after a failed run", f)
		}
	}
}

// TestPrepareErrors checks the errors found before training, each naming what is wrong.
func TestPrepareErrors(t *testing.T) {
	shared := sharedDir(t)
	dir := t.TempDir()
	writeFile := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conv := writeFile("conv.jsonl", `{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}`+"\n")
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"preference data", func(c *Config) {
			c.Data.DatasetName = filepath.Join(shared, "data", "orca_dpo_pairs_validation_chat.parquet")
		}, "dataset_name: " + filepath.Join(shared, "data", "orca_dpo_pairs_validation_chat.parquet") + " holds preference pairs (chosen/rejected); sft trains on text, messages, prompt/completion or alpaca rows"},
		{"no template", func(c *Config) { c.Data.DatasetName, c.Data.ChatTemplate = conv, "" },
			conv + ": row 0: conversational data needs a chat template, and none is set (the tokenizer has none; set chat_template)"},
		{"unknown template", func(c *Config) { c.Data.ChatTemplate = "llama-9" },
			`chat_template: chat template: "llama-9" is neither a built-in (chatml, llama-2, llama-3, mistral, zephyr), a file, nor a Jinja template`},
		{"no model", func(c *Config) { c.ModelNameOrPath = filepath.Join(dir, "nothing") },
			"model_name_or_path: opening model: stat " + filepath.Join(dir, "nothing") + ": no such file or directory"},
		{"everything truncated", func(c *Config) { c.Data.DatasetName, c.Data.MaxLength = conv, 4 },
			conv + ": no examples to batch (max_length 4)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := storiesConfig(t, "no_robots_test_sft.parquet")
			tc.edit(&c)
			_, err := Prepare(t.Context(), c)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(c.OutputDir, "metrics.jsonl")); err == nil {
				t.Error("Prepare wrote into output_dir")
			}
		})
	}
}

func TestPadID(t *testing.T) {
	shared := sharedDir(t)
	ck, err := checkpoint.Open(filepath.Join(shared, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	// stories260K has no pad token (pad_token: null); its unk is 0 and EOS is 2.
	if id := lm.PadID(ck.Tok, ck.Weights.Config); id != 0 || id == ck.Tok.EOS() {
		t.Errorf("lm.PadID = %d; want unk 0", id)
	}
}

// TestFormats prepares each TRL format from JSONL and checks the loss mask it trains with by
// default: every token of text, the completion of prompt/completion and alpaca rows, the assistant
// turns of conversations. The eval file goes through the same path.
func TestFormats(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, rows string
		format     data.Format
		mask       string
	}{
		{"text", `{"text": "Once upon a time there was a cat."}`, data.FormatText, "all"},
		{"prompt_completion", `{"prompt": "Once upon a time, the little cat sat", "completion": " down."}`, data.FormatPromptCompletion, "completion_only"},
		{"conversational prompt_completion", `{"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]}`,
			data.FormatPromptCompletion, "completion_only"},
		{"alpaca", `{"instruction": "Name a colour.", "input": "", "output": "Blue."}`, data.FormatAlpaca, "completion_only"},
		{"conversation", `{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}`, data.FormatConversation, "assistant_only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".jsonl")
			if err := os.WriteFile(path, []byte(strings.Repeat(tc.rows+"\n", 3)), 0o644); err != nil {
				t.Fatal(err)
			}
			c := storiesConfig(t, "no_robots_test_sft.parquet")
			c.Data.DatasetName, c.Data.EvalDatasetName = path, path
			task, sum := prepare(t, c)
			if sum.Format != tc.format || sum.Mask != tc.mask || sum.Train.Examples != 3 || sum.Eval == nil || sum.Eval.Examples != 3 {
				t.Errorf("summary %s", sum)
			}
			// Text trains every token but the first (BOS), and its appended EOS.
			b, err := task.TrainData.Rows([]int{0})
			if err != nil {
				t.Fatal(err)
			}
			if last := b.LastIndex[0]; b.Tokens[last] != task.Model.Tok().EOS() || b.Weights[last-1] != 1 {
				t.Errorf("the example does not end with a trained EOS: tokens %v weights %v", b.Tokens[:last+1], b.Weights[:last+1])
			}
			if tc.mask == "all" && sum.Train.TrainedTokens != sum.Train.Tokens-3 {
				t.Errorf("text: %d trained of %d tokens in 3 examples, want all but the first of each", sum.Train.TrainedTokens, sum.Train.Tokens)
			}
			if tc.mask != "all" && 2*sum.Train.TrainedTokens >= sum.Train.Tokens {
				t.Errorf("%s: %d of %d tokens trained; the prompt should carry none", tc.name, sum.Train.TrainedTokens, sum.Train.Tokens)
			}
		})
	}
}

func TestEvalWithoutData(t *testing.T) {
	_, err := (&Task{}).Eval(context.Background(), train.Batch{Examples: []int{0}})
	if want := "sft: no evaluation data"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestGradientCheckpointingReachesModels: gradient_checkpointing sets Checkpoint on the training
// model and on the separate evaluation model (eval batch 8, train batch 4), and is off by default.
func TestGradientCheckpointingReachesModels(t *testing.T) {
	for _, on := range []bool{false, true} {
		c := storiesConfig(t, "capybara_test.parquet")
		c.Data.EvalSplit = 0.1
		c.GradientCheckpointing = on
		task, _ := prepare(t, c)
		if task.EvalModel == task.Model {
			t.Fatal("the evaluation model is the training model: the test would not check it")
		}
		if task.Model.Checkpoint != on || task.EvalModel.Checkpoint != on {
			t.Errorf("gradient_checkpointing %v: model %v, eval model %v", on, task.Model.Checkpoint, task.EvalModel.Checkpoint)
		}
	}
}
