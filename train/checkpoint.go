package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/alignkit/alignkit/internal/atomicfile"
)

// reservedNames are files the loop writes next to the task's model files; SaveModel must not use them.
var reservedNames = map[string]bool{
	paramsFile: true, optimizerFile: true, trainingStateFile: true,
	trainerStateFile: true, metricsFile: true, completeFile: true, plotFile: true,
}

// saveCheckpoint writes output_dir/checkpoint-<step>: everything goes into .checkpoint-<step>.tmp first,
// is synced, and the directory is renamed into place, so a crash at any point leaves either no
// checkpoint-<step> or a complete one. Older checkpoints beyond save_total_limit are then deleted.
func (r *runner) saveCheckpoint() (string, error) {
	name := fmt.Sprintf("checkpoint-%d", r.step)
	dst := filepath.Join(r.out, name)
	if !r.leader() {
		// Rank 0 writes it; every rank holds the same weights and state.
		r.lastCkpt, r.ckptStep = dst, r.step
		return dst, nil
	}
	tmp := filepath.Join(r.out, "."+name+".tmp")
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("saving %s: %w", name, err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fail(err)
	}
	if err := r.task.SaveModel(tmp); err != nil {
		return fail(fmt.Errorf("model files: %w", err))
	}
	for n := range reservedNames {
		if _, err := os.Lstat(filepath.Join(tmp, n)); err == nil {
			return fail(fmt.Errorf("the task's SaveModel wrote %s, a name the training loop reserves", n))
		}
	}
	params := make([]tensorRecord, len(r.params))
	moments := make([]tensorRecord, len(r.params))
	m, v := r.opt.Moments()
	for i, p := range r.params {
		params[i] = tensorRecord{p.Name, [][]float32{p.Value}}
		moments[i] = tensorRecord{p.Name, [][]float32{m[i], v[i]}}
	}
	if err := writeTensorFile(filepath.Join(tmp, paramsFile), kindParams, 0, params); err != nil {
		return fail(fmt.Errorf("%s: %w", paramsFile, err))
	}
	if err := writeTensorFile(filepath.Join(tmp, optimizerFile), kindAdamW, r.opt.StepCount(), moments); err != nil {
		return fail(fmt.Errorf("%s: %w", optimizerFile, err))
	}
	ts := trainingState{
		Version: trainingStateVersion, GlobalStep: r.step, Epoch: r.epoch, MicroBatch: r.pos,
		NumExamples: r.n, TrainBatchSize: r.args.PerDeviceTrainBatchSize, Seed: r.seed,
		RNG:       rngState{Algorithm: rngAlgorithm, Seed: uint64(r.seed), Stream: uint64(r.epoch)},
		NumTokens: r.numTokens, LossSum: jfloat(r.lossSum), Window: r.win,
	}
	tsb, err := marshalIndent(ts)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", trainingStateFile, err))
	}
	if err := os.WriteFile(filepath.Join(tmp, trainingStateFile), tsb, 0o644); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, metricsFile), bytes.Join(r.lines, nil), 0o644); err != nil {
		return fail(err)
	}
	hs, err := marshalIndent(r.trainerState(false))
	if err != nil {
		return fail(fmt.Errorf("%s: %w", trainerStateFile, err))
	}
	// trainer_state.json last: its presence completes the checkpoint even for readers that ignore the
	// directory rename.
	if err := os.WriteFile(filepath.Join(tmp, trainerStateFile), hs, 0o644); err != nil {
		return fail(err)
	}
	if err := syncTree(tmp); err != nil {
		return fail(err)
	}
	// A checkpoint of the same step from an abandoned later part of the run (resumed from an earlier
	// one) is replaced; it is moved aside first because a directory cannot be renamed over a non-empty one.
	old := filepath.Join(r.out, "."+name+".old")
	if _, err := os.Lstat(dst); err == nil {
		os.RemoveAll(old)
		if err := os.Rename(dst, old); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fail(err)
	}
	if err := syncDir(r.out); err != nil {
		return "", fmt.Errorf("saving %s: %w", name, err)
	}
	os.RemoveAll(old)
	r.lastCkpt, r.ckptStep, r.ckptLoss = dst, r.step, r.stepLoss
	return dst, r.rotate()
}

// rotate deletes the oldest checkpoints beyond save_total_limit.
func (r *runner) rotate() error {
	if r.args.SaveTotalLimit <= 0 {
		return nil
	}
	cs, err := listCheckpoints(r.out, false)
	if err != nil {
		return err
	}
	for len(cs) > r.args.SaveTotalLimit {
		if cs[0].path != r.lastCkpt {
			if err := os.RemoveAll(cs[0].path); err != nil {
				return fmt.Errorf("save_total_limit: removing %s: %w", cs[0].path, err)
			}
		}
		cs = cs[1:]
	}
	return nil
}

