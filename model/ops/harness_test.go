package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// input is one input of an op under test: a float tensor (random unless vals is set) or, when ints
// is set, a fixed Int32 tensor.
type input struct {
	shape []int
	vals  []float64
	ints  []int32
	diff  bool // take the finite-difference gradient with respect to it
}

func floatIn(rng *rand.Rand, shape ...int) input {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return input{shape: shape, vals: v, diff: true}
}

func intIn(ids []int32) input { return input{shape: []int{len(ids)}, ints: ids} }

// harness builds the op on float64 inputs twice: a graph with symbolic gradients of
// loss = Σ out ⊙ R (R random, fixed) and a forward-only graph that shares the input tensors, for
// central finite differences.
type harness struct {
	t       *testing.T
	ins     []input
	tensors []*tensor.Dense
	grads   G.Nodes
	wrt     []int // input index of each grad
	m       G.VM
	fwd     G.VM
	fwdLoss *G.Node
	out     *G.Node
	outFwd  *G.Node
}

func newHarness(t *testing.T, rng *rand.Rand, ins []input, build func(g *G.ExprGraph, in []*G.Node) (*G.Node, error)) *harness {
	t.Helper()
	h := &harness{t: t, ins: ins}
	for _, in := range ins {
		if in.ints != nil {
			h.tensors = append(h.tensors, tensor.New(tensor.WithShape(in.shape...), tensor.WithBacking(in.ints)))
		} else {
			h.tensors = append(h.tensors, tensor.New(tensor.WithShape(in.shape...), tensor.WithBacking(append([]float64(nil), in.vals...))))
		}
	}
	var r *tensor.Dense
	mk := func() (*G.ExprGraph, []*G.Node, *G.Node, *G.Node) {
		g := G.NewGraph()
		nodes := make([]*G.Node, len(ins))
		for i, in := range ins {
			dt := tensor.Float64
			if in.ints != nil {
				dt = tensor.Int32
			}
			nodes[i] = G.NewTensor(g, dt, len(in.shape), G.WithShape(in.shape...), G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(h.tensors[i]))
		}
		out, err := build(g, nodes)
		if err != nil {
			t.Fatalf("building the op: %v", err)
		}
		var loss *G.Node
		if out.IsScalar() {
			loss = out
		} else {
			if r == nil {
				rv := make([]float64, out.Shape().TotalSize())
				for i := range rv {
					rv[i] = rng.NormFloat64()
				}
				r = tensor.New(tensor.WithShape(out.Shape()...), tensor.WithBacking(rv))
			}
			rn := G.NewTensor(g, tensor.Float64, out.Dims(), G.WithShape(out.Shape()...), G.WithName("R"), G.WithValue(r))
			loss = G.Must(G.Sum(G.Must(G.HadamardProd(out, rn))))
		}
		return g, nodes, out, loss
	}
	g, nodes, out, loss := mk()
	h.out = out
	var wrt G.Nodes
	for i, in := range ins {
		if in.diff {
			wrt = append(wrt, nodes[i])
			h.wrt = append(h.wrt, i)
		}
	}
	if len(wrt) > 0 {
		grads, err := G.Grad(loss, wrt...)
		if err != nil {
			t.Fatalf("symbolic gradient: %v", err)
		}
		h.grads = grads
	}
	h.m = G.NewTapeMachine(g)
	g2, _, out2, loss2 := mk()
	h.fwd = G.NewTapeMachine(g2)
	h.fwdLoss = loss2
	h.outFwd = out2
	return h
}

// run executes the gradient graph and returns the output values (copied) and the gradients.
func (h *harness) run() ([]float64, [][]float64, error) {
	h.m.Reset()
	if err := h.m.RunAll(); err != nil {
		return nil, nil, err
	}
	out := append([]float64(nil), valueF64(h.out.Value())...)
	var grads [][]float64
	for _, gn := range h.grads {
		grads = append(grads, append([]float64(nil), valueF64(gn.Value())...))
	}
	return out, grads, nil
}

