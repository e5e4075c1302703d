package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/internal/atomicfile"
)

// Option adjusts Run.
type Option func(*options)

type options struct {
	log io.Writer
	bar *bool
	now func() time.Time
	// config is written to output_dir/run_config.json once the output directory is ready.
	config map[string]any
	// barMetrics are the logged values the progress bar shows after loss and tokens/s.
	barMetrics []string
	// comm is the group the run is data-parallel over (nil: dist.World).
	comm dist.Comm
}

// WithLogWriter sends progress and log lines to w (default os.Stderr).
func WithLogWriter(w io.Writer) Option { return func(o *options) { o.log = w } }

// WithProgressBar forces the progress bar on or off; by default it is on when the log writer is a
// terminal and plain log lines are written otherwise.
func WithProgressBar(on bool) Option { return func(o *options) { o.bar = &on } }

// WithConfig records the run's config (a config key -> value map, as conf.Values gives) in
// output_dir/run_config.json, written once output_dir is checked and before the first step, so a
// finished run's directory is never touched.
func WithConfig(values map[string]any) Option { return func(o *options) { o.config = values } }

// LogWriter is the log writer opts name (the last WithLogWriter), os.Stderr when none does, and
// io.Discard when one names nil. Trainers print their notes there before Run starts.
func LogWriter(opts ...Option) io.Writer {
	o := options{log: os.Stderr}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		return io.Discard
	}
	return o.log
}

// BarMetricsTask is implemented by a task whose metrics (such as "rewards/accuracies") belong on the
// progress bar, after loss and tokens/s, each shown when the last logged line has it, and its
// "eval_" twin when that is there too. Plain log lines already carry every metric. It is the one way
// to put a metric on the bar, so every caller of Run shows the same bar.
type BarMetricsTask interface {
	BarMetrics() []string
}

// Result describes a run that finished, stopped or was interrupted.
type Result struct {
	OutputDir  string
	Steps      int // optimizer steps completed (global step)
	TotalSteps int
	Epoch      float64
	// TrainLoss is the mean of all step losses (HF's train_loss).
	TrainLoss float64
	// LastMetrics is the last metrics.jsonl line (train keys and, on eval steps, eval_* keys).
	LastMetrics map[string]float64
	// Checkpoint is the newest checkpoint written or resumed from ("" if none).
	Checkpoint  string
	Interrupted bool
	Runtime     time.Duration
}

// ErrInterrupted is matched (errors.Is) by the error Run returns when ctx was cancelled.
var ErrInterrupted = errors.New("training interrupted")

// ErrNonFinite is matched (errors.Is) by the error Run returns when a loss or gradient norm is NaN/Inf.
var ErrNonFinite = errors.New("non-finite training value")

// InterruptedError is returned when ctx is cancelled: the last complete step is checkpointed.
type InterruptedError struct {
	Step       int
	Checkpoint string // "" when no step had completed
	Cause      error
}

func (e *InterruptedError) Error() string {
	if e.Checkpoint == "" {
		return fmt.Sprintf("interrupted at step %d; no step completed, nothing saved", e.Step)
	}
	return fmt.Sprintf("interrupted at step %d; checkpoint saved to %s", e.Step, e.Checkpoint)
}

func (e *InterruptedError) Unwrap() []error { return []error{ErrInterrupted, e.Cause} }

// NonFiniteError is returned when a step's loss, gradient norm, one of its task metrics (a DPO reward,
// say) or the evaluation loss is NaN or Inf. Nothing is written after it: the last good checkpoint
// stays as it was and no final model appears. A checkpoint is only ever written after a step whose
// loss and metrics were all finite, so the one named is good, and its step's loss is given.
type NonFiniteError struct {
	Step           int
	What           string // "loss", "grad_norm", "eval_loss" or a task metric's key
	Value          float64
	LastCheckpoint string  // "" when none
	CheckpointLoss float64 // the training loss of the step LastCheckpoint saved; NaN when unknown (resumed)
}

func (e *NonFiniteError) Error() string {
	last := e.LastCheckpoint
	switch {
	case last == "":
		last = "none"
	case finite(e.CheckpointLoss):
		last = fmt.Sprintf("%s (loss %.6g)", last, e.CheckpointLoss)
	}
	return fmt.Sprintf("step %d: %s is %v; last good checkpoint: %s", e.Step, e.What, e.Value, last)
}

