package ops

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/alignkit/alignkit/model/ops/internal/vecmath"
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
	// sig keeps σ(gate) from the forward pass once the op is differentiated, so that the backward
	// pass computes no exp.
	keep bool
	sig  buf
}

func (op *swigluOp) Arity() int    { return 2 }
func (op *swigluOp) Type() hm.Type { return fnType(floatT(2), floatT(2), floatT(2)) }

func (op *swigluOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	a, b := sh[0], sh[1]
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
	var sig *tensor.Dense
	if op.keep {
		sig = op.sig.get(dt, vs[0].Shape()...)
	}
	if dt == tensor.Float32 {
		swigluFwd(floats[float32](y), floats[float32](vs[0]), floats[float32](vs[1]), denseData[float32](sig))
	} else {
		swigluFwd(floats[float64](y), floats[float64](vs[0]), floats[float64](vs[1]), denseData[float64](sig))
	}
	return y, nil
}

// swigluFwd writes silu(g)·u to y and, when sig is not nil, σ(g) to sig.
func swigluFwd[T Float](y, g, u, sig []T) {
	parallelRange(len(y), 1<<13, func(lo, hi int) {
		if y32, ok := any(y).([]float32); ok {
			g32, u32 := any(g).([]float32), any(u).([]float32)
			s32, _ := any(sig).([]float32)
			var sv []float32
			if s32 != nil {
				sv = s32[lo:hi]
			}
			lo += vecmath.SwiGLU(y32[lo:hi], g32[lo:hi], u32[lo:hi], sv)
			for i := lo; i < hi; i++ {
				s := 1 / (1 + expf(-g32[i])) // expf overflows to +Inf: σ = 0
				y32[i] = g32[i] * s * u32[i]
				if s32 != nil {
					s32[i] = s
				}
			}
			return
		}
		for i := lo; i < hi; i++ {
			s := sigmoid(g[i])
			y[i] = g[i] * s * u[i]
			if sig != nil {
				sig[i] = s
			}
		}
	})
}

func (op *swigluOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *swigluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	op.keep = true
	bw := &swigluGradOp{base: base{name: "ops.SwiGLUGrad"}, fwd: op}
	dg, err := G.ApplyOp(bw, inputs[0], inputs[1], output, grad)
	if err != nil {
		return nil, err
	}
	du, err := newPart("ops.SwiGLUGradUp", dg, inputs[1].Shape(), func() *tensor.Dense { return bw.du.t })
	if err != nil {
		return nil, err
	}
	return G.Nodes{dg, du}, nil
}

// swigluGradOp takes gate, up, the forward output (which orders it after the forward op, whose σ it
// reads) and dy; it returns dgate and keeps dup.
type swigluGradOp struct {
	base
	fwd    *swigluOp
	dg, du buf
}

func (op *swigluGradOp) Arity() int { return 4 }
func (op *swigluGradOp) Type() hm.Type {
	return fnType(floatT(2), floatT(2), floatT(2), floatT(2), floatT(2))
}
func (op *swigluGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	a, _ := shapeOf(ds[0])
	return a.Clone(), nil
}

func (op *swigluGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	sig := op.fwd.sig.t
	if sig == nil || !sig.Shape().Eq(vs[0].Shape()) || sig.Dtype() != dt {
		return nil, op.errorf("the forward op did not keep σ(gate)")
	}
	dg := op.dg.get(dt, vs[0].Shape()...)
	du := op.du.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		swigluBwd(floats[float32](dg), floats[float32](du), floats[float32](vs[0]), floats[float32](vs[1]), floats[float32](vs[3]), floats[float32](sig))
	} else {
		swigluBwd(floats[float64](dg), floats[float64](du), floats[float64](vs[0]), floats[float64](vs[1]), floats[float64](vs[3]), floats[float64](sig))
	}
	return dg, nil
}

// swigluBwd computes both input gradients; sig is σ(g), or nil to compute it here.
func swigluBwd[T Float](dg, du, g, u, dy, sig []T) {
	parallelRange(len(dg), 1<<13, func(lo, hi int) {
		if dg32, ok := any(dg).([]float32); ok {
			du32, g32, u32, dy32 := any(du).([]float32), any(g).([]float32), any(u).([]float32), any(dy).([]float32)
			s32, _ := any(sig).([]float32)
			for i := lo; i < hi; i++ {
				var s float32
				if s32 != nil {
					s = s32[i]
				} else {
					s = 1 / (1 + expf(-g32[i]))
				}
				du32[i] = dy32[i] * g32[i] * s
				dg32[i] = dy32[i] * u32[i] * s * (1 + g32[i]*(1-s))
			}
			return
		}
		for i := lo; i < hi; i++ {
			var s T
			if sig != nil {
				s = sig[i]
			} else {
				s = sigmoid(g[i])
			}
			du[i] = dy[i] * g[i] * s
			dg[i] = dy[i] * u[i] * s * (1 + g[i]*(1-s))
		}
	})
}
