package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Scale multiplies x by the constant c elementwise (the LM head's 1/temperature: logits/T =
// head(h/T), as TRL's PPOTrainer divides the logits by the sampling temperature). Its gradient is
// Scale(dy, c).
func Scale(x *G.Node, c float64) (*G.Node, error) {
	if math.IsNaN(c) || math.IsInf(c, 0) {
		return nil, fmt.Errorf("ops.Scale: factor %v is not finite", c)
	}
	return G.ApplyOp(&scaleOp{base: base{name: fmt.Sprintf("ops.Scale(%g)", c)}, c: c}, x)
}

type scaleOp struct {
	base
	c   float64
	out buf
}

func (op *scaleOp) Arity() int    { return 1 }
func (op *scaleOp) Type() hm.Type { return fnType(tvA, tvA) }
func (op *scaleOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(ds[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	return s.Clone(), nil
}

func (op *scaleOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	y := op.out.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		scaleInto(floats[float32](y), floats[float32](vs[0]), float32(op.c))
	} else {
		scaleInto(floats[float64](y), floats[float64](vs[0]), op.c)
	}
	return y, nil
}

func scaleInto[T Float](y, x []T, c T) {
	parallelRange(len(y), 1<<14, func(lo, hi int) {
		yy, xx := y[lo:hi], x[lo:hi]
		for i := range yy {
			yy[i] = c * xx[i]
		}
	})
}

func (op *scaleOp) DiffWRT(int) []bool { return []bool{true} }
func (op *scaleOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	d, err := Scale(grad, op.c)
	return G.Nodes{d}, err
}
