package ops

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
)

// loraRef is the adapter's output computed naively from its definition:
// y[i][o] = scale · Σ_k B[o][k] · Σ_j A[k][j] · mask_j · x[i][j].
func loraRef(x, a, b []float64, n, in, r, out int, spec LoRASpec) []float64 {
	var seed uint64
	if spec.Seed != nil {
		seed = *spec.Seed
	}
	y := make([]float64, n*out)
	for i := 0; i < n; i++ {
		t := make([]float64, r)
		for k := 0; k < r; k++ {
			for j := 0; j < in; j++ {
				xv := x[i*in+j]
				if spec.Dropout > 0 {
					if DropMask(seed, *spec.Key, i*in+j, spec.Dropout) {
						xv /= 1 - spec.Dropout
					} else {
						xv = 0
					}
				}
				t[k] += a[k*in+j] * xv
			}
		}
		for o := 0; o < out; o++ {
			for k := 0; k < r; k++ {
				y[i*out+o] += spec.Scale * b[o*r+k] * t[k]
			}
		}
	}
	return y
}

func TestLoRA(t *testing.T) {
	seed := uint64(77)
	for _, tc := range []struct {
		name           string
		n, in, r, out  int
		scale, dropout float64
	}{
		{"rank 1", 1, 1, 1, 1, 2, 0},
		{"no dropout", 5, 6, 2, 7, 0.5, 0},
		{"dropout", 9, 16, 4, 11, 2, 0.3},
		{"wide", 33, 40, 8, 5, 1 / math.Sqrt(8), 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(4, uint64(tc.n)))
			key := uint64(12345)
			spec := LoRASpec{Scale: tc.scale, Dropout: tc.dropout, Seed: &seed, Key: &key}
			ins := []input{floatIn(rng, tc.n, tc.in), floatIn(rng, tc.r, tc.in), floatIn(rng, tc.out, tc.r)}
			build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return LoRA(in[0], in[1], in[2], spec) }
			h := newHarness(t, rng, ins, build)
			h.check(rng, 40)
			want := loraRef(ins[0].vals, ins[1].vals, ins[2].vals, tc.n, tc.in, tc.r, tc.out, spec)
			got, _, err := h.run()
			if err != nil {
				t.Fatal(err)
			}
			near(t, "float64 lora", got, want, 1e-12)
			near(t, "float32 lora", runF32(t, ins, build), want, 1e-5)

			// LoRADown is the same adapter's u = dropout(x)·Aᵀ, the same mask included: the
			// reference with B the identity and scale 1. Its dx and dA against differences too.
			eye := make([]float64, tc.r*tc.r)
			for k := 0; k < tc.r; k++ {
				eye[k*tc.r+k] = 1
			}
			down := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return LoRADown(in[0], in[1], spec) }
			hd := newHarness(t, rng, ins[:2], down)
			hd.check(rng, 40)
			gotU, _, err := hd.run()
			if err != nil {
				t.Fatal(err)
			}
			unit := spec
			unit.Scale = 1
			wantU := loraRef(ins[0].vals, ins[1].vals, eye, tc.n, tc.in, tc.r, tc.r, unit)
			near(t, "float64 lora down", gotU, wantU, 1e-12)
			near(t, "float32 lora down", runF32(t, ins[:2], down), wantU, 1e-5)
			if tc.dropout == 0 {
				return
			}
			// The mask follows the seed read at run time: another seed gives another output.
			seed++
			defer func() { seed-- }()
			again, _, err := h.run()
			if err != nil {
				t.Fatal(err)
			}
			near(t, "float64 lora, next seed", again, loraRef(ins[0].vals, ins[1].vals, ins[2].vals, tc.n, tc.in, tc.r, tc.out, spec), 1e-12)
			same := true
			for i := range again {
				same = same && again[i] == got[i]
			}
			if same {
				t.Fatal("a new seed drew the same dropout mask")
			}
		})
	}
}