// trainerState builds HF's trainer_state.json.
func (r *runner) trainerState(finished bool) trainerState {
	return trainerState{
		Epoch: r.epochFloat(), EvalSteps: r.args.EvalSteps, GlobalStep: r.step,
		IsLocalProcessZero: true, IsWorldProcessZero: true,
		LogHistory:   append([]map[string]any{}, r.history...),
		LoggingSteps: r.args.LoggingSteps, MaxSteps: r.total, NumInputTokensSeen: r.numTokens,
		NumTrainEpochs: ceilDiv(r.total, r.stepsPerEpoch), SaveSteps: r.args.SaveSteps,
		StatefulCallbacks: map[string]any{"TrainerControl": map[string]any{
			"args": map[string]any{"should_epoch_stop": false, "should_evaluate": false, "should_log": false,
				"should_save": !finished, "should_training_stop": finished},
			"attributes": map[string]any{},
		}},
		TrainBatchSize: r.args.PerDeviceTrainBatchSize,
		TrialParams:    nil,
	}
}

// restore loads checkpoint dir into the runner: weights, moments, position, logs.
func (r *runner) restore(dir string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("resume_from_checkpoint: %s: "+format, append([]any{dir}, a...)...)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return bad("not a directory")
	}
	for _, f := range checkpointFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return bad("not a complete checkpoint (no %s)", f)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, trainingStateFile))
	if err != nil {
		return bad("%v", err)
	}
	var ts trainingState
	if err := json.Unmarshal(raw, &ts); err != nil {
		return bad("%s: %v", trainingStateFile, err)
	}
	switch {
	case ts.Version != trainingStateVersion:
		return bad("%s version %d, want %d", trainingStateFile, ts.Version, trainingStateVersion)
	case ts.NumExamples != r.n:
		return bad("written for %d training examples, the task has %d", ts.NumExamples, r.n)
	case ts.TrainBatchSize != r.args.PerDeviceTrainBatchSize:
		return bad("written with per_device_train_batch_size %d, args have %d", ts.TrainBatchSize, r.args.PerDeviceTrainBatchSize)
	case ts.Seed != r.seed:
		return bad("written with seed %d, args have %d", ts.Seed, r.seed)
	case ts.GlobalStep < 0 || ts.Epoch < 0 || ts.MicroBatch < 0 || ts.MicroBatch > r.microPerEpoch:
		return bad("%s has an impossible position (step %d, epoch %d, micro-batch %d of %d)",
			trainingStateFile, ts.GlobalStep, ts.Epoch, ts.MicroBatch, r.microPerEpoch)
	}
	_, params, err := readTensorFile(filepath.Join(dir, paramsFile), kindParams, r.params)
	if err != nil {
		return fmt.Errorf("resume_from_checkpoint: %w", err)
	}
	optStep, moments, err := readTensorFile(filepath.Join(dir, optimizerFile), kindAdamW, r.params)
	if err != nil {
		return fmt.Errorf("resume_from_checkpoint: %w", err)
	}
	m := make([][]float32, len(moments))
	v := make([][]float32, len(moments))
	for i, rec := range moments {
		m[i], v[i] = rec.arrays[0], rec.arrays[1]
	}
	if err := r.opt.SetState(optStep, m, v); err != nil {
		return bad("%v", err)
	}
	lines, err := os.ReadFile(filepath.Join(dir, metricsFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return bad("%v", err)
	}
	var hs trainerState
	raw, err = os.ReadFile(filepath.Join(dir, trainerStateFile))
	if err == nil {
		err = json.Unmarshal(raw, &hs)
	}
	if err != nil {
		return bad("%s: %v", trainerStateFile, err)
	}
	// Everything is read and checked: only now overwrite the task's weights.
	for i, rec := range params {
		copy(r.params[i].Value, rec.arrays[0])
	}
	r.step, r.epoch, r.pos = ts.GlobalStep, ts.Epoch, ts.MicroBatch
	r.numTokens, r.lossSum = ts.NumTokens, float64(ts.LossSum)
	r.win = ts.Window
	if r.win.Sums == nil {
		r.win.Sums = map[string]jfloat{}
	}
	if r.win.Weights == nil {
		r.win.Weights = map[string]jfloat{}
	}
	r.history = hs.LogHistory
	r.lines = nil
	for _, l := range bytes.SplitAfter(lines, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			r.lines = append(r.lines, l)
		}
	}
	if len(r.lines) > 0 {
		r.last = lineFloats(r.lines[len(r.lines)-1])
	}
	r.lastCkpt, r.ckptStep, r.ckptLoss = dir, ts.GlobalStep, math.NaN()
	return atomicfile.WriteFile(filepath.Join(r.out, metricsFile), bytes.Join(r.lines, nil))
}

// lineFloats decodes a metrics line into numbers (nulls become NaN).
func lineFloats(line []byte) map[string]float64 {
	var raw map[string]*float64
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil
	}
	out := make(map[string]float64, len(raw))
	for k, v := range raw {
		if v == nil {
			out[k] = math.NaN()
		} else {
			out[k] = *v
		}
	}
	return out
}

