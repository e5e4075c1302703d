package ops

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// SwiGLU is silu(gate)·up elementwise for gate and up of one shape (N, F), with
// silu(g) = g·σ(g). The backward op returns dgate = dy·up·σ(g)·(1 + g·(1−σ(g))) and keeps
// dup = dy·silu(g).
func SwiGLU(gate, up *G.Node) (*G.Node, error) {
	return G.ApplyOp(&swigluOp{base: base{name: "ops.SwiGLU"}}, gate, up)
}

type swigluOp struct {
	base
	out buf
}

func (op *swigluOp) Arity() int    { return 2 }
func (op *swigluOp) Type() hm.Type { return fnType(floatT(2), floatT(2), floatT(2)) }

func (op *swigluOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	a, err := shapeOf(ds[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	b, err := shapeOf(ds[1])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if len(a) != 2 || !a.Eq(b) {
		return nil, op.errorf("gate %v and up %v: want one (N, F) shape", a, b)
	}
	return a.Clone(), nil
}

func (op *swigluOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	y := op.out.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		swigluFwd(floats[float32](y), floats[float32](vs[0]), floats[float32](vs[1]))
	} else {
		swigluFwd(floats[float64](y), floats[float64](vs[0]), floats[float64](vs[1]))
	}
	return y, nil
}

func swigluFwd[T Float](y, g, u []T) {
	parallelRange(len(y), 1<<13, func(lo, hi int) {
		if y32, ok := any(y).([]float32); ok {
			g32, u32 := any(g).([]float32), any(u).([]float32)
			for i := lo; i < hi; i++ {
				y32[i] = g32[i] / (1 + expf(-g32[i])) * u32[i] // expf overflows to +Inf: σ = 0
			}
			return
		}
		for i := lo; i < hi; i++ {
			y[i] = g[i] * sigmoid(g[i]) * u[i]
		}
	})
}

func (op *swigluOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *swigluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &swigluGradOp{base: base{name: "ops.SwiGLUGrad"}}
	dg, err := G.ApplyOp(bw, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	du, err := newPart("ops.SwiGLUGradUp", dg, inputs[1].Shape(), func() *tensor.Dense { return bw.du.t })
	if err != nil {
		return nil, err
	}
	return G.Nodes{dg, du}, nil
}

type swigluGradOp struct {
	base
	dg, du buf
}

func (op *swigluGradOp) Arity() int    { return 3 }
func (op *swigluGradOp) Type() hm.Type { return fnType(floatT(2), floatT(2), floatT(2), floatT(2)) }
func (op *swigluGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	a, _ := shapeOf(ds[0])
	return a.Clone(), nil
}

func (op *swigluGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	dg := op.dg.get(dt, vs[0].Shape()...)
	du := op.du.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		swigluBwd(floats[float32](dg), floats[float32](du), floats[float32](vs[0]), floats[float32](vs[1]), floats[float32](vs[2]))
	} else {
		swigluBwd(floats[float64](dg), floats[float64](du), floats[float64](vs[0]), floats[float64](vs[1]), floats[float64](vs[2]))
	}
	return dg, nil
}

func swigluBwd[T Float](dg, du, g, u, dy []T) {
	parallelRange(len(dg), 1<<13, func(lo, hi int) {
		if dg32, ok := any(dg).([]float32); ok {
			du32, g32, u32, dy32 := any(du).([]float32), any(g).([]float32), any(u).([]float32), any(dy).([]float32)
			for i := lo; i < hi; i++ {
				s := 1 / (1 + expf(-g32[i]))
				du32[i] = dy32[i] * g32[i] * s
				dg32[i] = dy32[i] * u32[i] * s * (1 + g32[i]*(1-s))
			}
			return
		}
		for i := lo; i < hi; i++ {
			s := sigmoid(g[i])
			du[i] = dy[i] * g[i] * s
			dg[i] = dy[i] * u[i] * s * (1 + g[i]*(1-s))
		}
	})
}
