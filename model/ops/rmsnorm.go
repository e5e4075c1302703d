package ops

import (
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// RMSNorm is Llama's norm over the last axis: y = x · r · w with r = 1/sqrt(mean(x²) + eps), for
// x (N, D) and w (D). A w of G values with D a multiple of G normalises each group of G consecutive
// values on its own: Qwen3's per-head q/k norm, x (N, heads·hd) with w (hd), is x viewed as
// (N·heads, hd). Sums run in float64. The backward op returns dx and keeps dw:
//
//	dx_j = r·(w_j·dy_j − x_j·r²/D · Σ_d w_d·dy_d·x_d),   dw_d = Σ_n dy_nd·x_nd·r_n.
func RMSNorm(x, w *G.Node, eps float64) (*G.Node, error) {
	return G.ApplyOp(&rmsNormOp{base: base{name: "ops.RMSNorm"}, eps: eps}, x, w)
}

type rmsNormOp struct {
	base
	eps float64
	out buf
}

func (op *rmsNormOp) Arity() int    { return 2 }
func (op *rmsNormOp) Type() hm.Type { return fnType(floatT(2), floatT(1), floatT(2)) }

func (op *rmsNormOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	x, w := sh[0], sh[1]
	if len(x) != 2 || len(w) != 1 || w[0] == 0 || x[1]%w[0] != 0 {
		return nil, op.errorf("x %v and weight %v: want (N, D) and (D), or (G) with D a multiple of G", x, w)
	}
	return x.Clone(), nil
}

func (op *rmsNormOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	n, d := groups(vs[0].Shape(), vs[1].Shape())
	y := op.out.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		rmsNormFwd(floats[float32](y), floats[float32](vs[0]), floats[float32](vs[1]), n, d, op.eps)
	} else {
		rmsNormFwd(floats[float64](y), floats[float64](vs[0]), floats[float64](vs[1]), n, d, op.eps)
	}
	return y, nil
}

func rstd[T Float](x []T, eps float64) float64 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return 1 / math.Sqrt(ss/float64(len(x))+eps)
}

func rmsNormFwd[T Float](y, x, w []T, n, d int, eps float64) {
	parallelRange(n, max(1, 8192/max(d, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr, yr := x[i*d:(i+1)*d], y[i*d:(i+1)*d]
			r := T(rstd(xr, eps))
			for j := range yr {
				yr[j] = xr[j] * r * w[j]
			}
		}
	})
}

func (op *rmsNormOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *rmsNormOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &rmsNormGradOp{base: base{name: "ops.RMSNormGrad"}, eps: op.eps}
	dx, err := G.ApplyOp(bw, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	dw, err := newPart("ops.RMSNormGradW", dx, inputs[1].Shape(), func() *tensor.Dense { return bw.dw.t })
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw}, nil
}

// rmsNormGradOp takes x, w, dy; it returns dx and keeps dw.
type rmsNormGradOp struct {
	base
	eps     float64
	out, dw buf
	parts   scratch[float64]
}

func (op *rmsNormGradOp) Arity() int    { return 3 }
func (op *rmsNormGradOp) Type() hm.Type { return fnType(floatT(2), floatT(1), floatT(2), floatT(2)) }
func (op *rmsNormGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	x, _ := shapeOf(ds[0])
	return x.Clone(), nil
}

func (op *rmsNormGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	n, d := groups(vs[0].Shape(), vs[1].Shape())
	dx := op.out.get(dt, vs[0].Shape()...)
	dw := op.dw.get(dt, d)
	if dt == tensor.Float32 {
		rmsNormBwd(floats[float32](dx), floats[float32](dw), floats[float32](vs[0]), floats[float32](vs[1]), floats[float32](vs[2]), n, d, op.eps, &op.parts)
	} else {
		rmsNormBwd(floats[float64](dx), floats[float64](dw), floats[float64](vs[0]), floats[float64](vs[1]), floats[float64](vs[2]), n, d, op.eps, &op.parts)
	}
	return dx, nil
}

func rmsNormBwd[T Float](dx, dw, x, w, dy []T, n, d int, eps float64, parts *scratch[float64]) {
	// Each chunk of rows sums its own dw in float64; the chunks are added afterwards in order, so the
	// result does not depend on scheduling.
	chunks := max(1, min(workers(), n/max(1, 8192/max(d, 1))))
	per := (n + chunks - 1) / chunks
	for c := 0; c < chunks; c++ {
		clear(parts.get(c, d))
	}
	parallelItems(chunks, func(_, c int) {
		pw := parts.get(c, d)
		for i := c * per; i < min(n, (c+1)*per); i++ {
			xr, dyr, dxr := x[i*d:(i+1)*d], dy[i*d:(i+1)*d], dx[i*d:(i+1)*d]
			r := rstd(xr, eps)
			var dot float64
			for j := range xr {
				dot += float64(w[j]) * float64(dyr[j]) * float64(xr[j])
				pw[j] += float64(dyr[j]) * float64(xr[j]) * r
			}
			k := T(r * r * r * dot / float64(d))
			rt := T(r)
			for j := range dxr {
				dxr[j] = rt*w[j]*dyr[j] - xr[j]*k
			}
		}
	})
	for j := range dw {
		var s float64
		for c := 0; c < chunks; c++ {
			s += parts.get(c, d)[j]
		}
		dw[j] = T(s)
	}
}

// groups views x (N, D) normalised by w (G) as (N·D/G, G) rows.
func groups(x, w tensor.Shape) (rows, width int) {
	return x[0] * x[1] / w[0], w[0]
}
