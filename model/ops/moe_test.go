package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
)

func silu(x float64) float64 { return x / (1 + math.Exp(-x)) }

// naiveRoute follows transformers' MixtralSparseMoeBlock: softmax over all logits, top-k, divide by
// the selected probabilities' sum.
func naiveRoute(z []float64, e, k int) []float64 {
	out := make([]float64, len(z))
	for i := 0; i < len(z)/e; i++ {
		row := z[i*e : (i+1)*e]
		p := make([]float64, e)
		var s float64
		for j, v := range row {
			p[j] = math.Exp(v)
			s += p[j]
		}
		for j := range p {
			p[j] /= s
		}
		idx := make([]int, k)
		topK(p, idx)
		var sel float64
		for _, j := range idx {
			sel += p[j]
		}
		for _, j := range idx {
			out[i*e+j] = p[j] / sel
		}
	}
	return out
}

func TestMoERouteAndExperts(t *testing.T) {
	for _, tc := range []struct{ n, d, f, e, k int }{
		{1, 3, 5, 2, 1},
		{9, 6, 7, 4, 2},
		{23, 8, 11, 5, 3},
	} {
		rng := rand.New(rand.NewPCG(11, uint64(tc.n)))
		ins := []input{floatIn(rng, tc.n, tc.d), floatIn(rng, tc.n, tc.e)}
		for e := 0; e < 3*tc.e; e++ {
			if e < 2*tc.e {
				ins = append(ins, floatIn(rng, tc.f, tc.d))
			} else {
				ins = append(ins, floatIn(rng, tc.d, tc.f))
			}
		}
		for i := range ins[1].vals {
			ins[1].vals[i] *= 2
		}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			c, err := Route(in[1], tc.k)
			if err != nil {
				return nil, err
			}
			E := tc.e
			return Experts(in[0], c, in[2:2+E], in[2+E:2+2*E], in[2+2*E:])
		}
		h := newHarness(t, rng, ins, build)
		h.check(rng, 25)

		// Reference: every token through its selected experts only.
		c := naiveRoute(ins[1].vals, tc.e, tc.k)
		want := make([]float64, tc.n*tc.d)
		for i := 0; i < tc.n; i++ {
			x := ins[0].vals[i*tc.d : (i+1)*tc.d]
			for e := 0; e < tc.e; e++ {
				if c[i*tc.e+e] == 0 {
					continue
				}
				w1, w3, w2 := ins[2+e].vals, ins[2+tc.e+e].vals, ins[2+2*tc.e+e].vals
				hid := make([]float64, tc.f)
				for a := 0; a < tc.f; a++ {
					var g, u float64
					for b := 0; b < tc.d; b++ {
						g += w1[a*tc.d+b] * x[b]
						u += w3[a*tc.d+b] * x[b]
					}
					hid[a] = silu(g) * u
				}
				for b := 0; b < tc.d; b++ {
					var o float64
					for a := 0; a < tc.f; a++ {
						o += w2[b*tc.f+a] * hid[a]
					}
					want[i*tc.d+b] += c[i*tc.e+e] * o
				}
			}
		}
		got, _, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "float64 experts", got, want, 1e-12)
		near(t, "float32 experts", runF32(t, ins, build), want, 1e-5)

		// Frozen experts: the same values, and gradients for x and the router logits only.
		fins := append([]input(nil), ins...)
		for i := 2; i < len(fins); i++ {
			fins[i].diff = false
		}
		fb := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			c, err := Route(in[1], tc.k)
			if err != nil {
				return nil, err
			}
			E := tc.e
			return FrozenExperts(in[0], c, in[2:2+E], in[2+E:2+2*E], in[2+2*E:])
		}
		fh := newHarness(t, rng, fins, fb)
		fh.check(rng, 25)
		fgot, fgrads, err := fh.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "float64 frozen experts", fgot, want, 1e-12)
		if len(fgrads) != 2 {
			t.Fatalf("frozen experts: %d gradients, want x and the router's", len(fgrads))
		}

		// Route alone against transformers' formulation.
		rb := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Route(in[1], tc.k) }
		near(t, "float32 route", runF32(t, ins, rb), c, 1e-6)
	}
}

