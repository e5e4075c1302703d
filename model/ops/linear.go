package ops

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Linear is x·Wᵀ for x (N, in) and a torch-layout weight W (out, in): (N, out). It calls the BLAS
// with W transposed in place, so the graph holds no transpose; its backward ops are dx = dy·W and
// dW = dyᵀ·x, again without transposes.
func Linear(x, w *G.Node) (*G.Node, error) {
	return G.ApplyOp(&linearOp{base: base{name: "ops.Linear"}}, x, w)
}

type linearOp struct {
	base
	out buf
}

func (op *linearOp) Arity() int    { return 2 }
func (op *linearOp) Type() hm.Type { return fnType(floatT(2), floatT(2), floatT(2)) }

func (op *linearOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	x, w := sh[0], sh[1]
	if len(x) != 2 || len(w) != 2 || x[1] != w[1] {
		return nil, op.errorf("x %v and weight %v do not match (want (N, in) and (out, in))", x, w)
	}
	return tensor.Shape{x[0], w[0]}, nil
}

func (op *linearOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	xs, ws := vs[0].Shape(), vs[1].Shape()
	if len(xs) != 2 || len(ws) != 2 || xs[1] != ws[1] {
		return nil, op.errorf("x %v and weight %v do not match", xs, ws)
	}
	n, in, out := xs[0], xs[1], ws[0]
	y := op.out.get(dt, n, out)
	if dt == tensor.Float32 {
		matmul(false, true, n, out, in, 1, floats[float32](vs[0]), in, floats[float32](vs[1]), in, 0, floats[float32](y), out)
	} else {
		matmul(false, true, n, out, in, 1, floats[float64](vs[0]), in, floats[float64](vs[1]), in, 0, floats[float64](y), out)
	}
	return y, nil
}

func (op *linearOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *linearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&linearDXOp{base: base{name: "ops.LinearDX"}}, grad, inputs[1])
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(&linearDWOp{base: base{name: "ops.LinearDW"}}, grad, inputs[0])
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw}, nil
}

// linearDXOp is dy (N, out) · W (out, in) = dx (N, in).
type linearDXOp struct {
	base
	out buf
}

func (op *linearDXOp) Arity() int    { return 2 }
func (op *linearDXOp) Type() hm.Type { return fnType(floatT(2), floatT(2), floatT(2)) }
func (op *linearDXOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	dy, _ := shapeOf(ds[0])
	w, _ := shapeOf(ds[1])
	return tensor.Shape{dy[0], w[1]}, nil
}

func (op *linearDXOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	n, out, in := vs[0].Shape()[0], vs[0].Shape()[1], vs[1].Shape()[1]
	dx := op.out.get(dt, n, in)
	if dt == tensor.Float32 {
		matmul(false, false, n, in, out, 1, floats[float32](vs[0]), out, floats[float32](vs[1]), in, 0, floats[float32](dx), in)
	} else {
		matmul(false, false, n, in, out, 1, floats[float64](vs[0]), out, floats[float64](vs[1]), in, 0, floats[float64](dx), in)
	}
	return dx, nil
}

// linearDWOp is dyᵀ (out, N) · x (N, in) = dW (out, in).
type linearDWOp struct {
	base
	out buf
}

func (op *linearDWOp) Arity() int    { return 2 }
func (op *linearDWOp) Type() hm.Type { return fnType(floatT(2), floatT(2), floatT(2)) }
func (op *linearDWOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	dy, _ := shapeOf(ds[0])
	x, _ := shapeOf(ds[1])
	return tensor.Shape{dy[1], x[1]}, nil
}

func (op *linearDWOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	n, out, in := vs[0].Shape()[0], vs[0].Shape()[1], vs[1].Shape()[1]
	dw := op.out.get(dt, out, in)
	if dt == tensor.Float32 {
		matmul(true, false, out, in, n, 1, floats[float32](vs[0]), out, floats[float32](vs[1]), in, 0, floats[float32](dw), in)
	} else {
		matmul(true, false, out, in, n, 1, floats[float64](vs[0]), out, floats[float64](vs[1]), in, 0, floats[float64](dw), in)
	}
	return dw, nil
}

