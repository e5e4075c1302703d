package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Frozen is a (out, in) linear weight the graph reads but never trains: a float32 base, or one
// held as bf16/f16/int8/4-bit (package model/quant implements those).
type Frozen interface {
	Shape() (out, in int)
	MulT(y, x []float32, n int)     // y (n, out) = x (n, in) · Wᵀ   (overwrites y)
	MulAdd(dx, dy []float32, n int) // dx (n, in) += dy (n, out) · W
	Bytes() int64                   // memory held
}

// DenseFrozen is a float32 Frozen over a weight in torch's (out, in) layout. It aliases W: updating
// W in place (a merge, a test) changes what the graph reads.
type DenseFrozen struct {
	W       []float32 // (Out, In)
	Out, In int
}

// NewDenseFrozen wraps w (out·in values, torch layout) or returns an error naming the mismatch.
func NewDenseFrozen(w []float32, out, in int) (*DenseFrozen, error) {
	if out <= 0 || in <= 0 || len(w) != out*in {
		return nil, fmt.Errorf("ops.NewDenseFrozen: %d values for shape (%d, %d)", len(w), out, in)
	}
	return &DenseFrozen{W: w, Out: out, In: in}, nil
}

func (d *DenseFrozen) Shape() (out, in int) { return d.Out, d.In }
func (d *DenseFrozen) Bytes() int64         { return int64(len(d.W)) * 4 }

// MulT is y = x·Wᵀ: the BLAS reads W transposed in place.
func (d *DenseFrozen) MulT(y, x []float32, n int) {
	matmul(false, true, n, d.Out, d.In, 1, x, d.In, d.W, d.In, 0, y, d.Out)
}

// MulAdd is dx += dy·W.
func (d *DenseFrozen) MulAdd(dx, dy []float32, n int) {
	matmul(false, false, n, d.In, d.Out, 1, dy, d.Out, d.W, d.In, 1, dx, d.In)
}

// FrozenSlot is a Frozen that forwards to the weight bound last. A checkpointed decoder layer is
// one template sub-graph run for every layer (model.Graph); its frozen products read each layer's
// weight through a slot that the layer's application binds before the template runs. Weights of
// different formats (a Q4_K_M GGUF mixes Q4_K and Q6_K) bind the same slot as long as the shape
// matches.
type FrozenSlot struct {
	out, in int
	w       Frozen
	// memo, when bound, keeps the product's output from the segment's forward run (replay false)
	// for the backward run's recomputation to read (replay true); see FrozenMemo.
	memo   *FrozenMemo
	replay bool
}

// FrozenMemo is one frozen product's output (N, out) kept between a checkpointed segment's forward
// run and its backward run. The backward run recomputes the segment on the same inputs, so the
// product it would compute is bitwise the one the forward run kept: reading it back saves the
// product (2·N·in·out flops) for N·out values of memory, the trade of selective activation
// checkpointing (keep what is cheap to store and expensive to recompute). A memo is read at most
// once per forward run that filled it.
type FrozenMemo struct {
	y  buf
	ok bool // filled by a forward run and not read back yet
}

// BindMemo makes the slot read w, as Bind, and makes its FrozenLinear keep its output in m
// (replay false: the segment's forward run) or take it from m when m holds one for this input shape
// (replay true: the backward run's recomputation). A nil m turns the memo off.
func (s *FrozenSlot) BindMemo(w Frozen, m *FrozenMemo, replay bool) error {
	if err := s.Bind(w); err != nil {
		return err
	}
	s.memo, s.replay = m, replay
	return nil
}

// NewFrozenSlot returns an unbound slot for (out, in) weights.
func NewFrozenSlot(out, in int) *FrozenSlot { return &FrozenSlot{out: out, in: in} }

// Bind makes the slot read w from now on, with no memo.
func (s *FrozenSlot) Bind(w Frozen) error {
	if w == nil {
		return fmt.Errorf("ops.FrozenSlot: binding a nil weight")
	}
	if o, i := w.Shape(); o != s.out || i != s.in {
		return fmt.Errorf("ops.FrozenSlot: weight (%d, %d) bound to a (%d, %d) slot", o, i, s.out, s.in)
	}
	s.w, s.memo = w, nil
	return nil
}

