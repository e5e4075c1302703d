package ops

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
)

func TestLinear(t *testing.T) {
	for _, tc := range []struct{ n, in, out int }{{1, 1, 1}, {3, 5, 7}, {17, 8, 65}, {70, 66, 3}} {
		rng := rand.New(rand.NewPCG(1, uint64(tc.n)))
		ins := []input{floatIn(rng, tc.n, tc.in), floatIn(rng, tc.out, tc.in)}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Linear(in[0], in[1]) }
		h := newHarness(t, rng, ins, build)
		h.check(rng, 30)

		// Naive reference: y[i][o] = Σ_k x[i][k]·W[o][k].
		want := make([]float64, tc.n*tc.out)
		x, w := ins[0].vals, ins[1].vals
		for i := 0; i < tc.n; i++ {
			for o := 0; o < tc.out; o++ {
				for k := 0; k < tc.in; k++ {
					want[i*tc.out+o] += x[i*tc.in+k] * w[o*tc.in+k]
				}
			}
		}
		got, _, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "float64 linear", got, want, 1e-12)
		near(t, "float32 linear", runF32(t, ins, build), want, 1e-5)
	}
}

func TestAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	ins := []input{floatIn(rng, 9, 5), floatIn(rng, 9, 5)}
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Add(in[0], in[1]) }
	h := newHarness(t, rng, ins, build)
	h.check(rng, 45)
	want := make([]float64, 45)
	for i := range want {
		want[i] = ins[0].vals[i] + ins[1].vals[i]
	}
	near(t, "float32 add", runF32(t, ins, build), want, 1e-6)
}
