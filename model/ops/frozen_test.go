package ops

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// narrowFrozen is a Frozen that is not a DenseFrozen, so the float64 graph takes the narrowed
// float32 path that a quantized weight takes.
type narrowFrozen struct{ d *DenseFrozen }

func (f narrowFrozen) Shape() (int, int)              { return f.d.Shape() }
func (f narrowFrozen) MulT(y, x []float32, n int)     { f.d.MulT(y, x, n) }
func (f narrowFrozen) MulAdd(dx, dy []float32, n int) { f.d.MulAdd(dx, dy, n) }
func (f narrowFrozen) Bytes() int64                   { return f.d.Bytes() }

func TestFrozenLinear(t *testing.T) {
	for _, tc := range []struct{ n, in, out int }{{1, 1, 1}, {3, 5, 7}, {17, 8, 65}, {70, 66, 3}} {
		rng := rand.New(rand.NewPCG(3, uint64(tc.n)))
		w32 := make([]float32, tc.out*tc.in)
		w64 := make([]float64, len(w32))
		for i := range w32 {
			w32[i] = float32(rng.NormFloat64())
			w64[i] = float64(w32[i])
		}
		fz, err := NewDenseFrozen(w32, tc.out, tc.in)
		if err != nil {
			t.Fatal(err)
		}
		ins := []input{floatIn(rng, tc.n, tc.in)}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return FrozenLinear(in[0], fz) }
		h := newHarness(t, rng, ins, build)
		h.check(rng, 30)

		// Naive reference: y[i][o] = Σ_k x[i][k]·W[o][k].
		want := make([]float64, tc.n*tc.out)
		x := ins[0].vals
		for i := 0; i < tc.n; i++ {
			for o := 0; o < tc.out; o++ {
				for k := 0; k < tc.in; k++ {
					want[i*tc.out+o] += x[i*tc.in+k] * w64[o*tc.in+k]
				}
			}
		}
		got, _, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "float64 frozen linear", got, want, 1e-12)
		near(t, "float32 frozen linear", runF32(t, ins, build), want, 1e-5)

		// A non-dense Frozen in a float64 graph computes in float32: same values to float32 precision.
		nb := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return FrozenLinear(in[0], narrowFrozen{fz}) }
		// Both harnesses draw the same loss weights R from equal generators, so their dx must agree.
		hd := newHarness(t, rand.New(rand.NewPCG(9, 9)), ins, build)
		hn := newHarness(t, rand.New(rand.NewPCG(9, 9)), ins, nb)
		gotN, gradsN, err := hn.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "narrowed frozen linear", gotN, want, 1e-5)
		_, grads, err := hd.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "narrowed frozen linear dx", gradsN[0], grads[0], 1e-5)
	}
}

func TestFrozenLinearErrors(t *testing.T) {
	if _, err := NewDenseFrozen(make([]float32, 5), 2, 3); err == nil || err.Error() != "ops.NewDenseFrozen: 5 values for shape (2, 3)" {
		t.Fatalf("got %v", err)
	}
	if _, err := FrozenLinear(nil, nil); err == nil || err.Error() != "ops.FrozenLinear: nil weight" {
		t.Fatalf("got %v", err)
	}
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float32, G.WithShape(2, 4), G.WithName("x"))
	fz, _ := NewDenseFrozen(make([]float32, 6), 2, 3)
	_, err := FrozenLinear(x, fz)
	if err == nil {
		t.Fatal("no error for x (2, 4) against a (2, 3) weight")
	}
	if want := "ops.FrozenLinear: x (2, 4) does not match the frozen weight (2, 3) (want (N, 3))"; !strings.Contains(Cause(err).Error(), want) {
		t.Fatalf("error %q lacks %q", err, want)
	}
}

// countingFrozen counts its forward products.
type countingFrozen struct {
	d     *DenseFrozen
	mulTs int
}

func (f *countingFrozen) Shape() (int, int)              { return f.d.Shape() }
func (f *countingFrozen) MulT(y, x []float32, n int)     { f.mulTs++; f.d.MulT(y, x, n) }
func (f *countingFrozen) MulAdd(dx, dy []float32, n int) { f.d.MulAdd(dx, dy, n) }
func (f *countingFrozen) Bytes() int64                   { return f.d.Bytes() }

// TestFrozenMemo: a slot bound with a memo keeps its product in a recording run and hands it back,
// bitwise and without multiplying, in the next replaying run; a memo is read once, a replay with
// nothing recorded multiplies, and Bind turns the memo off.
func TestFrozenMemo(t *testing.T) {
	const n, in, out = 5, 6, 4
	rng := rand.New(rand.NewPCG(4, 4))
	w := make([]float32, out*in)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	d, err := NewDenseFrozen(w, out, in)
	if err != nil {
		t.Fatal(err)
	}
	cf := &countingFrozen{d: d}
	slot := NewFrozenSlot(out, in)
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float32, G.WithShape(n, in), G.WithName("x"))
	y, err := FrozenLinear(x, slot)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	xs := make([]float32, n*in)
	run := func() []float32 {
		t.Helper()
		for i := range xs {
			xs[i] = float32(rng.NormFloat64())
		}
		if err := G.Let(x, tensor.New(tensor.WithShape(n, in), tensor.WithBacking(xs))); err != nil {
			t.Fatal(err)
		}
		m.Reset()
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), y.Value().Data().([]float32)...)
	}
	want := func() []float32 { // y = x·Wᵀ of the current x
		r := make([]float32, n*out)
		d.MulT(r, xs, n)
		return r
	}
	memo := new(FrozenMemo)
	steps := []struct {
		what   string
		bind   func() error
		mulTs  int  // products the run computes
		replay bool // the run's y is the recorded one, not its own x's
	}{
		{"record", func() error { return slot.BindMemo(cf, memo, false) }, 1, false},
		{"replay", func() error { return slot.BindMemo(cf, memo, true) }, 0, true},
		{"replay again", func() error { return slot.BindMemo(cf, memo, true) }, 1, false},
		{"record", func() error { return slot.BindMemo(cf, memo, false) }, 1, false},
		{"plain bind", func() error { return slot.Bind(cf) }, 1, false},
		{"replay after a plain bind", func() error { return slot.BindMemo(cf, memo, true) }, 0, true},
	}
	var recorded []float32
	for i, s := range steps {
		if err := s.bind(); err != nil {
			t.Fatal(err)
		}
		before := cf.mulTs
		got := run()
		if cf.mulTs-before != s.mulTs {
			t.Fatalf("step %d (%s): %d products, want %d", i, s.what, cf.mulTs-before, s.mulTs)
		}
		ref := want()
		if s.replay {
			ref = recorded
		}
		for j := range got {
			if math.Float32bits(got[j]) != math.Float32bits(ref[j]) {
				t.Fatalf("step %d (%s): y[%d] = %v, want %v", i, s.what, j, got[j], ref[j])
			}
		}
		if s.what == "record" {
			recorded = got
		}
	}
}
