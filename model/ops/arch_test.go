package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
)

// The ops the Llama 3 / Qwen2 / Qwen3 / Qwen3-MoE families add: Linear biases, Qwen3's per-head q/k
// RMSNorm (a grouped RMSNorm), RoPE with scaled frequencies, and top-k routing without
// renormalisation. Each is checked against float64 central differences and a direct reference.

func TestAddBias(t *testing.T) {
	for _, tc := range []struct{ n, w int }{{1, 1}, {5, 7}, {300, 24}} { // the last splits over workers
		rng := rand.New(rand.NewPCG(21, uint64(tc.n)))
		ins := []input{floatIn(rng, tc.n, tc.w), floatIn(rng, tc.w)}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return AddBias(in[0], in[1]) }
		h := newHarness(t, rng, ins, build)
		h.check(rng, 40)
		want := make([]float64, tc.n*tc.w)
		for i := range want {
			want[i] = ins[0].vals[i] + ins[1].vals[i%tc.w]
		}
		got, _, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "float64 bias", got, want, 0)
		near(t, "float32 bias", runF32(t, ins, build), want, 1e-6)
	}
}

// TestRMSNormPerHead: a gain of hd values over rows of heads·hd normalises each head on its own, as
// transformers' Qwen3Attention applies q_norm to q viewed as (…, heads, hd).
func TestRMSNormPerHead(t *testing.T) {
	for _, tc := range []struct{ n, heads, hd int }{{1, 1, 4}, {3, 4, 6}, {200, 3, 16}} {
		rng := rand.New(rand.NewPCG(22, uint64(tc.n)))
		ins := []input{floatIn(rng, tc.n, tc.heads*tc.hd), floatIn(rng, tc.hd)}
		const eps = 1e-6
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return RMSNorm(in[0], in[1], eps) }
		h := newHarness(t, rng, ins, build)
		h.check(rng, 40)
		want := make([]float64, len(ins[0].vals))
		for r := 0; r < tc.n*tc.heads; r++ {
			x := ins[0].vals[r*tc.hd : (r+1)*tc.hd]
			var ss float64
			for _, v := range x {
				ss += v * v
			}
			inv := 1 / math.Sqrt(ss/float64(tc.hd)+eps)
			for j, v := range x {
				want[r*tc.hd+j] = v * inv * ins[1].vals[j]
			}
		}
		got, _, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "float64 per-head rmsnorm", got, want, 1e-12)
		near(t, "float32 per-head rmsnorm", runF32(t, ins, build), want, 1e-5)
	}
}

func TestRMSNormRejectsGainThatDoesNotDivide(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float64, G.WithShape(2, 10), G.WithName("x"))
	w := G.NewVector(g, G.Float64, G.WithShape(4), G.WithName("w"))
	_, err := RMSNorm(x, w, 1e-6)
	want := "ops.RMSNorm: x (2, 10) and weight (4): want (N, D) and (D), or (G) with D a multiple of G"
	if err == nil || Cause(err).Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// TestRoPEScaledFrequencies rotates by given inverse frequencies (Llama 3-like: some divided by 8, one
// blended) and checks against HF's rotate-half formula with those frequencies.
func TestRoPEScaledFrequencies(t *testing.T) {
	inv := []float64{1, 0.3 / 1.7, 0.01 / 8, 1e-4 / 8}
	pos := []int32{0, 1, 5, 8191, 3, 70000}
	hd, heads := 2*len(inv), 3
	rng := rand.New(rand.NewPCG(23, 1))
	ins := []input{floatIn(rng, len(pos), heads*hd), intIn(pos)}
	r, err := NewRoPEFreqs(inv)
	if err != nil {
		t.Fatal(err)
	}
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return r.Apply(in[0], in[1]) }
	h := newHarness(t, rng, ins, build)
	h.check(rng, 60)
	half := hd / 2
	want := make([]float64, len(ins[0].vals))
	for i, p := range pos {
		for hh := 0; hh < heads; hh++ {
			q := ins[0].vals[(i*heads+hh)*hd : (i*heads+hh+1)*hd]
			o := want[(i*heads+hh)*hd : (i*heads+hh+1)*hd]
			for j := 0; j < hd; j++ {
				s, c := math.Sincos(float64(p) * inv[j%half])
				var rot float64
				if j >= half {
					rot = q[j-half]
				} else {
					rot = -q[j+half]
				}
				o[j] = q[j]*c + rot*s
			}
		}
	}
	got, _, err := h.run()
	if err != nil {
		t.Fatal(err)
	}
	near(t, "float64 scaled rope", got, want, 1e-12)
	near(t, "float32 scaled rope", runF32(t, ins, build), want, 1e-5)
}