// writeLine appends one metrics line to output_dir/metrics.jsonl (one write, so a crash cannot leave
// half a line followed by another).
func (r *runner) writeLine(line map[string]any) error {
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("step %d: encoding metrics: %w", r.step, err)
	}
	b = append(b, '\n')
	if !r.leader() {
		r.lines = append(r.lines, b)
		r.last = lineFloats(b)
		return nil
	}
	path := filepath.Join(r.out, metricsFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	r.lines = append(r.lines, b)
	r.last = lineFloats(b)
	return nil
}

// completion is output_dir/training_complete.json, written last: its presence marks a finished run and
// lists the model files that belong to it.
type completion struct {
	GlobalStep int      `json:"global_step"`
	Epoch      float64  `json:"epoch"`
	TrainLoss  float64  `json:"train_loss"`
	ModelFiles []string `json:"model_files"`
}

// finish writes the final model into output_dir (through .final.tmp and per-file renames, so nothing of
// it appears before it is complete on disk), then trainer_state.json, loss.png and the completion marker.
func (r *runner) finish() error {
	if !r.leader() {
		return r.agree(nil, "writing the final model")
	}
	return r.agree(r.finishLeader(), "writing the final model")
}

// agree tells every rank whether an operation rank 0 alone did (err is its outcome there, nil on
// the others) succeeded, so that no rank reports success for a job whose rank 0 failed.
func (r *runner) agree(err error, what string) error {
	if r.comm.Size() == 1 {
		return err
	}
	flag := []float64{0}
	if err != nil {
		flag[0] = 1
	}
	if cerr := r.comm.AllreduceFloat64(flag); cerr != nil {
		return fmt.Errorf("%s: %w", what, cerr)
	}
	if err == nil && flag[0] > 0 {
		return fmt.Errorf("%s failed on rank 0", what)
	}
	return err
}

// finishLeader writes the final model and the run's summary files (rank 0).
func (r *runner) finishLeader() error {
	tmp := filepath.Join(r.out, finalTmpDir)
	fail := func(err error) error {
		os.RemoveAll(tmp)
		return fmt.Errorf("writing the final model to %s: %w", r.out, err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fail(err)
	}
	if err := r.task.SaveModel(tmp); err != nil {
		return fail(err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fail(err)
	}
	var files []string
	for _, e := range entries {
		if reservedNames[e.Name()] || checkpointName.MatchString(e.Name()) {
			return fail(fmt.Errorf("the task's SaveModel wrote %s, a name the training loop reserves", e.Name()))
		}
		files = append(files, e.Name())
	}
	if err := syncTree(tmp); err != nil {
		return fail(err)
	}
	for _, name := range files {
		dst := filepath.Join(r.out, name)
		if err := os.RemoveAll(dst); err != nil {
			return fail(err)
		}
		if err := os.Rename(filepath.Join(tmp, name), dst); err != nil {
			return fail(err)
		}
	}
	os.RemoveAll(tmp)
	if err := syncDir(r.out); err != nil {
		return fail(err)
	}
	res := r.result()
	secs := res.Runtime.Seconds()
	summary := map[string]any{"step": r.step, "epoch": r.epochFloat(), "total_flos": 0.0,
		"train_loss": res.TrainLoss, "train_runtime": secs}
	if secs > 0 {
		summary["train_samples_per_second"] = float64(r.total*r.args.PerDeviceTrainBatchSize*r.args.GradientAccumulationSteps*r.comm.Size()) / secs
		summary["train_steps_per_second"] = float64(r.total) / secs
	}
	r.history = append(r.history, summary)
	hs, err := marshalIndent(r.trainerState(true))
	if err != nil {
		return fmt.Errorf("encoding %s: %w", trainerStateFile, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(r.out, trainerStateFile), hs); err != nil {
		return err
	}
	if *r.args.ReportPlots {
		if err := writeLossPlot(filepath.Join(r.out, plotFile), r.history); err != nil {
			// The model is saved; a plot that cannot be drawn is reported, not fatal.
			r.rep.note("warning: %v", err)
		}
	}
	cb, err := marshalIndent(completion{GlobalStep: r.step, Epoch: r.epochFloat(), TrainLoss: res.TrainLoss, ModelFiles: files})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(r.out, completeFile), cb); err != nil {
		return err
	}
	r.rep.note("training complete: %d steps, train_loss %.4f, model saved to %s", r.step, res.TrainLoss, r.out)
	return nil
}

// removeFinished deletes the outputs of an earlier finished run (listed in training_complete.json)
// before training resumes, so that a run that then fails leaves no stale final model in output_dir.
// The marker goes last so that a crash in between leaves it, and the next run removes the rest.
func removeFinished(out string) error {
	path := filepath.Join(out, completeFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	var c completion
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	for _, name := range append(c.ModelFiles, plotFile, trainerStateFile) {
		if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." ||
			checkpointName.MatchString(name) || name == metricsFile {
			return fmt.Errorf("%s: refusing to remove listed file %q", path, name)
		}
		if err := os.RemoveAll(filepath.Join(out, name)); err != nil {
			return fmt.Errorf("removing the earlier final model: %w", err)
		}
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return nil
}
