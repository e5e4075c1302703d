package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MixExperts is the dense form of the experts' weighted sum: combination weights c (N, E) from
// Route and each expert's output over every token y_e (N, D) give y (N, D) = Σ_e c[:, e] ⊙ y_e.
// The graph uses it where an expert's projections are not plain trainable matrices (LoRA adapters,
// frozen bases): every expert then runs on every token (E/k times Experts' work) and the rows an
// expert did not get are weighted by 0, so the value is Experts' own. Its backward gives
// dc[:, e] = rowwise ⟨dy, y_e⟩ (Route's backward multiplies it by c, so it need not be 0 where c
// is) and dy_e = c[:, e] ⊙ dy.
func MixExperts(combine *G.Node, ys []*G.Node) (*G.Node, error) {
	if len(ys) == 0 || combine.Dims() != 2 || combine.Shape()[1] != len(ys) {
		return nil, fmt.Errorf("ops.MixExperts: combination weights %v for %d expert outputs (want (N, E) with E = %d)", combine.Shape(), len(ys), len(ys))
	}
	return G.ApplyOp(&mixOp{base: base{name: "ops.MixExperts"}, e: len(ys)}, append(G.Nodes{combine}, ys...)...)
}

type mixOp struct {
	base
	e   int
	out buf
}

func (op *mixOp) Arity() int { return op.e + 1 }
func (op *mixOp) Type() hm.Type {
	ts := make([]hm.Type, op.Arity()+1)
	for i := range ts {
		ts[i] = floatT(2)
	}
	return fnType(ts...)
}

func (op *mixOp) check(sh []tensor.Shape) error {
	c := sh[0]
	if len(c) != 2 || c[1] != op.e {
		return op.errorf("combination weights %v, want (N, %d)", c, op.e)
	}
	for e, s := range sh[1:] {
		if len(s) != 2 || s[0] != c[0] || !s.Eq(sh[1]) {
			return op.errorf("expert %d output %v, want (%d, D) as expert 0's %v", e, s, c[0], sh[1])
		}
	}
	return nil
}

func (op *mixOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	if err := op.check(sh); err != nil {
		return nil, err
	}
	return sh[1].Clone(), nil
}

func shapesOf(vs []G.Value) []tensor.Shape {
	sh := make([]tensor.Shape, len(vs))
	for i, v := range vs {
		sh[i] = v.Shape()
	}
	return sh
}

func (op *mixOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if err := op.check(shapesOf(vs)); err != nil {
		return nil, err
	}
	y := op.out.get(dt, vs[1].Shape()...)
	if dt == tensor.Float32 {
		mixFwd(floats[float32](y), vs, op.e)
	} else {
		mixFwd(floats[float64](y), vs, op.e)
	}
	return y, nil
}

func mixFwd[T Float](y []T, vs []G.Value, E int) {
	c := floats[T](vs[0])
	d := vs[1].Shape()[1]
	parallelRange(len(y)/d, max(1, 4096/d), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst := y[i*d : (i+1)*d]
			clear(dst)
			for e := 0; e < E; e++ { // in expert order, as Experts sums
				w := c[i*E+e]
				if w == 0 {
					continue
				}
				src := floats[T](vs[1+e])[i*d : (i+1)*d]
				for k := range dst {
					dst[k] += w * src[k]
				}
			}
		}
	})
}

func (op *mixOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

func (op *mixOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &mixGradOp{base: base{name: "ops.MixExpertsGrad"}, e: op.e, dys: make([]buf, op.e)}
	dc, err := G.ApplyOp(bw, append(append(G.Nodes{}, inputs...), grad)...)
	if err != nil {
		return nil, err
	}
	out := G.Nodes{dc}
	for e := 0; e < op.e; e++ {
		slot := &bw.dys[e]
		p, err := newPart(fmt.Sprintf("ops.MixExpertsGradY%d", e), dc, inputs[1+e].Shape(), func() *tensor.Dense { return slot.t })
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// mixGradOp takes c, every y_e and dy; it returns dc and keeps each dy_e.
type mixGradOp struct {
	base
	e   int
	dc  buf
	dys []buf
}

func (op *mixGradOp) Arity() int { return op.e + 2 }
func (op *mixGradOp) Type() hm.Type {
	ts := make([]hm.Type, op.Arity()+1)
	for i := range ts {
		ts[i] = floatT(2)
	}
	return fnType(ts...)
}
func (op *mixGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(ds[0])
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

func (op *mixGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if !vs[len(vs)-1].Shape().Eq(vs[1].Shape()) {
		return nil, op.errorf("dy %v, want %v", vs[len(vs)-1].Shape(), vs[1].Shape())
	}
	dc := op.dc.get(dt, vs[0].Shape()...)
	for e := range op.dys {
		op.dys[e].get(dt, vs[1].Shape()...)
	}
	if dt == tensor.Float32 {
		mixBwd(op, floats[float32](dc), vs)
	} else {
		mixBwd(op, floats[float64](dc), vs)
	}
	return dc, nil
}

func mixBwd[T Float](op *mixGradOp, dc []T, vs []G.Value) {
	E := op.e
	c, dy := floats[T](vs[0]), floats[T](vs[len(vs)-1])
	d := vs[1].Shape()[1]
	parallelRange(len(dy)/d, max(1, 4096/d), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := dy[i*d : (i+1)*d]
			for e := 0; e < E; e++ {
				w := c[i*E+e]
				y := floats[T](vs[1+e])[i*d : (i+1)*d]
				dst := floats[T](op.dys[e].t)[i*d : (i+1)*d]
				var dot float64
				for k := range g {
					dot += float64(g[k]) * float64(y[k])
					dst[k] = w * g[k]
				}
				dc[i*E+e] = T(dot)
			}
		}
	})
}
