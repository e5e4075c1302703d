package sft

import (
	"context"
	"io"
	"math"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/train"
)

// unitsConfig is three alpaca rows of different lengths (no shuffle beyond the loop's), two
// epochs of one step each, logged every step, learning rate 1e-3 so that step 2 sees moved weights.
func unitsConfig(t *testing.T, batch, accum int) Config {
	c := storiesConfig(t, "alpaca_en_demo.parquet")
	c.Data.MaxTrainSamples = 3
	c.PerDeviceTrainBatchSize, c.GradientAccumulationSteps = batch, accum
	c.MaxSteps, c.LoggingSteps = 2, 1
	return c
}

// gradTap is a Task that records the loop's accumulated gradient after step 1's last micro-batch
// (before clipping and the optimizer), delegating everything to the SFT task.
type gradTap struct {
	*Task
	step1 [][]float32
}

// Step records what each of step 1's micro-batches adds to the gradient (the loop may hand each
// micro-batch its own zeroed buffer and sum them elsewhere, in float64), so step1 is their sum.
func (g *gradTap) Step(ctx context.Context, b train.Batch, grads [][]float32, scale float32) (train.Metrics, error) {
	var before [][]float32
	if b.Step == 1 {
		for _, gr := range grads {
			before = append(before, slices.Clone(gr))
		}
	}
	m, err := g.Task.Step(ctx, b, grads, scale)
	if err == nil && b.Step == 1 {
		if g.step1 == nil {
			for _, gr := range grads {
				g.step1 = append(g.step1, make([]float32, len(gr)))
			}
		}
		for i, gr := range grads {
			for j, v := range gr {
				g.step1[i][j] += v - before[i][j]
			}
		}
	}
	return m, err
}

// relDiff is ‖a−b‖ / ‖b‖ over all tensors.
func relDiff(a, b [][]float32) float64 {
	var d, n float64
	for i := range a {
		for j := range a[i] {
			x := float64(a[i][j] - b[i][j])
			d += x * x
			n += float64(b[i][j]) * float64(b[i][j])
		}
	}
	return math.Sqrt(d / n)
}

// TestLossIsGlobalTokenMean checks the loss normalisation of a step with gradient accumulation:
// batch 1 × accumulation 3 and batch 3 × accumulation 1 over the same three rows (of different
// lengths) give the same loss at each step (within 1e-6 relative) and the same step-1 gradient,
// and step 1's loss is the mean NLL over all the trained tokens of the three rows, computed here
// row by row from the untrained model — not the mean of the three rows' means, which the test
// checks is different by more than 1e-3.
//
// The gradients are compared rather than the weights: a batch of 3 rows and 3 batches of 1 run
// different float32 matrix products, whose gradients agree to about 1e-5 relative, and AdamW's
// first steps turn a 1e-5 relative change of a near-zero gradient into a change of up to the
// learning rate in its weight. The distributed tests compare weights, where the micro-batches are
// the same.
func TestLossIsGlobalTokenMean(t *testing.T) {
	// The hand computation: each row alone, forward only, gives its mean NLL and its token count.
	single, _ := prepare(t, unitsConfig(t, 1, 3))
	if single.NumExamples() != 3 {
		t.Fatalf("%d rows, want 3", single.NumExamples())
	}
	var nllSum, tokSum, meanOfMeans float64
	counts := map[float64]bool{}
	rowGrads := make([][][]float32, 3)
	for i := range 3 {
		b := train.Batch{Examples: []int{i}}
		n, err := single.LossUnits(b)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := single.TrainData.Rows(b.Examples)
		if err != nil {
			t.Fatal(err)
		}
		if n != float64(batch.TrainedTokens()) {
			t.Fatalf("row %d: LossUnits %v, trained tokens %d", i, n, batch.TrainedTokens())
		}
		rowGrads[i] = newGrads(single)
		m, err := run(single.Model, batch, rowGrads[i], 1)
		if err != nil {
			t.Fatal(err)
		}
		nllSum += m.Loss * n
		tokSum += n
		meanOfMeans += m.Loss / 3
		counts[n] = true
	}
	if len(counts) != 3 {
		t.Fatalf("the rows' trained token counts %v are not all different", counts)
	}
	tokenMean := nllSum / tokSum
	if math.Abs(tokenMean-meanOfMeans) < 1e-3 {
		t.Fatalf("token mean %v and mean of row means %v are too close for the test to tell them apart", tokenMean, meanOfMeans)
	}
	// The mean of the rows' mean gradients: what averaging micro-batch means would accumulate.
	meanGrad := newGrads(single)
	for _, rg := range rowGrads {
		for i := range rg {
			for j, v := range rg[i] {
				meanGrad[i][j] += v / 3
			}
		}
	}

	type outcome struct {
		losses []float64
		grad   [][]float32
	}
	runs := map[string]outcome{}
	for name, shape := range map[string][2]int{"1x3": {1, 3}, "3x1": {3, 1}} {
		c := unitsConfig(t, shape[0], shape[1])
		task, _ := prepare(t, c)
		tap := &gradTap{Task: task}
		if _, err := train.Run(t.Context(), c.Args, tap, train.WithLogWriter(io.Discard)); err != nil {
			t.Fatal(err)
		}
		var o outcome
		for _, l := range testutil.ReadMetrics(t, c.OutputDir) {
			o.losses = append(o.losses, l["loss"])
		}
		o.grad = tap.step1
		runs[name] = o
	}
	a, b := runs["1x3"], runs["3x1"]
	if len(a.losses) != 2 || len(b.losses) != 2 {
		t.Fatalf("logged losses %v and %v, want 2 each", a.losses, b.losses)
	}
	if rel := math.Abs(a.losses[0]-tokenMean) / tokenMean; rel > 1e-6 {
		t.Errorf("step 1 loss with batch 1 × accumulation 3 is %v, the token mean is %v (mean of means %v)", a.losses[0], tokenMean, meanOfMeans)
	}
	for s := range a.losses {
		if rel := math.Abs(a.losses[s]-b.losses[s]) / b.losses[s]; rel > 1e-6 {
			t.Errorf("step %d: loss %v (1×3) vs %v (3×1)", s+1, a.losses[s], b.losses[s])
		}
	}
	same, old := relDiff(a.grad, b.grad), relDiff(meanGrad, b.grad)
	if same > 1e-4 {
		t.Errorf("step-1 gradients of 1×3 and 3×1 differ by %g relative", same)
	}
	if old < 1e-2 {
		t.Errorf("the mean of the rows' mean gradients differs from 3×1's by only %g: the test cannot tell the normalisations apart", old)
	}
	t.Logf("token mean %.6f, mean of row means %.6f; losses 1×3 %v, 3×1 %v; step-1 gradient difference %g (mean of means: %g)",
		tokenMean, meanOfMeans, a.losses, b.losses, same, old)
}
