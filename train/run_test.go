package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// baseArgs: 16 examples, micro-batches of 2, 2 per step -> 4 steps per epoch; 20 steps = 5 epochs.
func baseArgs(dir string) Args {
	return Args{OutputDir: dir, MaxSteps: 20, PerDeviceTrainBatchSize: 2, PerDeviceEvalBatchSize: 4,
		GradientAccumulationSteps: 2, LearningRate: 0.05, LRSchedulerType: "cosine", WarmupSteps: 2,
		WeightDecay: 0.01, LoggingSteps: 1, EvalSteps: 5, SaveSteps: 10}
}

func run(t *testing.T, ctx context.Context, args Args, task Task, opts ...Option) (Result, error) {
	t.Helper()
	return Run(ctx, args, task, append([]Option{WithLogWriter(io.Discard)}, opts...)...)
}

func mustRun(t *testing.T, args Args, task Task, opts ...Option) Result {
	t.Helper()
	res, err := run(t, context.Background(), args, task, opts...)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// metricLines reads metrics.jsonl and re-encodes each line without tokens_per_second (the one
// wall-clock-dependent key); numbers keep their exact text.
func metricLines(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, metricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		delete(m, "tokens_per_second")
		e, _ := json.Marshal(m)
		out = append(out, string(e))
	}
	return out
}