func (s *FrozenSlot) Shape() (out, in int)           { return s.out, s.in }
func (s *FrozenSlot) MulT(y, x []float32, n int)     { s.w.MulT(y, x, n) }
func (s *FrozenSlot) MulAdd(dx, dy []float32, n int) { s.w.MulAdd(dx, dy, n) }
func (s *FrozenSlot) Bytes() int64                   { return 0 } // the bound weights are counted where they are held
func (s *FrozenSlot) bound() bool                    { return s.w != nil }

// unbound reports a FrozenSlot that nothing was bound to: running it would dereference nil.
func unbound(w Frozen) bool {
	s, ok := w.(*FrozenSlot)
	return ok && !s.bound()
}

// FrozenLinear is y = x·Wᵀ for x (N, in) and a frozen W (out, in): (N, out). Its backward computes
// dx = dy·W only; W has no node in the graph, so no gradient buffer for it ever exists.
//
// In a float64 graph (finite-difference tests) a DenseFrozen is widened to float64 once and used
// exactly; any other Frozen runs in float32 on a narrowed copy of x (its own precision is lower
// than float32 anyway).
func FrozenLinear(x *G.Node, w Frozen) (*G.Node, error) {
	if w == nil {
		return nil, fmt.Errorf("ops.FrozenLinear: nil weight")
	}
	return G.ApplyOp(&frozenLinearOp{base: base{name: "ops.FrozenLinear"}, w: w, st: frozenState{w: w}}, x)
}

// frozenState is what the forward and backward ops share: the weight and float64 widenings.
type frozenState struct {
	w   Frozen
	w64 map[*DenseFrozen][]float64 // widened DenseFrozen weights, built on first float64 use
	x32 []float32                  // float64 inputs narrowed for a non-dense Frozen
	y32 []float32
}

// dense64 is the float64 widening of the weight (the one bound now, through a FrozenSlot) when it
// is a DenseFrozen, else nil. Each is widened once: float64 graphs are test graphs whose weights
// do not change.
func (s *frozenState) dense64() []float64 {
	w := s.w
	if sl, ok := w.(*FrozenSlot); ok {
		w = sl.w
	}
	d, ok := w.(*DenseFrozen)
	if !ok {
		return nil
	}
	if s.w64[d] == nil {
		if s.w64 == nil {
			s.w64 = map[*DenseFrozen][]float64{}
		}
		w64 := make([]float64, len(d.W))
		for i, v := range d.W {
			w64[i] = float64(v)
		}
		s.w64[d] = w64
	}
	return s.w64[d]
}

// narrow runs f on float32 copies of a float64 input and output.
func (s *frozenState) narrow(dst, src []float64, add bool, f func(dst32, src32 []float32)) {
	if cap(s.x32) < len(src) {
		s.x32 = make([]float32, len(src))
	}
	if cap(s.y32) < len(dst) {
		s.y32 = make([]float32, len(dst))
	}
	x32, y32 := s.x32[:len(src)], s.y32[:len(dst)]
	for i, v := range src {
		x32[i] = float32(v)
	}
	clear(y32)
	f(y32, x32)
	for i, v := range y32 {
		if add {
			dst[i] += float64(v)
		} else {
			dst[i] = float64(v)
		}
	}
}

// mulT is y (n, out) = x (n, in)·Wᵀ in x's precision (see FrozenLinear for float64).
func (s *frozenState) mulT(y, x G.Value, n int) {
	if y.Dtype() == tensor.Float32 {
		s.w.MulT(floats[float32](y), floats[float32](x), n)
		return
	}
	s.mulT64(floats[float64](y), floats[float64](x), n)
}

func (s *frozenState) mulT64(y64, x64 []float64, n int) {
	out, in := s.w.Shape()
	if w64 := s.dense64(); w64 != nil {
		matmul(false, true, n, out, in, 1, x64, in, w64, in, 0, y64, out)
	} else {
		s.narrow(y64, x64, false, func(y32, x32 []float32) { s.w.MulT(y32, x32, n) })
	}
}