// naiveSwitchLoss is a literal transcription of transformers' load_balancing_loss_func with an
// attention mask (modeling_mixtral.py): concatenate the layers' logits, one-hot the top-k
// (L·N, k, E), average both the one-hot and the softmax over unmasked rows, sum the product, × E.
func naiveSwitchLoss(layers [][]float64, mask []int32, e, k int) float64 {
	n := len(mask)
	tokensPerExpert := make([][]float64, k) // (k, E)
	for s := range tokensPerExpert {
		tokensPerExpert[s] = make([]float64, e)
	}
	routerProb := make([]float64, e)
	var maskSum float64
	for _, z := range layers {
		for i := 0; i < n; i++ {
			row := z[i*e : (i+1)*e]
			p := make([]float64, e)
			var s float64
			for j, v := range row {
				p[j] = math.Exp(v)
				s += p[j]
			}
			for j := range p {
				p[j] /= s
			}
			idx := make([]int, k)
			topK(p, idx)
			m := 0.0
			if mask[i] != 0 {
				m = 1
			}
			maskSum += m
			for s, j := range idx {
				tokensPerExpert[s][j] += m
			}
			for j := range p {
				routerProb[j] += p[j] * m
			}
		}
	}
	var loss float64
	for s := 0; s < k; s++ {
		for j := 0; j < e; j++ {
			loss += tokensPerExpert[s][j] / maskSum * routerProb[j] / maskSum
		}
	}
	return loss * float64(e)
}

func TestSwitchAuxLoss(t *testing.T) {
	const n, e, k = 11, 4, 2
	seg := []int32{1, 1, 1, 0, 2, 2, 2, 2, 0, 0, 3}
	tokens := 0
	for _, s := range seg {
		if s != 0 {
			tokens++
		}
	}
	rng := rand.New(rand.NewPCG(12, 12))
	ins := []input{floatIn(rng, n, e), floatIn(rng, n, e), intIn(seg)}
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		s0, err := RouterStats(in[0], in[2], k)
		if err != nil {
			return nil, err
		}
		s1, err := RouterStats(in[1], in[2], k)
		if err != nil {
			return nil, err
		}
		return ExternalLoss(func(v [][]float64) (float64, [][]float64, error) {
			l, g := SwitchAuxLoss(v, e, tokens)
			return l, g, nil
		}, s0, s1)
	}
	h := newHarness(t, rng, ins, build)
	h.check(rng, 44)
	got, _, err := h.run()
	if err != nil {
		t.Fatal(err)
	}
	want := naiveSwitchLoss([][]float64{ins[0].vals, ins[1].vals}, seg, e, k)
	near(t, "float64 aux loss", got, []float64{want}, 1e-13)
	near(t, "float32 aux loss", runF32(t, ins, build), []float64{want}, 1e-6)

	// Uniform logits: every softmax is 1/E and ties go to the lowest indices, so experts 0 and 1 take
	// every token: f = (1, 1, 0, 0), P = 1/4 each, loss = E·Σ f·P = 4·(1/4 + 1/4) = 2.
	uni := make([]float64, 2*e)
	uni[0], uni[1] = float64(tokens), float64(tokens)
	for j := 0; j < e; j++ {
		uni[e+j] = float64(tokens) / e
	}
	if l, _ := SwitchAuxLoss([][]float64{uni}, e, tokens); math.Abs(l-2) > 1e-12 {
		t.Fatalf("uniform-logit aux loss %g, want 2", l)
	}
	if l, g := SwitchAuxLoss([][]float64{uni}, e, 0); l != 0 || g[0][e] != 0 {
		t.Fatalf("no tokens: loss %g, grads %v", l, g)
	}
}