// TestDropMaskRate: the kept fraction is 1−p within 4 standard deviations, and masks differ by key.
func TestDropMaskRate(t *testing.T) {
	const n = 200000
	for _, p := range []float64{0.05, 0.1, 0.5} {
		kept, diff := 0, 0
		for j := 0; j < n; j++ {
			k := DropMask(3, 1, j, p)
			if k {
				kept++
			}
			if k != DropMask(3, 2, j, p) {
				diff++
			}
		}
		sd := math.Sqrt(n * p * (1 - p))
		if d := math.Abs(float64(kept) - n*(1-p)); d > 4*sd {
			t.Errorf("p %g: kept %d of %d, want %.0f ± %.0f", p, kept, n, n*(1-p), 4*sd)
		}
		if wantDiff := 2 * n * p * (1 - p); math.Abs(float64(diff)-wantDiff) > 6*math.Sqrt(wantDiff) {
			t.Errorf("p %g: keys 1 and 2 differ at %d elements, want about %.0f", p, diff, wantDiff)
		}
	}
}

func TestLoRAErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float32, G.WithShape(2, 4), G.WithName("x"))
	a := G.NewMatrix(g, G.Float32, G.WithShape(3, 4), G.WithName("a"))
	b := G.NewMatrix(g, G.Float32, G.WithShape(5, 2), G.WithName("b"))
	for _, tc := range []struct {
		spec LoRASpec
		b    *G.Node
		want string
	}{
		{LoRASpec{Scale: 1, Dropout: 1}, b, "ops.LoRA: dropout 1 is outside [0, 1)"},
		{LoRASpec{Scale: 1, Dropout: math.NaN()}, b, "ops.LoRA: dropout NaN is outside [0, 1)"},
		{LoRASpec{Scale: math.Inf(1)}, b, "ops.LoRA: scale +Inf is not finite"},
		{LoRASpec{Scale: 1}, b, "ops.LoRA: x (2, 4), A (3, 4) and B (5, 2) do not match (want (N, in), (r, in), (out, r))"},
	} {
		_, err := LoRA(x, a, tc.b, tc.spec)
		if err == nil || !strings.Contains(Cause(err).Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	for _, tc := range []struct {
		spec LoRASpec
		a    *G.Node
		want string
	}{
		{LoRASpec{Dropout: 1}, a, "ops.LoRADown: dropout 1 is outside [0, 1)"},
		{LoRASpec{}, b, "ops.LoRADown: x (2, 4) and A (5, 2) do not match (want (N, in), (r, in))"},
	} {
		_, err := LoRADown(x, tc.a, tc.spec)
		if err == nil || !strings.Contains(Cause(err).Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

func TestMixExperts(t *testing.T) {
	const n, d, e = 7, 5, 3
	rng := rand.New(rand.NewPCG(5, 5))
	ins := []input{floatIn(rng, n, e)}
	for i := 0; i < e; i++ {
		ins = append(ins, floatIn(rng, n, d))
	}
	ins[0].vals[4] = 0 // an unselected expert: its output is weighted by exactly 0
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return MixExperts(in[0], in[1:]) }
	h := newHarness(t, rng, ins, build)
	h.check(rng, 40)
	want := make([]float64, n*d)
	for i := 0; i < n; i++ {
		for k := 0; k < e; k++ {
			for j := 0; j < d; j++ {
				want[i*d+j] += ins[0].vals[i*e+k] * ins[1+k].vals[i*d+j]
			}
		}
	}
	got, _, err := h.run()
	if err != nil {
		t.Fatal(err)
	}
	near(t, "float64 mix", got, want, 1e-12)
	near(t, "float32 mix", runF32(t, ins, build), want, 1e-5)

	g := G.NewGraph()
	c := G.NewMatrix(g, G.Float64, G.WithShape(n, 2), G.WithName("c"))
	y := G.NewMatrix(g, G.Float64, G.WithShape(n, d), G.WithName("y"))
	if _, err := MixExperts(c, []*G.Node{y}); err == nil || err.Error() != "ops.MixExperts: combination weights (7, 2) for 1 expert outputs (want (N, E) with E = 1)" {
		t.Fatalf("got %v", err)
	}
}