func (e *NonFiniteError) Is(target error) bool { return target == ErrNonFinite }

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// loopKeys are the metrics the loop itself writes; task values may not reuse them.
var loopKeys = map[string]bool{
	"step": true, "epoch": true, "loss": true, "learning_rate": true, "grad_norm": true,
	"tokens_per_second": true, "num_tokens": true,
}

// runner is the state of one Run.
type runner struct {
	args  Args
	task  Task
	o     options
	comm  dist.Comm
	seed  int64
	clip  float64
	out   string
	rep   *reporter
	start time.Time

	params []Param
	grads  [][]float32
	// wide are the float64 sums of the micro-batches' gradients of a step that has several (see
	// accumulateWide), allocated on the first such step; its tensors are cut from flat.
	wide  [][]float64
	flat  []float64
	opt   *AdamW
	sched func(int) float64

	n, nEval      int
	microPerEpoch int
	total         int

	// Position and accumulators (all saved in training_state.json).
	step, epoch, pos int
	numTokens        int64
	lossSum          float64
	win              windowState

	perm      []int
	permEpoch int

	lines      [][]byte         // metrics.jsonl lines so far
	history    []map[string]any // trainer_state.json log_history so far
	last       map[string]float64
	lastCkpt   string  // newest checkpoint written or resumed from
	ckptLoss   float64 // the training loss of lastCkpt's step (NaN when resumed: not recorded there)
	stepLoss   float64 // the training loss of the newest completed step
	ckptStep   int     // its step
	winStarted time.Time

	stepsPerEpoch int
}

