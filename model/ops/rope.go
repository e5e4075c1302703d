package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MaxRoPEPosition bounds the positions RoPE accepts; its cos/sin table grows to the largest position
// seen, so the bound also bounds that table.
const MaxRoPEPosition = 1 << 20

// RoPE holds rotary-embedding settings and a cos/sin table shared by every RoPE op of one graph.
// The layout is HF's rotate-half: in each head of HeadDim values, element i (i < HeadDim/2) pairs
// with element i+HeadDim/2 and both turn by the angle pos·invFreq[i] (Theta^(−2i/HeadDim) unscaled). Angles are computed
// in float64.
type RoPE struct {
	HeadDim int

	invFreq  []float64 // (HeadDim/2): the angle per position of each pair
	cos, sin []float64 // (positions, HeadDim/2)
}

// NewRoPE validates the settings: pair i turns by pos·theta^(−2i/headDim).
func NewRoPE(theta float64, headDim int) (*RoPE, error) {
	if !(theta > 0) {
		return nil, fmt.Errorf("ops.RoPE: theta %g must be positive", theta)
	}
	if headDim <= 0 || headDim%2 != 0 {
		return nil, fmt.Errorf("ops.RoPE: head_dim %d must be positive and even", headDim)
	}
	inv := make([]float64, headDim/2)
	for i := range inv {
		inv[i] = math.Pow(theta, -float64(2*i)/float64(headDim))
	}
	return &RoPE{HeadDim: headDim, invFreq: inv}, nil
}

// NewRoPEFreqs is RoPE with given inverse frequencies (HeadDim/2 of them): pair i turns by
// pos·invFreq[i]. Scaled RoPE (Llama 3's rope_scaling) is this with model.Config.InvFreq.
func NewRoPEFreqs(invFreq []float64) (*RoPE, error) {
	if len(invFreq) == 0 {
		return nil, fmt.Errorf("ops.RoPE: no frequencies")
	}
	for i, f := range invFreq {
		if !(f > 0) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("ops.RoPE: inverse frequency %d is %g, want a positive finite number", i, f)
		}
	}
	return &RoPE{HeadDim: 2 * len(invFreq), invFreq: append([]float64(nil), invFreq...)}, nil
}

// grow extends the table to cover position p.
func (r *RoPE) grow(p int) {
	half := r.HeadDim / 2
	have := len(r.cos) / half
	if p < have {
		return
	}
	n := max(p+1, 2*have)
	for pos := have; pos < n; pos++ {
		for _, inv := range r.invFreq {
			s, c := math.Sincos(float64(pos) * inv)
			r.cos = append(r.cos, c)
			r.sin = append(r.sin, s)
		}
	}
}

// Apply rotates x (N, heads·HeadDim) by the positions (N) (Int32).
func (r *RoPE) Apply(x, positions *G.Node) (*G.Node, error) {
	return G.ApplyOp(&ropeOp{base: base{name: "ops.RoPE"}, r: r}, x, positions)
}

type ropeOp struct {
	base
	r       *RoPE
	inverse bool // the backward op: rotate by −angle
	out     buf
}

func (op *ropeOp) Arity() int    { return 2 }
func (op *ropeOp) Type() hm.Type { return fnType(floatT(2), intT(1), floatT(2)) }

func (op *ropeOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	x, p := sh[0], sh[1]
	if len(x) != 2 || len(p) != 1 || x[0] != p[0] || x[1]%op.r.HeadDim != 0 {
		return nil, op.errorf("x %v and positions %v: want (N, heads·%d) and (N)", x, p, op.r.HeadDim)
	}
	return x.Clone(), nil
}

func (op *ropeOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	pos, err := int32s(vs[1])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	maxPos := 0
	for i, p := range pos {
		if p < 0 || p > MaxRoPEPosition {
			return nil, op.errorf("position %d at row %d is outside 0..%d", p, i, MaxRoPEPosition)
		}
		maxPos = max(maxPos, int(p))
	}
	op.r.grow(maxPos)
	n, width := vs[0].Shape()[0], vs[0].Shape()[1]
	y := op.out.get(dt, n, width)
	sign := 1.0
	if op.inverse {
		sign = -1
	}
	if dt == tensor.Float32 {
		ropeKernel(floats[float32](y), floats[float32](vs[0]), pos, width, op.r, sign)
	} else {
		ropeKernel(floats[float64](y), floats[float64](vs[0]), pos, width, op.r, sign)
	}
	return y, nil
}

func ropeKernel[T Float](y, x []T, pos []int32, width int, r *RoPE, sign float64) {
	half := r.HeadDim / 2
	parallelRange(len(pos), max(1, 4096/width), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			cs := r.cos[int(pos[i])*half : int(pos[i]+1)*half]
			sn := r.sin[int(pos[i])*half : int(pos[i]+1)*half]
			for h := 0; h < width; h += r.HeadDim {
				a, b := x[i*width+h:i*width+h+half], x[i*width+h+half:i*width+h+r.HeadDim]
				ya, yb := y[i*width+h:i*width+h+half], y[i*width+h+half:i*width+h+r.HeadDim]
				for k := 0; k < half; k++ {
					c, s := T(cs[k]), T(sign*sn[k])
					ya[k] = a[k]*c - b[k]*s
					yb[k] = b[k]*c + a[k]*s
				}
			}
		}
	})
}

func (op *ropeOp) DiffWRT(int) []bool { return []bool{true, false} }

// SymDiff: a rotation's transpose is the rotation by the opposite angle.
func (op *ropeOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&ropeOp{base: base{name: "ops.RoPEGrad"}, r: op.r, inverse: !op.inverse}, grad, inputs[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, nil}, nil
}
