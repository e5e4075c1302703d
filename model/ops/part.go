package ops

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// partOp returns one more gradient that a backward op computed alongside its own output. Its only
// input is that backward op's output, which makes Gorgonia run it afterwards; the value is the
// tensor the backward op kept.
type partOp struct {
	base
	inDims int
	shape  tensor.Shape
	get    func() *tensor.Dense
}

func newPart(name string, primary *G.Node, shape tensor.Shape, get func() *tensor.Dense) (*G.Node, error) {
	return G.ApplyOp(&partOp{base: base{name: name}, inDims: primary.Dims(), shape: shape.Clone(), get: get}, primary)
}

func (op *partOp) Arity() int    { return 1 }
func (op *partOp) Type() hm.Type { return fnType(floatT(op.inDims), floatT(len(op.shape))) }
func (op *partOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}

func (op *partOp) Do(vs ...G.Value) (G.Value, error) {
	t := op.get()
	if t == nil {
		return nil, op.errorf("the backward op that computes this gradient has not run")
	}
	if !t.Shape().Eq(op.shape) {
		return nil, op.errorf("kept gradient has shape %v, want %v", t.Shape(), op.shape)
	}
	return t, nil
}
