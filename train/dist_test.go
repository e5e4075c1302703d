package train

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/dist"
)

// unitsTask gives softmaxTask loss units: its loss is a mean over examples, so a micro-batch's
// units are its examples (the last micro-batch of an epoch of 7 in batches of 2 holds 1).
type unitsTask struct{ *softmaxTask }

func (u unitsTask) LossUnits(b Batch) (float64, error) { return float64(len(b.Examples)), nil }

// runRanks runs one Run per rank of an in-process group of n, each rank with its own task from
// newTask and args from argsFor, and fails the test on any rank's error.
func runRanks(t *testing.T, n int, argsFor func(rank int) Args, newTask func() (Task, *softmaxTask)) []*softmaxTask {
	t.Helper()
	comms := dist.Local(n)
	tasks := make([]*softmaxTask, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r, c := range comms {
		task, st := newTask()
		tasks[r] = st
		wg.Go(func() { _, errs[r] = run(t, context.Background(), argsFor(r), task, WithComm(c)) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return tasks
}

// TestDataParallelEqualsOneRank: 2 ranks with accumulation 1 against 1 rank with accumulation 2, the
// same global batch. The softmax task's gradients make both sums the same float operations, so every
// metrics line (evaluation included, its batches split over the ranks) and the final weights must be
// bit-identical; rank 1 writes nothing; the ranks' micro-batches are disjoint and together are the
// 1-rank step's. With loss units the epoch's last, smaller micro-batch weighs by its examples.
func TestDataParallelEqualsOneRank(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		units bool
	}{{"mean of micro-batches", 16, false}, {"loss units, uneven last micro-batch", 7, true}} {
		t.Run(tc.name, func(t *testing.T) {
			newTask := func() (Task, *softmaxTask) {
				s := newSoftmaxTask(tc.n, 6, 1)
				if tc.units {
					return unitsTask{s}, s
				}
				return s, s
			}
			one := baseArgs(t.TempDir())
			oneTask, oneSoft := newTask()
			mustRun(t, one, oneTask)

			two := baseArgs(t.TempDir())
			two.GradientAccumulationSteps = 1
			follower := filepath.Join(t.TempDir(), "rank1")
			ranks := runRanks(t, 2, func(r int) Args {
				a := two
				if r == 1 {
					a.OutputDir = follower // the leader's decides; rank 1 must not create its own
				}
				return a
			}, newTask)

			want, got := metricLines(t, one.OutputDir), metricLines(t, two.OutputDir)
			if !slices.Equal(got, want) {
				t.Errorf("metrics differ:\n got %v\nwant %v", got, want)
			}
			for r, s := range ranks {
				if !sameBits(s.W, oneSoft.W) || !sameBits(s.B, oneSoft.B) {
					t.Errorf("rank %d: final weights differ from the 1-rank run's", r)
				}
			}
			if _, err := os.Stat(follower); !os.IsNotExist(err) {
				t.Errorf("rank 1 created its output_dir (%v)", err)
			}
			// Step by step, the ranks' examples are disjoint and make up the 1-rank step's.
			for i, b := range oneSoft.stepBatches[:8] {
				stepNum, micro := b.Step, b.Micro
				rb := ranks[micro%2].stepBatches[i/2]
				if rb.Step != stepNum || rb.Micro != micro || !slices.Equal(rb.Examples, b.Examples) {
					t.Fatalf("1-rank micro-batch %+v, rank %d ran %+v", b, micro%2, rb)
				}
			}
		})
	}
}

// TestDataParallelResume: a 2-rank run resumed from its checkpoint-10 (by both ranks, into tasks
// initialised differently) is bit-identical to the uninterrupted 2-rank run.
func TestDataParallelResume(t *testing.T) {
	a := baseArgs(t.TempDir())
	a.GradientAccumulationSteps = 1
	newTask := func(init uint64) func() (Task, *softmaxTask) {
		return func() (Task, *softmaxTask) { s := newSoftmaxTask(16, 6, init); return unitsTask{s}, s }
	}
	full := runRanks(t, 2, func(int) Args { return a }, newTask(1))
	b := a
	b.OutputDir = t.TempDir()
	b.ResumeFromCheckpoint = filepath.Join(a.OutputDir, "checkpoint-10")
	resumed := runRanks(t, 2, func(int) Args { return b }, newTask(99))
	if want, got := metricLines(t, a.OutputDir), metricLines(t, b.OutputDir); !slices.Equal(got, want) {
		t.Errorf("metrics differ:\n got %v\nwant %v", got, want)
	}
	for r := range 2 {
		if resumed[r].stepBatches[0].Step != 11 {
			t.Errorf("rank %d resumed at step %d, want 11", r, resumed[r].stepBatches[0].Step)
		}
		if !sameBits(full[r].W, resumed[r].W) || !sameBits(full[r].B, resumed[r].B) {
			t.Errorf("rank %d: final weights differ", r)
		}
	}
}

// TestDataParallelStartFailure: when rank 0 cannot start (output_dir holds an earlier run's
// checkpoint), rank 1 stops too, naming rank 0, instead of waiting in the first step.
func TestDataParallelStartFailure(t *testing.T) {
	a := baseArgs(t.TempDir())
	a.GradientAccumulationSteps = 1
	if err := os.MkdirAll(filepath.Join(a.OutputDir, "checkpoint-3"), 0o755); err != nil {
		t.Fatal(err)
	}
	comms := dist.Local(2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { _, errs[r] = run(t, context.Background(), a, newSoftmaxTask(16, 6, 1), WithComm(c)) })
	}
	wg.Wait()
	want0 := "output_dir: " + a.OutputDir + " already holds checkpoint-3 from an earlier run; set resume_from_checkpoint: latest to continue it, or choose another output_dir"
	if errs[0] == nil || errs[0].Error() != want0 {
		t.Errorf("rank 0: %v", errs[0])
	}
	if errs[1] == nil || errs[1].Error() != "rank 0 could not start: "+want0 {
		t.Errorf("rank 1: %v", errs[1])
	}
}

// TestLossUnitsGlobalMean: 3 examples in micro-batches of 2 and 1 accumulated into one step. With
// loss units (examples) the logged loss is the mean over the 3 examples, computed here from the
// initial weights one example at a time; without, it is the mean of the two micro-batch means,
// which differs.
func TestLossUnitsGlobalMean(t *testing.T) {
	a := baseArgs(t.TempDir())
	a.MaxSteps, a.PerDeviceTrainBatchSize, a.GradientAccumulationSteps = 1, 2, 2
	ref := newSoftmaxTask(3, 0, 1)
	perm := permutation(*a.Defaults().Seed, 0, 3)
	var l [3]float64
	for i, e := range perm {
		l[i], _, _, _ = ref.example(ref.xs[e], ref.ys[e], false)
	}
	exampleMean := (l[0] + l[1] + l[2]) / 3
	microMean := ((l[0]+l[1])/2 + l[2]) / 2
	if math.Abs(exampleMean-microMean) < 1e-3 {
		t.Fatalf("example mean %v and micro-batch mean %v too close to tell apart", exampleMean, microMean)
	}
	for _, tc := range []struct {
		name  string
		units bool
		want  float64
	}{{"loss units", true, exampleMean}, {"no loss units", false, microMean}} {
		t.Run(tc.name, func(t *testing.T) {
			args := a
			args.OutputDir = t.TempDir()
			s := newSoftmaxTask(3, 0, 1)
			var task Task = s
			if tc.units {
				task = unitsTask{s}
			}
			res := mustRun(t, args, task)
			if got := res.LastMetrics["loss"]; math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("loss %v, want %v (example mean %v, micro-batch mean %v)", got, tc.want, exampleMean, microMean)
			}
			if n := len(s.stepBatches); n != 2 || len(s.stepBatches[0].Examples) != 2 {
				t.Errorf("micro-batches %+v, want 2 then 1 example", s.stepBatches)
			}
		})
	}
}

// TestGradientSumOrderIndependent: a global batch of 4 micro-batches of 1 example, run by 1 rank
// accumulating 4, 2 ranks accumulating 2 and 4 ranks accumulating 1. In float32 the three sum the
// micro-batches' gradients in different orders (((g0+g1)+g2)+g3, (g0+g2)+(g1+g3), g0+g1+g2+g3 by
// MPI), which the check below shows differ on this data; summed in float64 and rounded once
// (accumulateWide), every metrics line and the final weights are bit-identical.
func TestGradientSumOrderIndependent(t *testing.T) {
	newTask := func() (Task, *softmaxTask) { s := newSoftmaxTask(16, 6, 1); return unitsTask{s}, s }
	// The first step's four gradients, summed in float32 in the two orders, differ somewhere.
	probe := newSoftmaxTask(16, 0, 1)
	perm := permutation(*baseArgs("").Defaults().Seed, 0, 16)
	var g [4][]float32
	for i := range g {
		_, _, g[i], _ = probe.example(probe.xs[perm[i]], probe.ys[perm[i]], true)
	}
	differ := false
	for j := range g[0] {
		if ((g[0][j]+g[1][j])+g[2][j])+g[3][j] != (g[0][j]+g[2][j])+(g[1][j]+g[3][j]) {
			differ = true
		}
	}
	if !differ {
		t.Fatal("the float32 sums agree in both orders: the data cannot tell the orders apart")
	}

	args := func(accum int) Args {
		a := baseArgs(t.TempDir())
		a.PerDeviceTrainBatchSize, a.GradientAccumulationSteps = 1, accum
		return a
	}
	one := args(4)
	oneTask, oneSoft := newTask()
	mustRun(t, one, oneTask)
	want := metricLines(t, one.OutputDir)
	for _, n := range []int{2, 4} {
		a := args(4 / n)
		ranks := runRanks(t, n, func(int) Args { return a }, newTask)
		if got := metricLines(t, a.OutputDir); !slices.Equal(got, want) {
			t.Errorf("%d ranks: metrics differ:\n got %v\nwant %v", n, got, want)
		}
		for r, s := range ranks {
			if !sameBits(s.W, oneSoft.W) || !sameBits(s.B, oneSoft.B) {
				t.Errorf("%d ranks: rank %d's final weights differ from the 1-rank run's", n, r)
			}
		}
	}
}