// Add is the elementwise sum of two same-shape tensors (the residual stream), split over the cores.
// Its gradient passes the upstream gradient to both inputs unchanged.
func Add(a, b *G.Node) (*G.Node, error) {
	return G.ApplyOp(&addOp{base: base{name: "ops.Add"}}, a, b)
}

type addOp struct {
	base
	out buf
}

func (op *addOp) Arity() int    { return 2 }
func (op *addOp) Type() hm.Type { return fnType(tvA, tvA, tvA) }
func (op *addOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	a, b := sh[0], sh[1]
	if !a.Eq(b) {
		return nil, op.errorf("shapes %v and %v differ", a, b)
	}
	return a.Clone(), nil
}

func (op *addOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if !vs[0].Shape().Eq(vs[1].Shape()) {
		return nil, op.errorf("shapes %v and %v differ", vs[0].Shape(), vs[1].Shape())
	}
	y := op.out.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		addInto(floats[float32](y), floats[float32](vs[0]), floats[float32](vs[1]))
	} else {
		addInto(floats[float64](y), floats[float64](vs[0]), floats[float64](vs[1]))
	}
	return y, nil
}

func addInto[T Float](y, a, b []T) {
	parallelRange(len(y), 1<<14, func(lo, hi int) {
		yy, aa, bb := y[lo:hi], a[lo:hi], b[lo:hi]
		for i := range yy {
			yy[i] = aa[i] + bb[i]
		}
	})
}

func (op *addOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *addOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad, grad}, nil
}

// AddBias adds a Linear layer's bias b (out) to every row of x (N, out): Qwen2's q/k/v biases,
// attention_bias. Its backward op passes dy through as dx and sums dy's rows into db (in float64, in
// row order, so the result does not depend on scheduling).
func AddBias(x, b *G.Node) (*G.Node, error) {
	return G.ApplyOp(&biasOp{base: base{name: "ops.AddBias"}}, x, b)
}

type biasOp struct {
	base
	out buf
}

func (op *biasOp) Arity() int    { return 2 }
func (op *biasOp) Type() hm.Type { return fnType(floatT(2), floatT(1), floatT(2)) }

func (op *biasOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	x, b := sh[0], sh[1]
	if len(x) != 2 || len(b) != 1 || x[1] != b[0] {
		return nil, op.errorf("x %v and bias %v: want (N, out) and (out)", x, b)
	}
	return x.Clone(), nil
}

func (op *biasOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	y := op.out.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		addBiasRows(floats[float32](y), floats[float32](vs[0]), floats[float32](vs[1]))
	} else {
		addBiasRows(floats[float64](y), floats[float64](vs[0]), floats[float64](vs[1]))
	}
	return y, nil
}

func addBiasRows[T Float](y, x, b []T) {
	w := len(b)
	parallelRange(len(x)/w, max(1, 8192/w), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			yr, xr := y[i*w:(i+1)*w], x[i*w:(i+1)*w]
			for j := range yr {
				yr[j] = xr[j] + b[j]
			}
		}
	})
}

func (op *biasOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *biasOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	db, err := G.ApplyOp(&biasGradOp{base: base{name: "ops.AddBiasGrad"}}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{grad, db}, nil
}

// biasGradOp sums dy (N, out) over its rows: db (out).
type biasGradOp struct {
	base
	out buf
	acc []float64
}

func (op *biasGradOp) Arity() int    { return 1 }
func (op *biasGradOp) Type() hm.Type { return fnType(floatT(2), floatT(1)) }
func (op *biasGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	dy, err := shapeOf(ds[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	return tensor.Shape{dy[1]}, nil
}

func (op *biasGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	w := vs[0].Shape()[1]
	db := op.out.get(dt, w)
	if len(op.acc) != w {
		op.acc = make([]float64, w)
	}
	if dt == tensor.Float32 {
		sumRows(floats[float32](db), floats[float32](vs[0]), op.acc)
	} else {
		sumRows(floats[float64](db), floats[float64](vs[0]), op.acc)
	}
	return db, nil
}

func sumRows[T Float](db, dy []T, acc []float64) {
	clear(acc)
	w := len(db)
	for i := 0; i < len(dy); i += w {
		for j, v := range dy[i : i+w] {
			acc[j] += float64(v)
		}
	}
	for j, v := range acc {
		db[j] = T(v)
	}
}