func lineStep(t *testing.T, line string) int {
	var m struct{ Step int }
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	return m.Step
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestLossFalls(t *testing.T) {
	a := baseArgs(t.TempDir())
	a.MaxSteps, a.LearningRate, a.EvalSteps = 60, 0.1, 2
	task := newSoftmaxTask(16, 6, 1)
	res := mustRun(t, a, task)
	lines := metricLines(t, a.OutputDir)
	var first, last map[string]float64
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if !(last["loss"] < 0.5*first["loss"]) {
		t.Errorf("train loss %v -> %v: did not halve", first["loss"], last["loss"])
	}
	var firstEval map[string]float64
	json.Unmarshal([]byte(lines[1]), &firstEval)
	if !(last["eval_loss"] < firstEval["eval_loss"]) || !(last["eval_mean_token_accuracy"] > firstEval["eval_mean_token_accuracy"]) {
		t.Errorf("eval at step 2: loss %v acc %v; at 60: loss %v acc %v", firstEval["eval_loss"],
			firstEval["eval_mean_token_accuracy"], last["eval_loss"], last["eval_mean_token_accuracy"])
	}
	// eval_examples is weighted 1 per batch: batches of 4 and 2 examples average to 3.
	if last["eval_examples"] != 3 {
		t.Errorf("eval_examples = %v, want 3 (mean over 2 batches)", last["eval_examples"])
	}
	if res.Steps != 60 || res.TotalSteps != 60 || res.Epoch != 15 || res.LastMetrics["step"] != 60 {
		t.Errorf("result %+v", res)
	}
}

// TestEpochsAndBatches checks the data order: every example exactly once per epoch, a different order
// each epoch, and a short last step when an epoch's micro-batches do not fill it.
func TestEpochsAndBatches(t *testing.T) {
	a := baseArgs(t.TempDir())
	// 10 examples in micro-batches of 2 -> 5 micro-batches per epoch, 2 per step -> steps of 2, 2, 1.
	a.MaxSteps, a.NumTrainEpochs = 0, 2
	task := newSoftmaxTask(10, 0, 1)
	res := mustRun(t, a, task)
	if res.TotalSteps != 6 {
		t.Fatalf("total steps %d, want ceil(2 epochs * 3 steps) = 6", res.TotalSteps)
	}
	var epochs [2][]int
	for _, b := range task.stepBatches {
		epochs[b.Epoch] = append(epochs[b.Epoch], b.Examples...)
		wantAccum := 2
		if b.Step%3 == 0 {
			wantAccum = 1
		}
		if b.Accum != wantAccum || len(b.Examples) != 2 {
			t.Errorf("step %d micro %d: accum %d, %d examples; want accum %d, 2 examples", b.Step, b.Micro, b.Accum, len(b.Examples), wantAccum)
		}
	}
	for e, ex := range epochs {
		s := slices.Sorted(slices.Values(ex))
		if !slices.Equal(s, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("epoch %d saw %v, want each example once", e, ex)
		}
	}
	if slices.Equal(epochs[0], epochs[1]) {
		t.Error("both epochs used the same order")
	}
	lines := metricLines(t, a.OutputDir)
	var m3 map[string]float64
	json.Unmarshal([]byte(lines[2]), &m3)
	if m3["step"] != 3 || m3["epoch"] != 1 {
		t.Errorf("line 3 = %s, want step 3 at epoch 1.0", lines[2])
	}
	if exists(filepath.Join(a.OutputDir, "checkpoint-10")) {
		t.Error("checkpoint beyond the last step")
	}
}

func TestPermutation(t *testing.T) {
	p := permutation(42, 3, 100)
	if !slices.Equal(slices.Sorted(slices.Values(p)), func() []int {
		s := make([]int, 100)
		for i := range s {
			s[i] = i
		}
		return s
	}()) {
		t.Fatal("not a permutation")
	}
	if !slices.Equal(p, permutation(42, 3, 100)) {
		t.Error("same (seed, epoch) gave different orders")
	}
	if slices.Equal(p, permutation(42, 4, 100)) || slices.Equal(p, permutation(43, 3, 100)) {
		t.Error("a different epoch or seed gave the same order")
	}
}

// TestAccumulationEquivalence: 2 micro-batches of 1 example (scale 1/2 each) and 1 micro-batch of 2
// see the same examples per step (one shuffle of examples, cut differently) and, for this task, exactly
// the same gradient buffer (see softmaxTask), so every logged number and the final weights agree bit
// for bit.
func TestAccumulationEquivalence(t *testing.T) {
	mk := func(bs, ga int) (*softmaxTask, string) {
		a := baseArgs(t.TempDir())
		a.MaxSteps, a.PerDeviceTrainBatchSize, a.GradientAccumulationSteps = 12, bs, ga
		task := newSoftmaxTask(16, 6, 1)
		mustRun(t, a, task)
		return task, a.OutputDir
	}
	acc, accDir := mk(1, 2)
	one, oneDir := mk(2, 1)
	if acc.stepBatches[0].Accum != 2 || len(acc.stepBatches[0].Examples) != 1 || one.stepBatches[0].Accum != 1 {
		t.Fatalf("batches: %+v / %+v", acc.stepBatches[0], one.stepBatches[0])
	}
	if !slices.Equal(metricLines(t, accDir), metricLines(t, oneDir)) {
		t.Errorf("metrics differ:\n%s\n%s", strings.Join(metricLines(t, accDir), "\n"), strings.Join(metricLines(t, oneDir), "\n"))
	}
	if !sameBits(acc.W, one.W) || !sameBits(acc.B, one.B) {
		t.Error("final weights differ")
	}
	// Not vacuous: no accumulation with micro-batches of 1 is a different run.
	_, plainDir := mk(1, 1)
	if slices.Equal(metricLines(t, plainDir)[:12], metricLines(t, oneDir)) {
		t.Error("batch size 1 without accumulation gave the same metrics")
	}
}

// TestResumeBitIdentical: an uninterrupted 20-step run versus one resumed from its checkpoint-10 into
// a task whose weights were initialised differently: every metrics line (tokens_per_second aside), the
// log history and the final weights agree. logging_steps 3 leaves a logging window open across the
// checkpoint.
func TestResumeBitIdentical(t *testing.T) {
	tests := []struct {
		name    string
		logging int
	}{{"log every step", 1}, {"window across checkpoint", 3}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			newTask := func(init uint64) (Task, *softmaxTask) {
				s := newSoftmaxTask(16, 6, init)
				return s, s
			}
			a := baseArgs(t.TempDir())
			a.LoggingSteps = tc.logging
			full, fullT := newTask(1)
			mustRun(t, a, full)

			b := a
			b.OutputDir = t.TempDir()
			b.ResumeFromCheckpoint = filepath.Join(a.OutputDir, "checkpoint-10")
			resumed, resT := newTask(99)
			res := mustRun(t, b, resumed)
			if resT.stepBatches[0].Step != 11 {
				t.Errorf("resumed run started at step %d, want 11", resT.stepBatches[0].Step)
			}
			want, got := metricLines(t, a.OutputDir), metricLines(t, b.OutputDir)
			if len(got) != len(want) {
				t.Fatalf("%d lines, want %d", len(got), len(want))
			}
			after := 0
			for i := range want {
				if lineStep(t, want[i]) > 10 {
					after++
				}
				if got[i] != want[i] {
					t.Errorf("line %d:\n got %s\nwant %s", i, got[i], want[i])
				}
			}
			if after == 0 {
				t.Fatal("no lines after step 10 compared")
			}
			if !sameBits(fullT.W, resT.W) || !sameBits(fullT.B, resT.B) {
				t.Error("final weights differ")
			}
			if res.Steps != 20 || res.TrainLoss != mustResultLoss(t, a.OutputDir) {
				t.Errorf("result %+v", res)
			}
			if h1, h2 := history(t, a.OutputDir), history(t, b.OutputDir); !slices.Equal(h1, h2) {
				t.Errorf("log_history differs:\n%v\n%v", h1, h2)
			}
		})
	}
}

