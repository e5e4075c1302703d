package train

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"io"
	"slices"

	"github.com/alignkit/alignkit/dist"
)

// WithComm runs the loop data-parallel over the ranks of c (default: dist.World, which is one rank
// unless alignkit was built with MPI and started by mpirun). See the package documentation.
func WithComm(c dist.Comm) Option { return func(o *options) { o.comm = c } }

// microBatch is one micro-batch of a step that this rank runs, with its loss units.
type microBatch struct {
	b     Batch
	units float64
}

// microResult is what a micro-batch reports, as gathered from every rank (gob-encoded: NaN and
// Inf travel as they are, so a non-finite loss stops every rank the same way).
type microResult struct {
	Index    int // the micro-batch's position in the step (or the batch's in an evaluation)
	Units    float64
	Examples int
	Loss     float64
	Tokens   int
	Values   map[string]float64
	Weights  map[string]float64
}

// stepMicroBatches cuts the step's examples (the next gradient_accumulation_steps × ranks
// micro-batches of per_device_train_batch_size in the epoch's order, fewer at the end of an epoch)
// and deals them round-robin over the ranks: micro-batch j goes to rank j mod size. It returns the
// number k of micro-batches in the step over all ranks and this rank's share.
func (r *runner) stepMicroBatches(stepNum int) (int, []microBatch) {
	bs, ga := r.args.PerDeviceTrainBatchSize, r.args.GradientAccumulationSteps
	k := min(ga*r.comm.Size(), r.microPerEpoch-r.pos)
	var mine []microBatch
	for _, j := range dist.Share(k, r.comm.Rank(), r.comm.Size()) {
		lo := (r.pos + j) * bs
		ex := append([]int(nil), r.perm[lo:min(lo+bs, r.n)]...)
		mine = append(mine, microBatch{b: Batch{Examples: ex, Step: stepNum, Micro: j, Accum: k, Epoch: r.epoch, Seed: r.seed}})
	}
	return k, mine
}

// stepUnits fills the micro-batches' loss units (1 each for a task without LossUnitsTask) and
// returns their sum over all ranks, and whether any rank asked to stop (Ctrl-C), reduced together.
func (r *runner) stepUnits(micro []microBatch, stop bool) (float64, bool, error) {
	lu, ok := r.task.(LossUnitsTask)
	var sum float64
	for i := range micro {
		micro[i].units = 1
		if ok {
			u, err := lu.LossUnits(micro[i].b)
			if err != nil {
				return 0, false, fmt.Errorf("micro-batch %d: loss units: %w", micro[i].b.Micro, err)
			}
			if !(u > 0) || !finite(u) {
				return 0, false, fmt.Errorf("micro-batch %d: loss units %v: want a finite value > 0", micro[i].b.Micro, u)
			}
			micro[i].units = u
		}
		sum += micro[i].units
	}
	flag := 0.0
	if stop {
		flag = 1
	}
	buf := []float64{sum, flag}
	if err := r.comm.AllreduceFloat64(buf); err != nil {
		return 0, false, fmt.Errorf("summing loss units over the ranks: %w", err)
	}
	if buf[1] > 0 {
		return 0, true, nil
	}
	if !(buf[0] > 0) {
		return 0, false, fmt.Errorf("the step's micro-batches hold no loss units")
	}
	return buf[0], false, nil
}

// Gradient accumulation in float64. A step's gradient is the sum of its micro-batches' gradients,
// and float32 addition is not associative: one process adds micro-batches 0, 1, 2, 3 in turn, two
// ranks add 0+2 and 1+3 and then the two sums. The differences are float32 rounding (1e-7 relative),
// but AdamW divides each update by sqrt(v), which for a weight whose gradient is near zero turns a
// rounding difference into a difference of up to the learning rate: 2.7e-6 in the final weights of
// 6 SFT steps at learning_rate 1e-3. So each micro-batch's float32 gradient is computed alone and
// added into float64 sums, which are all-reduced in float64 and rounded to float32 once, for the
// clip and the optimizer. A float64 sum of a few float32 values in any order is exact to about
// 2^-50 relative, far below float32's 2^-24, so the rounded result is the same whatever the order
// (unless a sum falls within that sliver of a float32 rounding boundary): 1 and N ranks, and any
// split of a batch, then give bit-identical gradients. The cost is 8 bytes per trainable parameter
// (4 GB for a 0.5B-parameter full fine-tune, next to AdamW's 8 and the float32 gradient's 4; a few
// MB for LoRA), a clear and an add per micro-batch, and twice the bytes per all-reduce.