// Run trains task according to args (see the package documentation for the semantics and files).
func Run(ctx context.Context, args Args, task Task, opts ...Option) (Result, error) {
	args = args.Defaults()
	if err := args.Validate(); err != nil {
		return Result{}, err
	}
	o := options{log: os.Stderr, now: time.Now}
	if bt, ok := task.(BarMetricsTask); ok {
		o.barMetrics = bt.BarMetrics()
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = io.Discard
	}
	if o.comm == nil {
		c, err := dist.World()
		if err != nil {
			return Result{}, err
		}
		o.comm = c
	}
	if o.comm.Rank() != 0 {
		o = quietOptions(o)
	}
	r, err := newRunner(args, task, o)
	if err != nil {
		return Result{}, err
	}
	if err := r.prepareOutput(); err != nil {
		return r.result(), err
	}
	if o.config != nil && r.comm.Rank() == 0 {
		b, err := json.MarshalIndent(o.config, "", "  ")
		if err != nil {
			return r.result(), fmt.Errorf("%s: %w", configFile, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(r.out, configFile), append(b, '\n')); err != nil {
			return r.result(), err
		}
	}
	return r.loop(ctx)
}

func newRunner(args Args, task Task, o options) (*runner, error) {
	r := &runner{args: args, task: task, o: o, comm: o.comm, seed: *args.Seed, clip: *args.MaxGradNorm,
		out: args.OutputDir, permEpoch: -1}
	r.params = task.Params()
	if len(r.params) == 0 {
		return nil, errors.New("task has no trainable params")
	}
	seen := map[string]bool{}
	for _, p := range r.params {
		if p.Name == "" || seen[p.Name] {
			return nil, fmt.Errorf("task params: empty or duplicate name %q", p.Name)
		}
		seen[p.Name] = true
		r.grads = append(r.grads, make([]float32, len(p.Value)))
	}
	r.n, r.nEval = task.NumExamples(), task.NumEvalExamples()
	if r.n <= 0 {
		return nil, fmt.Errorf("task has no training examples (NumExamples %d)", r.n)
	}
	r.microPerEpoch = ceilDiv(r.n, args.PerDeviceTrainBatchSize)
	r.stepsPerEpoch = ceilDiv(r.microPerEpoch, args.GradientAccumulationSteps*r.comm.Size())
	r.total = TotalStepsOnRanks(args, r.n, r.comm.Size())
	r.opt = NewAdamW(r.params, AdamWConfig{Beta1: args.AdamBeta1, Beta2: args.AdamBeta2, Eps: args.AdamEpsilon,
		WeightDecay: args.WeightDecay})
	r.sched = Schedule(args, r.total)
	r.win.reset()
	return r, nil
}

// TotalSteps is the number of optimizer steps Run takes for numExamples training examples: max_steps
// when set, otherwise ceil(num_train_epochs * ceil(ceil(numExamples / batch size) / accumulation)).
func TotalSteps(args Args, numExamples int) int { return TotalStepsOnRanks(args, numExamples, 1) }

// TotalStepsOnRanks is TotalSteps for a run data-parallel over ranks processes, whose steps take
// accumulation × ranks micro-batches each.
func TotalStepsOnRanks(args Args, numExamples, ranks int) int {
	a := args.Defaults()
	if a.MaxSteps > 0 {
		return a.MaxSteps
	}
	if numExamples <= 0 || a.PerDeviceTrainBatchSize <= 0 || a.GradientAccumulationSteps <= 0 || ranks <= 0 {
		return 0
	}
	stepsPerEpoch := ceilDiv(ceilDiv(numExamples, a.PerDeviceTrainBatchSize), a.GradientAccumulationSteps*ranks)
	return int(math.Ceil(a.NumTrainEpochs * float64(stepsPerEpoch)))
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// prepareOutput creates output_dir, removes leftovers of crashed saves, and either restores a checkpoint
// or makes sure a fresh run does not mix with an earlier one. Under several ranks, rank 0 alone looks
// at and writes output_dir; it tells the others which checkpoint to restore (or why the run cannot
// start), and every rank restores that one checkpoint.
func (r *runner) prepareOutput() error {
	var path string
	var err error
	if r.leader() {
		path, err = r.prepareLeader()
	}
	if r.comm.Size() > 1 {
		msg := "ok:" + path
		if err != nil {
			msg = "error:" + err.Error()
		}
		b, berr := r.comm.Bcast([]byte(msg), 0)
		if berr != nil {
			return fmt.Errorf("output_dir: receiving the resume point from rank 0: %w", berr)
		}
		if !r.leader() {
			if m, ok := strings.CutPrefix(string(b), "error:"); ok {
				return fmt.Errorf("rank 0 could not start: %s", m)
			}
			path = strings.TrimPrefix(string(b), "ok:")
		}
	}
	if err != nil || path == "" {
		return err
	}
	err = r.restore(path)
	if r.comm.Size() > 1 {
		failed := []float64{0}
		if err != nil {
			failed[0] = 1
		}
		if rerr := r.comm.AllreduceFloat64(failed); rerr != nil {
			return fmt.Errorf("resume_from_checkpoint: agreeing on the restore: %w", rerr)
		}
		if err == nil && failed[0] > 0 {
			return fmt.Errorf("resume_from_checkpoint: %s: %d other rank(s) could not restore it", path, int(failed[0]))
		}
	}
	if err != nil {
		return err
	}
	if r.leader() {
		// The final model of an earlier, finished run no longer describes these weights.
		return removeFinished(r.out)
	}
	return nil
}

// prepareLeader is prepareOutput's part that reads and writes output_dir: it returns the checkpoint
// to restore ("" for a fresh run).
func (r *runner) prepareLeader() (string, error) {
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return "", fmt.Errorf("output_dir: %w", err)
	}
	if err := cleanStale(r.out); err != nil {
		return "", err
	}
	resume := strings.TrimSpace(r.args.ResumeFromCheckpoint)
	if resume == "" {
		if _, err := os.Stat(filepath.Join(r.out, completeFile)); err == nil {
			return "", fmt.Errorf("output_dir: %s already holds a finished run (%s); choose another output_dir", r.out, completeFile)
		}
		cs, err := listCheckpoints(r.out, false)
		if err != nil {
			return "", err
		}
		if len(cs) > 0 {
			return "", fmt.Errorf("output_dir: %s already holds %s from an earlier run; set resume_from_checkpoint: latest to continue it, or choose another output_dir",
				r.out, filepath.Base(cs[len(cs)-1].path))
		}
		return "", atomicfile.WriteFile(filepath.Join(r.out, metricsFile), nil)
	}
	path := resume
	if l := strings.ToLower(resume); l == "true" || l == "latest" {
		p, err := LatestCheckpoint(r.out)
		if err != nil {
			return "", err
		}
		if p == "" {
			return "", fmt.Errorf("resume_from_checkpoint: no complete checkpoint-N in %s", r.out)
		}
		path = p
	}
	return path, nil
}

// permutation returns the epoch's shuffled example order: a Fisher-Yates shuffle driven by PCG seeded
// with (seed, epoch), so any epoch's order can be recomputed without replaying earlier ones.
func permutation(seed int64, epoch, n int) []int {
	src := rand.NewPCG(uint64(seed), uint64(epoch))
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(boundedDraw(src, uint64(i+1)))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// boundedDraw returns a uniform value in [0, n) (Lemire's multiply-and-reject method).
func boundedDraw(src *rand.PCG, n uint64) uint64 {
	threshold := -n % n
	for {
		hi, lo := bits.Mul64(src.Uint64(), n)
		if lo >= threshold {
			return hi
		}
	}
}

func (r *runner) epochFloat() float64 {
	return float64(r.epoch) + float64(r.pos)/float64(r.microPerEpoch)
}

func (r *runner) result() Result {
	res := Result{OutputDir: r.out, Steps: r.step, TotalSteps: r.total, Epoch: r.epochFloat(),
		LastMetrics: r.last, Checkpoint: r.lastCkpt}
	if r.step > 0 {
		res.TrainLoss = r.lossSum / float64(r.step)
	}
	if !r.start.IsZero() {
		res.Runtime = r.o.now().Sub(r.start)
	}
	return res
}

func (r *runner) loop(ctx context.Context) (Result, error) {
	r.start = r.o.now()
	r.winStarted = r.start
	r.rep = newReporter(r.o, r.total, r.step)
	defer r.rep.close()
	for r.step < r.total {
		// Under several ranks, Ctrl-C is agreed on at the step boundary (stepUnits reduces the flag),
		// because a rank cannot leave a step its peers are reducing.
		stop := ctx.Err() != nil
		if stop && r.comm.Size() == 1 {
			return r.interrupt(ctx)
		}
		if r.pos >= r.microPerEpoch {
			r.epoch++
			r.pos = 0
		}
		if r.permEpoch != r.epoch {
			r.perm = permutation(r.seed, r.epoch, r.n)
			r.permEpoch = r.epoch
		}
		stepNum := r.step + 1
		k, micro := r.stepMicroBatches(stepNum)
		unitsTotal, stopAll, err := r.stepUnits(micro, stop)
		if err != nil {
			return r.result(), fmt.Errorf("step %d: %w", stepNum, err)
		}
		if stopAll {
			return r.interrupt(ctx)
		}
		// A step of one micro-batch in one process keeps its float32 gradient as the backward pass
		// leaves it; any other sums its micro-batches in float64 (accumulateWide).
		wide := k > 1 || r.comm.Size() > 1
		zeroGrads(r.grads, 0)
		if wide {
			r.zeroWide()
		}
		stepCtx := ctx
		if r.comm.Size() > 1 {
			stepCtx = context.Background()
		}
		var results []microResult
		for i, mb := range micro {
			if i > 0 && stepCtx.Err() != nil {
				return r.interrupt(ctx) // the unfinished step is discarded: nothing was applied yet
			}
			if wide && i > 0 {
				zeroGrads(r.grads, 0)
			}
			m, err := r.task.Step(stepCtx, mb.b, r.grads, float32(mb.units/unitsTotal))
			if err != nil {
				if stepCtx.Err() != nil {
					return r.interrupt(ctx)
				}
				return r.result(), fmt.Errorf("step %d: micro-batch %d: %w", stepNum, mb.b.Micro, err)
			}
			if wide {
				r.accumulateWide()
			}
			results = append(results, microResult{Index: mb.b.Micro, Units: mb.units, Examples: len(mb.b.Examples),
				Loss: m.Loss, Tokens: m.Tokens, Values: m.Values, Weights: m.Weights})
		}
		if wide {
			if err := r.reduceWide(); err != nil {
				return r.result(), fmt.Errorf("step %d: %w", stepNum, err)
			}
		}
		if results, err = r.gather(results); err != nil {
			return r.result(), fmt.Errorf("step %d: %w", stepNum, err)
		}
		// Merged in micro-batch order, so the sums are the same whichever rank ran which micro-batch.
		var loss float64
		var tokens int64
		sums, weights := map[string]float64{}, map[string]float64{}
		for _, mr := range results {
			if !finite(mr.Loss) {
				return r.result(), r.nonFinite(stepNum, "loss", mr.Loss)
			}
			for _, key := range slices.Sorted(maps.Keys(mr.Values)) {
				if v := mr.Values[key]; !finite(v) {
					return r.result(), r.nonFinite(stepNum, key, v)
				}
			}
			loss += mr.Loss * mr.Units
			tokens += int64(mr.Tokens)
			m := Metrics{Values: mr.Values, Weights: mr.Weights}
			if err := accumulate(sums, weights, m, mr.Examples, false); err != nil {
				return r.result(), fmt.Errorf("step %d: %w", stepNum, err)
			}
		}
		loss /= unitsTotal
		norm := ClipGradNorm(r.grads, r.clip, 0)
		if !finite(norm) {
			return r.result(), r.nonFinite(stepNum, "grad_norm", norm)
		}
		lr := r.sched(r.step)
		if err := r.opt.Step(r.params, r.grads, lr); err != nil {
			return r.result(), fmt.Errorf("step %d: %w", stepNum, err)
		}
		r.step, r.pos, r.stepLoss = stepNum, r.pos+k, loss
		r.numTokens += tokens
		r.lossSum += loss
		r.win.Steps++
		r.win.LossSum += jfloat(loss)
		r.win.Tokens += tokens
		for key, s := range sums {
			r.win.Sums[key] += jfloat(s)
			r.win.Weights[key] += jfloat(weights[key])
		}
		if err := r.afterStep(lr, norm); err != nil {
			return r.result(), err
		}
	}
	if err := r.finish(); err != nil {
		return r.result(), err
	}
	return r.result(), nil
}

// nonFinite reports a NaN or Inf at step, naming the last good checkpoint and its loss.
func (r *runner) nonFinite(step int, what string, v float64) *NonFiniteError {
	return &NonFiniteError{Step: step, What: what, Value: v, LastCheckpoint: r.lastCkpt, CheckpointLoss: r.ckptLoss}
}

func zeroGrads(grads [][]float32, workers int) {
	parallel(workers, len(grads), func(i int) { clear(grads[i]) })
}

// accumulate adds a micro-batch's values, weighted, into sums and weights.
func accumulate(sums, weights map[string]float64, m Metrics, examples int, eval bool) error {
	for key, v := range m.Values {
		if !eval && (loopKeys[key] || strings.HasPrefix(key, "eval_")) ||
			eval && (key == "loss" || key == "runtime" || strings.HasSuffix(key, "per_second")) {
			return fmt.Errorf("task metric %q collides with a loop metric", key)
		}
		w, ok := m.Weights[key]
		if !ok {
			w = float64(examples)
		}
		sums[key] += v * w
		weights[key] += w
	}
	return nil
}

// afterStep logs, evaluates and checkpoints as the step number asks.
func (r *runner) afterStep(lr, norm float64) error {
	a := r.args
	last := r.step == r.total
	doLog := r.step%a.LoggingSteps == 0 || last
	doEval := r.nEval > 0 && ((a.EvalSteps > 0 && r.step%a.EvalSteps == 0) || last)
	doSave := r.step%a.SaveSteps == 0
	line := map[string]any{}
	if doLog || doEval {
		line["step"] = r.step
		line["epoch"] = r.epochFloat()
	}
	if doLog {
		now := r.o.now()
		elapsed := now.Sub(r.winStarted).Seconds()
		tps := 0.0
		if elapsed > 0 {
			tps = float64(r.win.Tokens) / elapsed
		}
		entry := map[string]any{
			"step": r.step, "epoch": r.epochFloat(),
			"loss":          jsonNumber(float64(r.win.LossSum) / float64(r.win.Steps)),
			"learning_rate": lr, "grad_norm": norm, "tokens_per_second": tps, "num_tokens": r.numTokens,
		}
		for key, s := range r.win.Sums {
			entry[key] = jsonNumber(float64(s) / float64(r.win.Weights[key]))
		}
		for k, v := range entry {
			line[k] = v
		}
		r.history = append(r.history, entry)
		r.win.reset()
		r.winStarted = now
	}
	if doEval {
		entry, err := r.evaluate()
		if err != nil {
			return err
		}
		for k, v := range entry {
			if !strings.HasPrefix(k, "eval_runtime") && !strings.HasSuffix(k, "_per_second") {
				line[k] = v
			}
		}
		r.history = append(r.history, entry)
	}
	if len(line) > 0 {
		if err := r.writeLine(line); err != nil {
			return err
		}
	}
	r.rep.step(r.step, r.last, doLog || doEval)
	if doSave {
		path, err := r.saveCheckpoint()
		if err != nil {
			return fmt.Errorf("step %d: %w", r.step, err)
		}
		r.rep.note("saved %s", path)
	}
	return nil
}

// evaluate runs the task's evaluation set in order and returns HF's eval log entry.
func (r *runner) evaluate() (map[string]any, error) {
	// An evaluation that has started completes even on Ctrl-C: the step's metrics line then stays the
	// same as in an uninterrupted run.
	ctx := context.Background()
	start := r.o.now()
	bs := r.args.PerDeviceEvalBatchSize
	// The evaluation batches are dealt over the ranks like a step's micro-batches and their results
	// merged in batch order, so the numbers do not depend on the number of ranks.
	batches := ceilDiv(r.nEval, bs)
	var mine []microResult
	for _, i := range dist.Share(batches, r.comm.Rank(), r.comm.Size()) {
		ex := make([]int, 0, bs)
		for e := i * bs; e < min((i+1)*bs, r.nEval); e++ {
			ex = append(ex, e)
		}
		m, err := r.task.Eval(ctx, Batch{Examples: ex, Step: r.step, Accum: 1, Epoch: r.epoch, Seed: r.seed})
		if err != nil {
			return nil, fmt.Errorf("step %d: evaluation batch %d: %w", r.step, i, err)
		}
		mine = append(mine, microResult{Index: i, Examples: len(ex), Loss: m.Loss, Values: m.Values, Weights: m.Weights})
	}
	all, err := r.gather(mine)
	if err != nil {
		return nil, fmt.Errorf("step %d: evaluation: %w", r.step, err)
	}
	var lossSum, count float64
	sums, weights := map[string]float64{}, map[string]float64{}
	for _, mr := range all {
		// HF repeats each batch's mean loss batch-size times before averaging.
		lossSum += mr.Loss * float64(mr.Examples)
		count += float64(mr.Examples)
		if err := accumulate(sums, weights, Metrics{Values: mr.Values, Weights: mr.Weights}, mr.Examples, true); err != nil {
			return nil, err
		}
	}
	evalLoss := lossSum / count
	if !finite(evalLoss) {
		return nil, r.nonFinite(r.step, "eval_loss", evalLoss)
	}
	secs := r.o.now().Sub(start).Seconds()
	entry := map[string]any{"step": r.step, "epoch": r.epochFloat(), "eval_loss": evalLoss,
		"eval_runtime": secs}
	if secs > 0 {
		entry["eval_samples_per_second"] = count / secs
		entry["eval_steps_per_second"] = float64(batches) / secs
	}
	for key, s := range sums {
		entry["eval_"+key] = jsonNumber(s / weights[key])
	}
	return entry, nil
}

// interrupt checkpoints the last complete step (unless that checkpoint exists) and reports it.
func (r *runner) interrupt(ctx context.Context) (Result, error) {
	res := r.result()
	res.Interrupted = true
	ie := &InterruptedError{Step: r.step, Cause: context.Cause(ctx)}
	switch {
	case r.step == 0:
	case r.lastCkpt != "" && r.ckptStep == r.step:
		ie.Checkpoint = r.lastCkpt
	default:
		path, err := r.saveCheckpoint()
		if err != nil {
			return res, fmt.Errorf("interrupted at step %d; saving checkpoint failed: %w", r.step, err)
		}
		ie.Checkpoint = path
	}
	res.Checkpoint = r.lastCkpt
	r.rep.note("%s", ie.Error())
	return res, ie
}