func TestNewRoPEFreqsRejectsBadFrequencies(t *testing.T) {
	for _, tc := range []struct {
		inv  []float64
		want string
	}{
		{nil, "ops.RoPE: no frequencies"},
		{[]float64{1, 0}, "ops.RoPE: inverse frequency 1 is 0, want a positive finite number"},
		{[]float64{math.NaN()}, "ops.RoPE: inverse frequency 0 is NaN, want a positive finite number"},
	} {
		if _, err := NewRoPEFreqs(tc.inv); err == nil || err.Error() != tc.want {
			t.Errorf("NewRoPEFreqs(%v): got %v, want %q", tc.inv, err, tc.want)
		}
	}
}

// naiveRouteRaw follows transformers' Qwen3MoeSparseMoeBlock with norm_topk_prob false: softmax over
// all logits, top-k, the selected probabilities kept as they are.
func naiveRouteRaw(z []float64, e, k int) []float64 {
	out := make([]float64, len(z))
	for i := 0; i < len(z)/e; i++ {
		p := make([]float64, e)
		var s float64
		for j, v := range z[i*e : (i+1)*e] {
			p[j] = math.Exp(v)
			s += p[j]
		}
		for j := range p {
			p[j] /= s
		}
		idx := make([]int, k)
		topK(p, idx)
		for _, j := range idx {
			out[i*e+j] = p[j]
		}
	}
	return out
}

// TestRouteTopKNormalisation: top-3 of 6 (Qwen3-MoE's top-k > 2 over many experts), renormalised and
// not, through the experts, against the transformers formulations and finite differences.
func TestRouteTopKNormalisation(t *testing.T) {
	const n, d, f, e, k = 13, 5, 6, 6, 3
	for _, norm := range []bool{true, false} {
		rng := rand.New(rand.NewPCG(24, 1))
		ins := []input{floatIn(rng, n, d), floatIn(rng, n, e)}
		for i := range ins[1].vals {
			ins[1].vals[i] *= 2
		}
		for x := 0; x < 3*e; x++ {
			if x < 2*e {
				ins = append(ins, floatIn(rng, f, d))
			} else {
				ins = append(ins, floatIn(rng, d, f))
			}
		}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			c, err := RouteTopK(in[1], k, norm)
			if err != nil {
				return nil, err
			}
			return Experts(in[0], c, in[2:2+e], in[2+e:2+2*e], in[2+2*e:])
		}
		newHarness(t, rng, ins, build).check(rng, 25)
		rb := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return RouteTopK(in[1], k, norm) }
		routeIns := []input{ins[0], ins[1]}
		routeIns[0].diff = false
		hr := newHarness(t, rng, routeIns, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return RouteTopK(in[1], k, norm) })
		hr.check(rng, 40)
		want := naiveRouteRaw(ins[1].vals, e, k)
		if norm {
			want = naiveRoute(ins[1].vals, e, k)
		}
		got, _, err := hr.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "float64 route", got, want, 1e-12)
		near(t, "float32 route", runF32(t, ins, rb), want, 1e-6)
		if !norm {
			var sum float64
			for _, v := range want[:e] {
				sum += v
			}
			if !(sum < 1-1e-3) {
				t.Fatalf("unnormalised top-%d of %d sums to %g: the test does not tell the two apart", k, e, sum)
			}
		}
	}
}
