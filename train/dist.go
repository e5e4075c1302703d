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

// reduceGrads sums the gradients over the ranks. It runs after the step's last backward pass: the
// graph's backward is one call that fills every gradient before it returns, so there is no point at
// which a bucket is known final earlier and the reduction cannot overlap the backward pass.
func (r *runner) reduceGrads() error {
	if err := dist.AllreduceBuckets(r.comm, r.grads, dist.DefaultBucketFloats); err != nil {
		return fmt.Errorf("summing gradients over the ranks: %w", err)
	}
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