// mulAdd is dx (n, in) += dy (n, out)·W.
func (s *frozenState) mulAdd32(dx, dy []float32, n int) { s.w.MulAdd(dx, dy, n) }

func (s *frozenState) mulAdd64(dx64, dy64 []float64, n int) {
	out, in := s.w.Shape()
	if w64 := s.dense64(); w64 != nil {
		matmul(false, false, n, in, out, 1, dy64, out, w64, in, 1, dx64, in)
	} else {
		s.narrow(dx64, dy64, true, func(dx32, dy32 []float32) { s.w.MulAdd(dx32, dy32, n) })
	}
}

type frozenLinearOp struct {
	base
	w   Frozen
	st  frozenState // st.w is w
	out buf
}

func (op *frozenLinearOp) Arity() int    { return 1 }
func (op *frozenLinearOp) Type() hm.Type { return fnType(floatT(2), floatT(2)) }

func (op *frozenLinearOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	out, in := op.w.Shape()
	if x := sh[0]; len(x) != 2 || x[1] != in {
		return nil, op.errorf("x %v does not match the frozen weight (%d, %d) (want (N, %d))", x, out, in, in)
	}
	return tensor.Shape{sh[0][0], out}, nil
}

func (op *frozenLinearOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	out, in := op.w.Shape()
	xs := vs[0].Shape()
	if len(xs) != 2 || xs[1] != in {
		return nil, op.errorf("x %v does not match the frozen weight (%d, %d)", xs, out, in)
	}
	if unbound(op.w) {
		return nil, op.errorf("its weight slot was not bound")
	}
	n := xs[0]
	y := op.out.get(dt, n, out)
	slot, _ := op.w.(*FrozenSlot)
	if slot == nil || slot.memo == nil {
		op.st.mulT(y, vs[0], n)
		return y, nil
	}
	m := slot.memo
	if slot.replay {
		if m.ok && m.y.t.Dtype() == dt && m.y.t.Shape().Eq(y.Shape()) {
			m.ok = false
			copyDense(y, m.y.t)
			return y, nil
		}
		op.st.mulT(y, vs[0], n)
		return y, nil
	}
	op.st.mulT(y, vs[0], n)
	copyDense(m.y.get(dt, n, out), y)
	m.ok = true
	return y, nil
}

// copyDense copies src's values into dst, both float32 or both float64 of one size.
func copyDense(dst, src *tensor.Dense) {
	switch d := dst.Data().(type) {
	case []float32:
		copy(d, src.Data().([]float32))
	case []float64:
		copy(d, src.Data().([]float64))
	}
}

func (op *frozenLinearOp) DiffWRT(int) []bool { return []bool{true} }

func (op *frozenLinearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&frozenLinearDXOp{base: base{name: "ops.FrozenLinearDX"}, fwd: op}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// frozenLinearDXOp is dy (N, out) · W (out, in) = dx (N, in).
type frozenLinearDXOp struct {
	base
	fwd *frozenLinearOp
	out buf
}

func (op *frozenLinearDXOp) Arity() int    { return 1 }
func (op *frozenLinearDXOp) Type() hm.Type { return fnType(floatT(2), floatT(2)) }
func (op *frozenLinearDXOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	dy, err := shapeOf(ds[0])
	if err != nil {
		return nil, err
	}
	_, in := op.fwd.w.Shape()
	return tensor.Shape{dy[0], in}, nil
}

func (op *frozenLinearDXOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	out, in := op.fwd.w.Shape()
	n := vs[0].Shape()[0]
	if vs[0].Shape()[1] != out {
		return nil, op.errorf("dy %v does not match the frozen weight (%d, %d)", vs[0].Shape(), out, in)
	}
	if unbound(op.fwd.w) {
		return nil, op.errorf("its weight slot was not bound")
	}
	dx := op.out.get(dt, n, in)
	if dt == tensor.Float32 {
		d := floats[float32](dx)
		clear(d)
		op.fwd.st.mulAdd32(d, floats[float32](vs[0]), n)
		return dx, nil
	}
	d := floats[float64](dx)
	clear(d)
	op.fwd.st.mulAdd64(d, floats[float64](vs[0]), n)
	return dx, nil
}
