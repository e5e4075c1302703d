package ops

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestTokenLogProbs(t *testing.T) {
	for _, tc := range []struct {
		v       int
		targets []int32
		weights []float64
	}{
		{1, []int32{0}, []float64{1}},
		{7, []int32{3, -1, 6, 0, 2}, []float64{1, 1, 0.5, 0, 2}},
		{300, []int32{299, 5, 5, 17, 0, 123, -4, 250, 1}, []float64{1, 1, 1, 1, 0.25, 1, 0, 3, 1}},
		{300, manyTargets(130, 300), manyWeights(130)}, // splits over workers
	} {
		rng := rand.New(rand.NewPCG(9, uint64(tc.v)))
		n := len(tc.targets)
		ins := []input{floatIn(rng, n, tc.v), intIn(tc.targets), {shape: []int{n}, vals: tc.weights}}
		for i := range ins[0].vals {
			ins[0].vals[i] *= 3
		}
		if n > 4 {
			// Make row 4's argmax its target so that "correct" is exercised both ways.
			ins[0].vals[4*tc.v+int(tc.targets[4])] = 50
		}
		var lp *LogProbs
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			out, l, err := TokenLogProbs(in[0], in[1], in[2])
			if lp == nil {
				lp = l // the gradient graph's op (the harness builds it first)
			}
			return out, err
		}
		h := newHarness(t, rng, ins, build)
		h.check(rng, 80)
		got, grads, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		// Reference: w·(x_t − log Σ exp x) per row, argmax, Σ x.
		want := make([]float64, n)
		for i, tg := range tc.targets {
			if tc.weights[i] == 0 || tg < 0 {
				for j := 0; j < tc.v; j++ {
					if grads[0][i*tc.v+j] != 0 {
						t.Fatalf("ignored row %d has gradient %g at %d", i, grads[0][i*tc.v+j], j)
					}
				}
				if lp.Correct()[i] != 0 || lp.LogitSums()[i] != 0 {
					t.Fatalf("ignored row %d has side outputs", i)
				}
				continue
			}
			row := ins[0].vals[i*tc.v : (i+1)*tc.v]
			var z, sum float64
			arg := 0
			for j, x := range row {
				z += math.Exp(x)
				sum += x
				if x > row[arg] {
					arg = j
				}
			}
			want[i] = tc.weights[i] * (row[tg] - math.Log(z))
			wantCorrect := 0.0
			if arg == int(tg) {
				wantCorrect = 1
			}
			if lp.Correct()[i] != wantCorrect || math.Abs(lp.LogitSums()[i]-sum) > 1e-9 {
				t.Fatalf("row %d: correct %g (want %g), logit sum %g (want %g)", i, lp.Correct()[i], wantCorrect, lp.LogitSums()[i], sum)
			}
		}
		near(t, "float64 logprobs", got, want, 1e-12)
		near(t, "float32 logprobs", runF32(t, ins, build), want, 1e-5)
	}
}

func TestTokenLogProbsRejectsCountedTargetOutsideVocab(t *testing.T) {
	g := G.NewGraph()
	logits := G.NewMatrix(g, G.Float32, G.WithShape(2, 4), G.WithName("l"), G.WithInit(G.Zeroes()))
	tg := G.NewVector(g, G.Int32, G.WithShape(2), G.WithName("t"), G.WithValue(tensor.New(tensor.WithBacking([]int32{9, 4}))))
	w := G.NewVector(g, G.Float32, G.WithShape(2), G.WithName("w"), G.WithValue(tensor.New(tensor.WithBacking([]float32{0, 1}))))
	if _, _, err := TokenLogProbs(logits, tg, w); err != nil {
		t.Fatal(err)
	}
	err := G.NewTapeMachine(g).RunAll()
	// Row 0's target 9 is ignored (weight 0); row 1's target 4 is counted and outside 0..3.
	if want := "ops.TokenLogProbs: target 4 at row 1 is outside 0..3"; err == nil || Cause(err).Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestExternalLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	// loss = Σ a_i·x_i² + log(1 + exp(Σ y_j)), gradients 2·a_i·x_i and σ(Σ y).
	a := []float64{0.5, -1, 2, 3, 0.1}
	fn := func(in [][]float64) (float64, [][]float64, error) {
		x, y := in[0], in[1]
		var l, s float64
		gx := make([]float64, len(x))
		for i, v := range x {
			l += a[i] * v * v
			gx[i] = 2 * a[i] * v
		}
		for _, v := range y {
			s += v
		}
		l += math.Log1p(math.Exp(s))
		gy := make([]float64, len(y))
		for j := range gy {
			gy[j] = 1 / (1 + math.Exp(-s))
		}
		return l, [][]float64{gx, gy}, nil
	}
	ins := []input{floatIn(rng, 5), floatIn(rng, 2, 3)}
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return ExternalLoss(fn, in[0], in[1]) }
	h := newHarness(t, rng, ins, build)
	h.check(rng, 10)
	want, _, _ := fn([][]float64{ins[0].vals, ins[1].vals})
	near(t, "float32 loss", runF32(t, ins, build), []float64{want}, 1e-6)

	for _, tc := range []struct {
		fn   LossFunc
		want string
	}{
		{func([][]float64) (float64, [][]float64, error) { return math.NaN(), nil, nil }, "ops.ExternalLoss: loss is NaN"},
		{func([][]float64) (float64, [][]float64, error) { return math.Inf(1), nil, nil }, "ops.ExternalLoss: loss is +Inf"},
		{func([][]float64) (float64, [][]float64, error) { return 1, nil, nil }, "ops.ExternalLoss: the loss function returned 0 gradients for 1 inputs"},
		{func([][]float64) (float64, [][]float64, error) { return 1, [][]float64{{1}}, nil }, "ops.ExternalLoss: the loss function's gradient 0 has 1 values, its input has 5"},
		{func([][]float64) (float64, [][]float64, error) {
			return 0, nil, errors.New("dpo: beta must be positive")
		}, "dpo: beta must be positive"},
	} {
		g := G.NewGraph()
		x := G.NewVector(g, G.Float32, G.WithShape(5), G.WithName("x"), G.WithInit(G.Zeroes()))
		if _, err := ExternalLoss(tc.fn, x); err != nil {
			t.Fatal(err)
		}
		err := G.NewTapeMachine(g).RunAll()
		if err == nil || !strings.Contains(Cause(err).Error(), tc.want) || strings.Contains(Cause(err).Error(), "\n") {
			t.Fatalf("error %v, want %q", err, tc.want)
		}
	}
}

func manyTargets(n, v int) []int32 {
	t := make([]int32, n)
	for i := range t {
		t[i] = int32((i * 37) % v)
		if i%11 == 5 {
			t[i] = -1
		}
	}
	return t
}

func manyWeights(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = float64(i%4) * 0.5 // every fourth row has weight 0
	}
	return w
}