// zeroWide clears the float64 sums, allocating them on first use: one buffer (r.flat) that r.wide
// cuts into the params' tensors, so that the all-reduce sends it in place, bucket by bucket, with
// no packing copies.
func (r *runner) zeroWide() {
	if r.wide == nil {
		n := 0
		for _, g := range r.grads {
			n += len(g)
		}
		r.flat = make([]float64, n)
		r.wide = make([][]float64, len(r.grads))
		off := 0
		for i, g := range r.grads {
			r.wide[i] = r.flat[off : off+len(g) : off+len(g)]
			off += len(g)
		}
		return
	}
	parallel(0, len(r.wide), func(i int) { clear(r.wide[i]) })
}

// accumulateWide adds the micro-batch's gradient (r.grads, which held zeros before its backward
// pass) into the float64 sums.
func (r *runner) accumulateWide() {
	parallel(0, len(r.grads), func(i int) {
		w := r.wide[i]
		for j, v := range r.grads[i] {
			w[j] += float64(v)
		}
	})
}

// reduceWide sums the float64 gradients over the ranks and rounds them into r.grads.
//
// It runs after the step's last backward pass, and nothing of it overlaps a backward pass: the
// graph's backward is one VM call that fills every gradient before it returns, so no bucket is
// final earlier. Reducing the first micro-batches' sum during the last one's backward would hide
// that reduction but leave the last micro-batch's, of the same size, exposed: no gain. What is
// left to overlap is the last micro-batch's add and the rounding (24 bytes of memory traffic, a few
// ns per value) with the transfer of the neighbouring buckets, against a step of about 50 ns per
// trainable value for the reference shape's full fine-tuning (9930 tokens/s in bench/latest.md) and
// 3000 for llama3-1b LoRA (34 s per step): at most about 5% and 0.1% of a step, so the buckets are
// sent one after another, in place in r.flat.
func (r *runner) reduceWide() error {
	if err := dist.AllreduceBuckets(r.comm, [][]float64{r.flat}, dist.DefaultBucketFloats); err != nil {
		return fmt.Errorf("summing gradients over the ranks: %w", err)
	}
	parallel(0, len(r.grads), func(i int) {
		g := r.grads[i]
		for j, v := range r.wide[i] {
			g[j] = float32(v)
		}
	})
	return nil
}

// gather collects every rank's results and returns them all, sorted by Index, on every rank.
func (r *runner) gather(mine []microResult) ([]microResult, error) {
	if r.comm.Size() == 1 {
		return mine, nil
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(mine); err != nil {
		return nil, fmt.Errorf("encoding metrics: %w", err)
	}
	parts, err := r.comm.Allgather(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("gathering metrics from the ranks: %w", err)
	}
	var all []microResult
	for rank, p := range parts {
		var rs []microResult
		if err := gob.NewDecoder(bytes.NewReader(p)).Decode(&rs); err != nil {
			return nil, fmt.Errorf("metrics from rank %d: %w", rank, err)
		}
		all = append(all, rs...)
	}
	slices.SortFunc(all, func(a, b microResult) int { return a.Index - b.Index })
	return all, nil
}

// leader reports whether this rank writes files and logs (rank 0).
func (r *runner) leader() bool { return r.comm.Rank() == 0 }

// quietOptions silences a follower rank's progress and log lines: rank 0 speaks for the job.
func quietOptions(o options) options {
	o.log = io.Discard
	off := false
	o.bar = &off
	return o
}

// CommOf is the process group the loop runs over with opts: WithComm's, else dist.World. A task
// that must know the number of ranks before the loop starts (to refuse what one rank alone can do)
// reads it here.
func CommOf(opts ...Option) (dist.Comm, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.comm != nil {
		return o.comm, nil
	}
	return dist.World()
}
