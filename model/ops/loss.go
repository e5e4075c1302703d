package ops

import (
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LossFunc is a loss written in plain Go: it receives the current values of the loss op's inputs
// (each flattened to float64, in input order) and returns the scalar loss and dLoss/dInput for every
// input (same lengths). The slices it receives are reused between runs; it must not keep them.
type LossFunc func(inputs [][]float64) (loss float64, grads [][]float64, err error)

// ExternalLoss is a scalar op whose forward calls fn and whose backward returns fn's gradients
// times the upstream gradient, so that SFT, reward and DPO losses live in their own packages while
// the graph stays in package model. A non-finite loss is an error, raised before any backward op
// runs.
func ExternalLoss(fn LossFunc, inputs ...*G.Node) (*G.Node, error) {
	op := &externalLossOp{base: base{name: "ops.ExternalLoss"}, fn: fn}
	for _, in := range inputs {
		op.dims = append(op.dims, in.Dims())
	}
	return G.ApplyOp(op, inputs...)
}

type externalLossOp struct {
	base
	fn    LossFunc
	dims  []int
	in    [][]float64
	grads [][]float64
}

func (op *externalLossOp) Arity() int { return len(op.dims) }
func (op *externalLossOp) Type() hm.Type {
	ts := make([]hm.Type, 0, len(op.dims)+1)
	for _, d := range op.dims {
		ts = append(ts, floatT(d))
	}
	return fnType(append(ts, tvA)...)
}
func (op *externalLossOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

func (op *externalLossOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if len(op.in) != len(vs) {
		op.in = make([][]float64, len(vs))
	}
	for i, v := range vs {
		n := v.Shape().TotalSize()
		if cap(op.in[i]) < n {
			op.in[i] = make([]float64, n)
		}
		op.in[i] = op.in[i][:n]
		if dt == tensor.Float32 {
			for j, x := range floats[float32](v) {
				op.in[i][j] = float64(x)
			}
		} else {
			copy(op.in[i], floats[float64](v))
		}
	}
	loss, grads, err := op.fn(op.in)
	if err != nil {
		return nil, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, op.errorf("loss is %g", loss)
	}
	if len(grads) != len(vs) {
		return nil, op.errorf("the loss function returned %d gradients for %d inputs", len(grads), len(vs))
	}
	for i, g := range grads {
		if len(g) != len(op.in[i]) {
			return nil, op.errorf("the loss function's gradient %d has %d values, its input has %d", i, len(g), len(op.in[i]))
		}
	}
	op.grads = grads
	if dt == tensor.Float32 {
		return G.NewF32(float32(loss)), nil
	}
	return G.NewF64(loss), nil
}

func (op *externalLossOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

func (op *externalLossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	out := make(G.Nodes, len(inputs))
	for i, in := range inputs {
		n, err := G.ApplyOp(&externalLossGradOp{base: base{name: "ops.ExternalLossGrad"}, fwd: op, i: i, shape: in.Shape().Clone()}, grad, output)
		if err != nil {
			return nil, err
		}
		if s, ok := in.Op().(*checkpointSideOp); ok {
			s.grad = n // a checkpointed segment's side output: its backward op takes this gradient
		}
		out[i] = n
	}
	return out, nil
}

// externalLossGradOp is input i's gradient: the loss function's dLoss/dInput_i times the upstream
// scalar. Its second input, the loss itself, orders it after the forward op.
type externalLossGradOp struct {
	base
	fwd   *externalLossOp
	i     int
	shape tensor.Shape
	out   buf
}

func (op *externalLossGradOp) Arity() int    { return 2 }
func (op *externalLossGradOp) Type() hm.Type { return fnType(tvA, tvA, floatT(len(op.shape))) }
func (op *externalLossGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}

func (op *externalLossGradOp) Do(vs ...G.Value) (G.Value, error) {
	up, err := scalarOf(vs[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if op.fwd.grads == nil {
		return nil, op.errorf("the loss has not run")
	}
	g := op.fwd.grads[op.i]
	out := op.out.get(vs[0].Dtype(), op.shape...)
	switch d := out.Data().(type) {
	case []float32:
		for j := range d {
			d[j] = float32(g[j] * up)
		}
	case []float64:
		for j := range d {
			d[j] = g[j] * up
		}
	default:
		return nil, op.errorf("dtype %v is not supported", vs[0].Dtype())
	}
	return out, nil
}