func mustResultLoss(t *testing.T, dir string) float64 {
	var c completion
	b, err := os.ReadFile(filepath.Join(dir, completeFile))
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c.TrainLoss
}

// history returns trainer_state.json's log_history entries without wall-clock keys.
func history(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, trainerStateFile))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		LogHistory []map[string]json.RawMessage `json:"log_history"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range s.LogHistory {
		for k := range e {
			if strings.Contains(k, "runtime") || strings.HasSuffix(k, "per_second") {
				delete(e, k)
			}
		}
		j, _ := json.Marshal(e)
		out = append(out, string(j))
	}
	return out
}

// TestInterrupt cancels the context in the middle of step 13 (after its first micro-batch): the
// unfinished step is discarded, checkpoint-12 is written, and resuming from "latest" reproduces the
// uninterrupted run exactly.
func TestInterrupt(t *testing.T) {
	ref := baseArgs(t.TempDir())
	refT := newSoftmaxTask(16, 6, 1)
	mustRun(t, ref, refT)

	a := baseArgs(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	task := newSoftmaxTask(16, 6, 1)
	task.cancel, task.cancelAt = cancel, [2]int{13, 0}
	res, err := run(t, ctx, a, task)
	ckpt := filepath.Join(a.OutputDir, "checkpoint-12")
	if want := "interrupted at step 12; checkpoint saved to " + ckpt; err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
		t.Errorf("error does not match ErrInterrupted and context.Canceled")
	}
	if !res.Interrupted || res.Steps != 12 || res.Checkpoint != ckpt || !isCompleteCheckpoint(ckpt) {
		t.Errorf("result %+v", res)
	}
	if exists(filepath.Join(a.OutputDir, "model.bin")) || exists(filepath.Join(a.OutputDir, completeFile)) {
		t.Error("an interrupted run left a final model")
	}

	b := a
	b.ResumeFromCheckpoint = "latest"
	resT := newSoftmaxTask(16, 6, 99)
	mustRun(t, b, resT)
	if !slices.Equal(metricLines(t, ref.OutputDir), metricLines(t, b.OutputDir)) {
		t.Error("metrics after interrupt+resume differ from the uninterrupted run")
	}
	if !sameBits(refT.W, resT.W) {
		t.Error("final weights differ")
	}

	// Interrupted right after a checkpoint step: the existing checkpoint is reported, none is added.
	c := baseArgs(t.TempDir())
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	t2 := newSoftmaxTask(16, 6, 1)
	t2.cancel, t2.cancelAt = cancel2, [2]int{11, 0}
	_, err = run(t, ctx2, c, t2)
	if want := "interrupted at step 10; checkpoint saved to " + filepath.Join(c.OutputDir, "checkpoint-10"); err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	if cs, _ := listCheckpoints(c.OutputDir, false); len(cs) != 1 {
		t.Errorf("checkpoints %v, want only checkpoint-10", cs)
	}

	// Cancelled before any step: nothing to save.
	d := baseArgs(t.TempDir())
	ctx3, cancel3 := context.WithCancel(context.Background())
	cancel3()
	_, err = run(t, ctx3, d, newSoftmaxTask(16, 6, 1))
	if err == nil || err.Error() != "interrupted at step 0; no step completed, nothing saved" {
		t.Errorf("error %v", err)
	}
}

func TestNonFinite(t *testing.T) {
	tests := []struct {
		name      string
		nanAt     int
		infGradAt int
		want      string // %s is output_dir
	}{
		{"NaN loss", 7, 0, "step 7: loss is NaN; last good checkpoint: %s/checkpoint-5 (loss %L)"},
		{"Inf grad norm", 0, 8, "step 8: grad_norm is +Inf; last good checkpoint: %s/checkpoint-5 (loss %L)"},
		{"before any checkpoint", 3, 0, "step 3: loss is NaN; last good checkpoint: none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := baseArgs(t.TempDir())
			a.SaveSteps, a.LoggingSteps = 5, 1
			task := newSoftmaxTask(16, 6, 1)
			task.nanAt, task.infGradAt = tc.nanAt, tc.infGradAt
			_, err := run(t, context.Background(), a, task)
			want := strings.ReplaceAll(tc.want, "%s", a.OutputDir)
			if strings.Contains(want, "%L") {
				// The checkpoint's loss is step 5's, as metrics.jsonl logged it (one step per line).
				var step5 float64
				for _, l := range metricLines(t, a.OutputDir) {
					var m map[string]float64
					if json.Unmarshal([]byte(l), &m) == nil && m["step"] == 5 {
						step5 = m["loss"]
					}
				}
				want = strings.ReplaceAll(want, "%L", strconv.FormatFloat(step5, 'g', 6, 64))
			}
			if err == nil || err.Error() != want {
				t.Fatalf("error %v\nwant %s", err, want)
			}
			if !errors.Is(err, ErrNonFinite) {
				t.Error("error does not match ErrNonFinite")
			}
			for _, f := range []string{"config.json", "model.bin", completeFile, plotFile, "checkpoint-10"} {
				if exists(filepath.Join(a.OutputDir, f)) {
					t.Errorf("a failed run left %s in output_dir", f)
				}
			}
			if tc.nanAt == 3 {
				return
			}
			ck := filepath.Join(a.OutputDir, "checkpoint-5")
			if !isCompleteCheckpoint(ck) {
				t.Fatal("last good checkpoint is not complete")
			}
			// The last good checkpoint resumes to the same result as a clean run.
			ref := baseArgs(t.TempDir())
			ref.SaveSteps, ref.LoggingSteps = 5, 1
			refT := newSoftmaxTask(16, 6, 1)
			mustRun(t, ref, refT)
			b := a
			b.ResumeFromCheckpoint = ck
			resT := newSoftmaxTask(16, 6, 2)
			mustRun(t, b, resT)
			if !sameBits(refT.W, resT.W) || !slices.Equal(metricLines(t, ref.OutputDir), metricLines(t, b.OutputDir)) {
				t.Error("resuming from the last good checkpoint differs from a clean run")
			}
		})
	}
}

// TestFailedResumeLeavesNoFinalModel: continuing a finished run removes its final model first, so a
// continuation that then fails does not leave the old model looking like the result.
func TestFailedResumeLeavesNoFinalModel(t *testing.T) {
	a := baseArgs(t.TempDir())
	mustRun(t, a, newSoftmaxTask(16, 6, 1))
	if !exists(filepath.Join(a.OutputDir, "model.bin")) {
		t.Fatal("no final model")
	}
	b := a
	b.MaxSteps, b.ResumeFromCheckpoint = 30, "latest"
	task := newSoftmaxTask(16, 6, 1)
	task.nanAt = 23
	_, err := run(t, context.Background(), b, task)
	if want := "step 23: loss is NaN; last good checkpoint: " + filepath.Join(a.OutputDir, "checkpoint-20"); err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	for _, f := range []string{"config.json", "model.bin", completeFile, plotFile, trainerStateFile} {
		if exists(filepath.Join(a.OutputDir, f)) {
			t.Errorf("%s of the earlier finished run is still in output_dir", f)
		}
	}
}

func TestCheckpointsAndOutputs(t *testing.T) {
	a := baseArgs(t.TempDir())
	a.SaveSteps, a.SaveTotalLimit = 4, 2
	var log bytes.Buffer
	res := mustRun(t, a, newSoftmaxTask(16, 6, 1), WithLogWriter(&log), WithProgressBar(false))
	entries, _ := os.ReadDir(a.OutputDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"checkpoint-16", "checkpoint-20", "config.json", plotFile, metricsFile, "model.bin", trainerStateFile, completeFile}
	if !slices.Equal(names, want) {
		t.Errorf("output_dir holds %v, want %v", names, want)
	}
	if res.Checkpoint != filepath.Join(a.OutputDir, "checkpoint-20") {
		t.Errorf("result checkpoint %s", res.Checkpoint)
	}
	ck, _ := os.ReadDir(filepath.Join(a.OutputDir, "checkpoint-20"))
	names = names[:0]
	for _, e := range ck {
		names = append(names, e.Name())
	}
	want = []string{"config.json", metricsFile, "model.bin", optimizerFile, paramsFile, trainerStateFile, trainingStateFile}
	if !slices.Equal(names, want) {
		t.Errorf("checkpoint holds %v, want %v", names, want)
	}

	// trainer_state.json in HF's shape.
	var st map[string]any
	b, _ := os.ReadFile(filepath.Join(a.OutputDir, trainerStateFile))
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"best_metric", "best_model_checkpoint", "epoch", "eval_steps", "global_step", "is_hyper_param_search",
		"log_history", "logging_steps", "max_steps", "num_train_epochs", "save_steps", "stateful_callbacks", "total_flos", "train_batch_size"} {
		if _, ok := st[k]; !ok {
			t.Errorf("trainer_state.json lacks %s", k)
		}
	}
	hist := st["log_history"].([]any)
	first, last := hist[0].(map[string]any), hist[len(hist)-1].(map[string]any)
	if st["global_step"] != 20.0 || first["step"] != 1.0 || first["loss"] == nil || last["train_loss"] == nil {
		t.Errorf("trainer_state: global_step %v, first entry %v, last entry %v", st["global_step"], first, last)
	}
	var evals int
	for _, e := range hist {
		if m := e.(map[string]any); m["eval_loss"] != nil {
			evals++
			if m["loss"] != nil || m["eval_mean_token_accuracy"] == nil || m["eval_runtime"] == nil {
				t.Errorf("eval entry %v", m)
			}
		}
	}
	if evals != 4 {
		t.Errorf("%d eval entries, want 4 (steps 5, 10, 15, 20)", evals)
	}

	// Learning rates: optimizer step s uses the schedule's value at s-1, so warmup starts at 0.
	lines := metricLines(t, a.OutputDir)
	sched := Schedule(a, 20)
	for i, l := range lines {
		var m map[string]float64
		json.Unmarshal([]byte(l), &m)
		if m["learning_rate"] != sched(i) {
			t.Errorf("step %d: learning_rate %v, want %v", i+1, m["learning_rate"], sched(i))
		}
		if m["grad_norm"] <= 0 || m["mean_token_accuracy"] < 0 || m["num_tokens"] != float64(16*(i+1)) {
			t.Errorf("step %d: %s", i+1, l)
		}
	}
	if sched(0) != 0 || sched(1) != 0.025 {
		t.Errorf("warmup: %v %v, want 0 and 0.025", sched(0), sched(1))
	}

	f, err := os.Open(filepath.Join(a.OutputDir, plotFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if img, err := png.Decode(f); err != nil || img.Bounds().Dx() < 100 {
		t.Errorf("loss.png: %v", err)
	}
	var c completion
	b, _ = os.ReadFile(filepath.Join(a.OutputDir, completeFile))
	json.Unmarshal(b, &c)
	if c.GlobalStep != 20 || !slices.Equal(c.ModelFiles, []string{"config.json", "model.bin"}) {
		t.Errorf("training_complete.json %+v", c)
	}
	out := log.String()
	for _, s := range []string{"step 1/20 epoch 0.25 loss ", "eval_loss ", "saved " + filepath.Join(a.OutputDir, "checkpoint-4"), "training complete: 20 steps"} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %q:\n%s", s, out)
		}
	}

	// A fresh run into this output_dir is refused; so is one into a dir with checkpoints only.
	_, err = run(t, context.Background(), a, newSoftmaxTask(16, 6, 1))
	if want := "output_dir: " + a.OutputDir + " already holds a finished run (training_complete.json); choose another output_dir"; err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	os.Remove(filepath.Join(a.OutputDir, completeFile))
	_, err = run(t, context.Background(), a, newSoftmaxTask(16, 6, 1))
	if want := "output_dir: " + a.OutputDir + " already holds checkpoint-20 from an earlier run; set resume_from_checkpoint: latest to continue it, or choose another output_dir"; err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
}

func TestProgressBar(t *testing.T) {
	a := baseArgs(t.TempDir())
	var log bytes.Buffer
	mustRun(t, a, newSoftmaxTask(16, 6, 1), WithLogWriter(&log), WithProgressBar(true))
	if !strings.Contains(log.String(), "20/20") || !strings.Contains(log.String(), "training complete") {
		t.Errorf("progress output:\n%s", log.String())
	}
}

// TestSaveFailure: SaveModel fails while checkpoint-10 is being written. The run stops naming the step,
// the half-built directory is gone, and "latest" is still checkpoint-5. Leftovers of a hard crash
// (a .tmp directory, a checkpoint directory without the loop's files) are ignored and cleaned up.
func TestSaveFailure(t *testing.T) {
	a := baseArgs(t.TempDir())
	a.SaveSteps = 5
	task := newSoftmaxTask(16, 6, 1)
	task.saveFailAt = 2
	_, err := run(t, context.Background(), a, task)
	if want := "step 10: saving checkpoint-10: model files: disk full (simulated)"; err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	entries, _ := os.ReadDir(a.OutputDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"checkpoint-5", metricsFile}) {
		t.Errorf("output_dir holds %v, want checkpoint-5 and metrics.jsonl", names)
	}
	if l, _ := LatestCheckpoint(a.OutputDir); l != filepath.Join(a.OutputDir, "checkpoint-5") {
		t.Errorf("latest = %s", l)
	}

	// Simulated hard crash debris.
	os.MkdirAll(filepath.Join(a.OutputDir, ".checkpoint-15.tmp"), 0o755)
	os.WriteFile(filepath.Join(a.OutputDir, ".checkpoint-15.tmp", paramsFile), []byte("partial"), 0o644)
	os.MkdirAll(filepath.Join(a.OutputDir, "checkpoint-20"), 0o755)
	os.WriteFile(filepath.Join(a.OutputDir, "checkpoint-20", "config.json"), []byte("{}"), 0o644)
	if l, _ := LatestCheckpoint(a.OutputDir); l != filepath.Join(a.OutputDir, "checkpoint-5") {
		t.Errorf("latest with debris = %s", l)
	}
	b := a
	b.ResumeFromCheckpoint = "true"
	resT := newSoftmaxTask(16, 6, 3)
	mustRun(t, b, resT)
	if exists(filepath.Join(a.OutputDir, ".checkpoint-15.tmp")) || !isCompleteCheckpoint(filepath.Join(a.OutputDir, "checkpoint-20")) {
		t.Error("debris not cleaned or incomplete checkpoint-20 not replaced")
	}
	ref := baseArgs(t.TempDir())
	ref.SaveSteps = 5
	refT := newSoftmaxTask(16, 6, 1)
	mustRun(t, ref, refT)
	if !sameBits(refT.W, resT.W) {
		t.Error("resumed weights differ from a clean run")
	}
}

func TestResumeErrors(t *testing.T) {
	a := baseArgs(t.TempDir())
	mustRun(t, a, newSoftmaxTask(16, 6, 1))
	ck := filepath.Join(a.OutputDir, "checkpoint-10")
	damaged := t.TempDir()
	for _, f := range []string{paramsFile, optimizerFile, trainingStateFile, trainerStateFile, metricsFile} {
		b, _ := os.ReadFile(filepath.Join(ck, f))
		if f == paramsFile {
			b[50] ^= 1 // inside the first tensor's values (header 32 + name record 13 bytes)
		}
		os.WriteFile(filepath.Join(damaged, f), b, 0o644)
	}
	incomplete := t.TempDir()
	os.WriteFile(filepath.Join(incomplete, paramsFile), nil, 0o644)
	tests := []struct {
		name   string
		mod    func(*Args)
		task   Task
		prefix string
	}{
		{"batch size", func(b *Args) { b.ResumeFromCheckpoint = ck; b.PerDeviceTrainBatchSize = 4 }, newSoftmaxTask(16, 6, 1),
			"resume_from_checkpoint: " + ck + ": written with per_device_train_batch_size 2, args have 4"},
		{"seed", func(b *Args) { s := int64(7); b.ResumeFromCheckpoint = ck; b.Seed = &s }, newSoftmaxTask(16, 6, 1),
			"resume_from_checkpoint: " + ck + ": written with seed 42, args have 7"},
		{"dataset", func(b *Args) { b.ResumeFromCheckpoint = ck }, newSoftmaxTask(12, 6, 1),
			"resume_from_checkpoint: " + ck + ": written for 16 training examples, the task has 12"},
		{"incomplete", func(b *Args) { b.ResumeFromCheckpoint = incomplete }, newSoftmaxTask(16, 6, 1),
			"resume_from_checkpoint: " + incomplete + ": not a complete checkpoint (no optimizer.bin)"},
		{"damaged", func(b *Args) { b.ResumeFromCheckpoint = damaged }, newSoftmaxTask(16, 6, 1),
			"resume_from_checkpoint: " + filepath.Join(damaged, paramsFile) + ": checksum mismatch"},
		{"no checkpoint", func(b *Args) { b.OutputDir = t.TempDir(); b.ResumeFromCheckpoint = "latest" }, newSoftmaxTask(16, 6, 1),
			"resume_from_checkpoint: no complete checkpoint-N in "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := a
			b.OutputDir = t.TempDir()
			tc.mod(&b)
			_, err := run(t, context.Background(), b, tc.task)
			if err == nil || !strings.HasPrefix(err.Error(), tc.prefix) {
				t.Errorf("error %v\nwant prefix %s", err, tc.prefix)
			}
		})
	}
}

func TestTensorFile(t *testing.T) {
	dir := t.TempDir()
	params := []Param{{Name: "a", Value: []float32{1, -2, float32(math.Inf(1))}}, {Name: "bb", Value: make([]float32, 70000)}}
	for i := range params[1].Value {
		params[1].Value[i] = float32(i) * 0.5
	}
	path := filepath.Join(dir, "opt.bin")
	recs := []tensorRecord{{"a", [][]float32{params[0].Value, {4, 5, 6}}}, {"bb", [][]float32{params[1].Value, params[1].Value}}}
	if err := writeTensorFile(path, kindAdamW, 17, recs); err != nil {
		t.Fatal(err)
	}
	step, got, err := readTensorFile(path, kindAdamW, params)
	if err != nil || step != 17 || !sameBits(got[0].arrays[0], params[0].Value) || !sameBits(got[0].arrays[1], []float32{4, 5, 6}) ||
		!sameBits(got[1].arrays[1], params[1].Value) {
		t.Fatalf("round trip: step %d err %v", step, err)
	}
	raw, _ := os.ReadFile(path)
	tests := []struct {
		name string
		data []byte
		kind string
		want []Param
		err  string
	}{
		{"wrong kind", raw, kindParams, params, `holds "adamw" tensors, want "params"`},
		{"truncated", raw[:len(raw)-9], kindAdamW, params, "file is truncated"},
		{"bad magic", append([]byte("GGUF"), raw[4:]...), kindAdamW, params, "not an alignkit training tensor file (bad magic)"},
		{"other params", raw, kindAdamW, []Param{params[0], {Name: "bc", Value: params[1].Value}}, "tensor 1 is bb, the task's param 1 is bc"},
		{"other size", raw, kindAdamW, []Param{{Name: "a", Value: make([]float32, 4)}, params[1]}, "tensor a has 3 values, the task's param has 4"},
		{"trailing", append(append([]byte{}, raw...), 0), kindAdamW, params, "trailing bytes after the checksum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			os.WriteFile(p, tc.data, 0o644)
			_, _, err := readTensorFile(p, tc.kind, tc.want)
			if err == nil || err.Error() != p+": "+tc.err {
				t.Errorf("error %v\nwant %s: %s", err, p, tc.err)
			}
		})
	}
}

func TestTotalSteps(t *testing.T) {
	tests := []struct {
		args Args
		n    int
		want int
	}{
		{Args{MaxSteps: 7}, 100, 7},
		// 100 examples / 8 -> 13 micro-batches; / 4 accumulation -> 4 steps per epoch; 3 epochs (default).
		{Args{GradientAccumulationSteps: 4}, 100, 12},
		// 2.5 epochs of 4 steps = 10.
		{Args{GradientAccumulationSteps: 4, NumTrainEpochs: 2.5}, 100, 10},
		// 0.3 epochs of 4 steps = ceil(1.2) = 2.
		{Args{GradientAccumulationSteps: 4, NumTrainEpochs: 0.3}, 100, 2},
	}
	for _, tc := range tests {
		if got := TotalSteps(tc.args, tc.n); got != tc.want {
			t.Errorf("TotalSteps(%+v, %d) = %d, want %d", tc.args, tc.n, got, tc.want)
		}
	}
}

// collidingTask reports a train metric named like a loop metric.
type collidingTask struct{ *softmaxTask }

func (c collidingTask) Step(ctx context.Context, b Batch, g [][]float32, s float32) (Metrics, error) {
	m, err := c.softmaxTask.Step(ctx, b, g, s)
	m.Values["grad_norm"] = 1
	return m, err
}

func TestTaskErrors(t *testing.T) {
	a := baseArgs(t.TempDir())
	_, err := run(t, context.Background(), a, collidingTask{newSoftmaxTask(16, 6, 1)})
	if err == nil || err.Error() != `step 1: task metric "grad_norm" collides with a loop metric` {
		t.Errorf("error %v", err)
	}
	_, err = run(t, context.Background(), baseArgs(t.TempDir()), newSoftmaxTask(0, 6, 1))
	if err == nil || err.Error() != "task has no training examples (NumExamples 0)" {
		t.Errorf("error %v", err)
	}
	_, err = run(t, context.Background(), Args{}, newSoftmaxTask(16, 6, 1))
	if err == nil || err.Error() != "output_dir: must be set" {
		t.Errorf("error %v", err)
	}
}

// faultyTask overrides one Task method of softmaxTask to fail.
type faultyTask struct {
	*softmaxTask
	params  []Param // returned by Params when set (noParam returns nil)
	noParam bool
	stepErr error
	evalErr error
	saveAs  string // SaveModel also writes this file name
}

func (f faultyTask) Params() []Param {
	if f.noParam {
		return nil
	}
	if f.params != nil {
		return f.params
	}
	return f.softmaxTask.Params()
}

func (f faultyTask) Step(ctx context.Context, b Batch, g [][]float32, s float32) (Metrics, error) {
	if f.stepErr != nil {
		return Metrics{}, f.stepErr
	}
	return f.softmaxTask.Step(ctx, b, g, s)
}

func (f faultyTask) Eval(ctx context.Context, b Batch) (Metrics, error) {
	if f.evalErr != nil {
		return Metrics{}, f.evalErr
	}
	return f.softmaxTask.Eval(ctx, b)
}

func (f faultyTask) SaveModel(dir string) error {
	if f.saveAs != "" {
		if err := os.WriteFile(filepath.Join(dir, f.saveAs), nil, 0o644); err != nil {
			return err
		}
	}
	return f.softmaxTask.SaveModel(dir)
}

// TestTaskFaults: each way a task can fail surfaces as one error naming the step and the part that
// failed (baseArgs evaluates at step 5 and saves at step 10).
func TestTaskFaults(t *testing.T) {
	boom := errors.New("boom")
	st := newSoftmaxTask(16, 6, 1)
	tests := []struct {
		name string
		task faultyTask
		want string
	}{
		{"no params", faultyTask{softmaxTask: st, noParam: true}, "task has no trainable params"},
		{"duplicate param", faultyTask{softmaxTask: st, params: []Param{{Name: "w", Value: st.W}, {Name: "w", Value: st.B}}},
			`task params: empty or duplicate name "w"`},
		{"unnamed param", faultyTask{softmaxTask: st, params: []Param{{Value: st.W}}}, `task params: empty or duplicate name ""`},
		{"step", faultyTask{softmaxTask: newSoftmaxTask(16, 6, 1), stepErr: boom}, "step 1: micro-batch 0: boom"},
		{"eval", faultyTask{softmaxTask: newSoftmaxTask(16, 6, 1), evalErr: boom}, "step 5: evaluation batch 0: boom"},
		{"reserved name", faultyTask{softmaxTask: newSoftmaxTask(16, 6, 1), saveAs: paramsFile},
			"step 10: saving checkpoint-10: the task's SaveModel wrote params.bin, a name the training loop reserves"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, context.Background(), baseArgs(t.TempDir()), tc.task)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			if tc.task.stepErr != nil && !errors.Is(err, boom) {
				t.Fatalf("%v does not wrap the task's error", err)
			}
		})
	}
}
