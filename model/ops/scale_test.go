package ops

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
)

// Scale against c·x and its gradient against float64 central differences (the harness), for the
// factors a PPO temperature gives (1/0.7) and a negative one.
func TestScale(t *testing.T) {
	for _, c := range []float64{1 / 0.7, -2.5} {
		rng := rand.New(rand.NewPCG(4, 4))
		ins := []input{floatIn(rng, 7, 6)}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Scale(in[0], c) }
		h := newHarness(t, rng, ins, build)
		h.check(rng, 42)
		want := make([]float64, 42)
		for i := range want {
			want[i] = c * ins[0].vals[i]
		}
		near(t, "float32 scale", runF32(t, ins, build), want, 1e-6)
	}
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float32, G.WithShape(2, 2), G.WithName("x"))
	if _, err := Scale(x, math.Inf(1)); err == nil || !strings.Contains(err.Error(), "ops.Scale: factor +Inf is not finite") {
		t.Fatalf("err = %v", err)
	}
}
