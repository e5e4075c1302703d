package ops_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"

	"github.com/alignkit/alignkit/model/ops"
	"github.com/alignkit/alignkit/model/quant"
)

// TestFrozenHeadLoRAQuantized runs the LoRA-adapted frozen head over a quantized head weight (Q8_0,
// NF4: a QLoRA run's lm_head). In float64 the quantized product runs in float32 on a narrowed copy
// of h; it does not depend on u or B, so du and dB are checked against central differences on the
// quantized weight itself. In float32, every output and gradient (dh included) matches the same
// op over the dequantized weight as a dense one, which the dense tests check against differences.
func TestFrozenHeadLoRAQuantized(t *testing.T) {
	const n, d, v, r, chunk = 13, 64, 37, 3, 4 // 13 rows in chunks of 4: the last holds one
	targets := make([]int32, n)
	weights := make([]float64, n)
	for i := range targets {
		targets[i], weights[i] = int32(i*7%v), 0.5+float64(i%3)
	}
	targets[2], weights[5], weights[6] = -1, 0, 0 // ignored rows split the chunks
	for _, f := range []quant.Format{quant.Q8_0, quant.NF4} {
		t.Run(f.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(43, uint64(f)))
			w := make([]float32, v*d)
			for i := range w {
				w[i] = float32(rng.NormFloat64() * 0.5)
			}
			q, err := quant.New(f, v, d, w)
			if err != nil {
				t.Fatal(err)
			}
			ins := []ops.FDInput{ops.FloatInput(rng, false, n, d), ops.FloatInput(rng, true, n, r), ops.FloatInput(rng, true, v, r),
				ops.IntInput(targets), ops.ValuesInput(weights)}
			ops.CheckFD(t, rng, ins, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				out, _, err := ops.FrozenHeadLoRALogProbs(in[0], q, ops.HeadLoRA{U: in[1], B: in[2], Scale: ops.HeadLoRAScale}, in[3], in[4], chunk)
				return out, err
			}, 60)

			deq := make([]float32, v*d)
			q.Dequantize(deq, 0, v)
			dense, err := ops.NewDenseFrozen(deq, v, d)
			if err != nil {
				t.Fatal(err)
			}
			if maxDiff := maxAbsDiff(deq, w); maxDiff == 0 {
				t.Fatalf("%v stored the weights exactly: the test would not tell the formats apart", f)
			}
			rw := make([]float32, n)
			for i := range rw {
				rw[i] = float32(rng.NormFloat64())
			}
			got, want := ops.RunHeadLoRA32(t, ins, q, rw, chunk), ops.RunHeadLoRA32(t, ins, dense, rw, chunk)
			for _, c := range []struct {
				name      string
				got, want []float32
			}{{"logprobs", got.Out(), want.Out()}, {"dh", got.DH(), want.DH()}, {"du", got.DU(), want.DU()}, {"dB", got.DB(), want.DB()}} {
				scale := 0.0
				for _, x := range c.want {
					scale = math.Max(scale, math.Abs(float64(x)))
				}
				if diff := maxAbsDiff(c.got, c.want); !(diff <= 1e-5*scale) || scale == 0 {
					t.Fatalf("%s: quantized and dequantized differ by %.3g (scale %.3g)", c.name, diff, scale)
				}
			}
			for _, i := range []int{2, 5, 6} {
				if got.Out()[i] != 0 || fmt.Sprint(got.DU()[i*r:(i+1)*r]) != "[0 0 0]" {
					t.Fatalf("ignored row %d: out %g, du %v", i, got.Out()[i], got.DU()[i*r:(i+1)*r])
				}
			}
		})
	}
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}