func (h *harness) loss() float64 {
	h.t.Helper()
	h.fwd.Reset()
	if err := h.fwd.RunAll(); err != nil {
		h.t.Fatalf("forward: %v", err)
	}
	v, err := scalarOf(h.fwdLoss.Value())
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

func valueF64(v G.Value) []float64 {
	switch x := v.(type) {
	case *tensor.Dense:
		switch d := x.Data().(type) {
		case []float64:
			return d
		case float64:
			return []float64{d}
		}
	case *G.F64:
		return []float64{float64(*x)}
	}
	panic(fmt.Sprintf("value %T is not float64", v))
}

// check compares every symbolic gradient with central differences (eps 1e-6 in float64) on up to
// maxPerInput elements of each input; the tolerance is relative to the gradient's scale.
func (h *harness) check(rng *rand.Rand, maxPerInput int) {
	h.t.Helper()
	_, grads, err := h.run()
	if err != nil {
		h.t.Fatalf("run: %v", err)
	}
	const eps = 1e-6
	for gi, idx := range h.wrt {
		data := h.tensors[idx].Data().([]float64)
		scale := 0.0
		for _, v := range grads[gi] {
			scale = math.Max(scale, math.Abs(v))
		}
		picks := rng.Perm(len(data))
		if len(picks) > maxPerInput {
			picks = picks[:maxPerInput]
		}
		for _, j := range picks {
			orig := data[j]
			data[j] = orig + eps
			lp := h.loss()
			data[j] = orig - eps
			lm := h.loss()
			data[j] = orig
			num := (lp - lm) / (2 * eps)
			if d := math.Abs(num - grads[gi][j]); d > 1e-6*(1+scale) {
				h.t.Errorf("input %d element %d: symbolic %.10g, finite difference %.10g (diff %.3g, scale %.3g)", idx, j, grads[gi][j], num, d, scale)
			}
		}
	}
	// A second run of the same machine must reproduce the gradients exactly (no stale state).
	_, again, err := h.run()
	if err != nil {
		h.t.Fatalf("second run: %v", err)
	}
	for gi := range grads {
		for j := range grads[gi] {
			if grads[gi][j] != again[gi][j] {
				h.t.Fatalf("gradient %d element %d changed on re-run: %g then %g", gi, j, grads[gi][j], again[gi][j])
			}
		}
	}
}

// f32Nodes are g's input nodes "in0", "in1", ... holding float32 copies of ins (int32 ones copied
// as they are).
func f32Nodes(g *G.ExprGraph, ins []input) []*G.Node {
	nodes := make([]*G.Node, len(ins))
	for i, in := range ins {
		var v *tensor.Dense
		if in.ints != nil {
			v = tensor.New(tensor.WithShape(in.shape...), tensor.WithBacking(append([]int32(nil), in.ints...)))
		} else {
			f := make([]float32, len(in.vals))
			for j, x := range in.vals {
				f[j] = float32(x)
			}
			v = tensor.New(tensor.WithShape(in.shape...), tensor.WithBacking(f))
		}
		nodes[i] = G.NewTensor(g, v.Dtype(), len(in.shape), G.WithShape(in.shape...), G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(v))
	}
	return nodes
}

// runF32 builds the op once on float32 copies of the inputs and returns its output.
func runF32(t *testing.T, ins []input, build func(g *G.ExprGraph, in []*G.Node) (*G.Node, error)) []float32 {
	t.Helper()
	g := G.NewGraph()
	nodes := f32Nodes(g, ins)
	out, err := build(g, nodes)
	if err != nil {
		t.Fatalf("building the float32 op: %v", err)
	}
	m := G.NewTapeMachine(g)
	if err := m.RunAll(); err != nil {
		t.Fatalf("float32 run: %v", err)
	}
	switch v := out.Value().(type) {
	case *tensor.Dense:
		if d, ok := v.Data().([]float32); ok {
			return append([]float32(nil), d...)
		}
		return []float32{v.Data().(float32)}
	case *G.F32:
		return []float32{float32(*v)}
	}
	t.Fatalf("float32 output is a %T", out.Value())
	return nil
}

// near asserts |got-want| <= tol*(1+|want|) elementwise.
func near[T Float](t *testing.T, what string, got []T, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*(1+math.Abs(want[i]))) {
			t.Fatalf("%s[%d] = %.9g, want %.9g (diff %.3g)", what, i, float64(got[i]), want[i], d)
		}
	}
}
