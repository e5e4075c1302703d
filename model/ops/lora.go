package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LoRASpec fixes a LoRA adapter's constants.
type LoRASpec struct {
	// Scale is PEFT's scaling: lora_alpha/r, or lora_alpha/√r with rsLoRA.
	Scale float64
	// Dropout is lora_dropout: the probability of zeroing an element of the adapter's input (the
	// kept ones are scaled by 1/(1−p), as torch.nn.Dropout). 0 disables it.
	Dropout float64
	// Seed and Key (one per adapted layer), both read at every run, choose the dropout mask:
	// element j of the input is dropped iff DropMask(*Seed, *Key, j) is false. Nil means 0. Key is
	// a pointer so that one op in a checkpointed layer's template serves every layer's key.
	Seed *uint64
	Key  *uint64
}

// LoRA is the adapter's contribution to a linear layer, as PEFT's lora.Linear computes it:
//
//	y (N, out) = Scale · (dropout(x) (N, in) · Aᵀ (in, r)) · Bᵀ (r, out)
//
// for A (r, in) and B (out, r) in torch's layout. The base product x·Wᵀ is a separate FrozenLinear;
// the graph adds the two. Its backward gives dx, dA and dB in one op (dA and dB through part ops).
func LoRA(x, a, b *G.Node, spec LoRASpec) (*G.Node, error) {
	if !(spec.Dropout >= 0 && spec.Dropout < 1) {
		return nil, fmt.Errorf("ops.LoRA: dropout %g is outside [0, 1)", spec.Dropout)
	}
	if math.IsNaN(spec.Scale) || math.IsInf(spec.Scale, 0) {
		return nil, fmt.Errorf("ops.LoRA: scale %g is not finite", spec.Scale)
	}
	return G.ApplyOp(&loraOp{base: base{name: "ops.LoRA"}, spec: spec}, x, a, b)
}

// LoRADown is the adapter's down-projection alone, with the same dropout as LoRA:
//
//	u (N, r) = dropout(x) (N, in) · Aᵀ (in, r)
//
// for an op that applies B itself (FrozenHeadLoRALogProbs: Scale·u·Bᵀ chunk by chunk, so that a
// LoRA-adapted LM head never holds its (N, V) product). spec.Scale is not applied here. Its
// backward gives dx and dA (through a part op).
func LoRADown(x, a *G.Node, spec LoRASpec) (*G.Node, error) {
	if !(spec.Dropout >= 0 && spec.Dropout < 1) {
		return nil, fmt.Errorf("ops.LoRADown: dropout %g is outside [0, 1)", spec.Dropout)
	}
	return G.ApplyOp(&loraOp{base: base{name: "ops.LoRADown"}, spec: spec, down: true}, x, a)
}

// DropMask reports whether element j of a LoRA input survives dropout with probability p, for a
// run's seed and a layer's key: a pure function, so a resumed run draws the same masks.
func DropMask(seed, key uint64, j int, p float64) bool {
	z := seed ^ (key * 0x9e3779b97f4a7c15) ^ (uint64(j) * 0xbf58476d1ce4e5b9)
	// splitmix64's finaliser: every input bit reaches every output bit.
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11)/(1<<53) >= p
}

type loraOp struct {
	base
	spec LoRASpec
	// down: LoRADown, whose inputs are x and A and whose output is t (N, r) itself.
	down bool
	out  buf
	// From the last forward run: the dropped input xd (N, in) (only when Dropout > 0; else x itself
	// is read), the mask as 0 or 1/(1−p) factors, and t = xd·Aᵀ (N, r).
	xd, mask, t buf
	ran         bool
}

func (op *loraOp) Arity() int {
	if op.down {
		return 2
	}
	return 3
}

func (op *loraOp) Type() hm.Type {
	if op.down {
		return fnType(floatT(2), floatT(2), floatT(2))
	}
	return fnType(floatT(2), floatT(2), floatT(2), floatT(2))
}

// checkShapes checks x, A and (unless down) B; b is nil for LoRADown.
func (op *loraOp) checkShapes(x, a, b tensor.Shape) error {
	if op.down {
		if len(x) != 2 || len(a) != 2 || a[1] != x[1] {
			return op.errorf("x %v and A %v do not match (want (N, in), (r, in))", x, a)
		}
		return nil
	}
	if len(x) != 2 || len(a) != 2 || len(b) != 2 || a[1] != x[1] || b[1] != a[0] {
		return op.errorf("x %v, A %v and B %v do not match (want (N, in), (r, in), (out, r))", x, a, b)
	}
	return nil
}

// shapeArgs are the x, A and B (nil for LoRADown) of shapes or values by position.
func shapeArgs[V any](op *loraOp, vs []V) (x, a, b V) {
	if !op.down {
		b = vs[2]
	}
	return vs[0], vs[1], b
}

func (op *loraOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	x, a, b := shapeArgs(op, sh)
	if err := op.checkShapes(x, a, b); err != nil {
		return nil, err
	}
	if op.down {
		return tensor.Shape{x[0], a[0]}, nil
	}
	return tensor.Shape{x[0], b[0]}, nil
}

func (op *loraOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	x, a, b := shapeArgs(op, vs)
	var bs tensor.Shape
	if b != nil {
		bs = b.Shape()
	}
	xs, as := x.Shape(), a.Shape()
	if err := op.checkShapes(xs, as, bs); err != nil {
		return nil, err
	}
	var y *tensor.Dense
	if op.down {
		y = op.t.get(dt, xs[0], as[0]) // the output is t itself
	} else {
		y = op.out.get(dt, xs[0], bs[0])
	}
	if dt == tensor.Float32 {
		loraFwd[float32](op, floats[float32](y), vs)
	} else {
		loraFwd[float64](op, floats[float64](y), vs)
	}
	op.ran = true
	return y, nil
}

func loraFwd[T Float](op *loraOp, y []T, vs []G.Value) {
	n, in := vs[0].Shape()[0], vs[0].Shape()[1]
	r := vs[1].Shape()[0]
	dt := vs[0].Dtype()
	x, a := floats[T](vs[0]), floats[T](vs[1])
	xd := x
	if p := op.spec.Dropout; p > 0 {
		var seed, key uint64
		if op.spec.Seed != nil {
			seed = *op.spec.Seed
		}
		if op.spec.Key != nil {
			key = *op.spec.Key
		}
		mask, dst := floats[T](op.mask.get(dt, n, in)), floats[T](op.xd.get(dt, n, in))
		keep := T(1 / (1 - p))
		parallelRange(len(x), 1<<14, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				m := T(0)
				if DropMask(seed, key, j, p) {
					m = keep
				}
				mask[j], dst[j] = m, m*x[j]
			}
		})
		xd = dst
	}
	t := floats[T](op.t.get(dt, n, r)) // y itself for LoRADown
	matmul(false, true, n, r, in, 1, xd, in, a, in, 0, t, r)
	if !op.down {
		out := vs[2].Shape()[0]
		matmul(false, true, n, out, r, T(op.spec.Scale), t, r, floats[T](vs[2]), r, 0, y, out)
	}
}

func (op *loraOp) DiffWRT(int) []bool {
	if op.down {
		return []bool{true, true}
	}
	return []bool{true, true, true}
}

func (op *loraOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &loraGradOp{base: base{name: op.name + "Grad"}, fwd: op}
	dx, err := G.ApplyOp(bw, append(append(G.Nodes{}, inputs...), grad)...)
	if err != nil {
		return nil, err
	}
	da, err := newPart(op.name+"GradA", dx, inputs[1].Shape(), func() *tensor.Dense { return bw.da.t })
	if err != nil {
		return nil, err
	}
	if op.down {
		return G.Nodes{dx, da}, nil
	}
	db, err := newPart(op.name+"GradB", dx, inputs[2].Shape(), func() *tensor.Dense { return bw.db.t })
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, da, db}, nil
}

// loraGradOp takes x, A, B and dy (N, out); it returns dx and keeps dA and dB:
//
//	dt (N, r) = Scale·dy·B     dB (out, r) = Scale·dyᵀ·t     dA (r, in) = dtᵀ·xd
//	dx (N, in) = mask ⊙ (dt·A)
//
// For LoRADown it takes x, A and dt (N, r) itself and keeps dA only.
type loraGradOp struct {
	base
	fwd        *loraOp
	dx, da, db buf
	dt         buf
}

func (op *loraGradOp) Arity() int { return op.fwd.Arity() + 1 }
func (op *loraGradOp) Type() hm.Type {
	if op.fwd.down {
		return fnType(floatT(2), floatT(2), floatT(2), floatT(2))
	}
	return fnType(floatT(2), floatT(2), floatT(2), floatT(2), floatT(2))
}
func (op *loraGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(ds[0])
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

func (op *loraGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if !op.fwd.ran {
		return nil, op.errorf("the forward LoRA op has not run")
	}
	xs, as := vs[0].Shape(), vs[1].Shape()
	dy := vs[len(vs)-1]
	if op.fwd.down {
		if !dy.Shape().Eq(tensor.Shape{xs[0], as[0]}) {
			return nil, op.errorf("du %v, want (%d, %d)", dy.Shape(), xs[0], as[0])
		}
	} else {
		bs := vs[2].Shape()
		if !dy.Shape().Eq(tensor.Shape{xs[0], bs[0]}) {
			return nil, op.errorf("dy %v, want (%d, %d)", dy.Shape(), xs[0], bs[0])
		}
		op.db.get(dt, bs...)
		op.dt.get(dt, xs[0], as[0])
	}
	dx := op.dx.get(dt, xs...)
	op.da.get(dt, as...)
	if dt == tensor.Float32 {
		loraBwd[float32](op, floats[float32](dx), vs)
	} else {
		loraBwd[float64](op, floats[float64](dx), vs)
	}
	return dx, nil
}

func loraBwd[T Float](op *loraGradOp, dx []T, vs []G.Value) {
	n, in := vs[0].Shape()[0], vs[0].Shape()[1]
	r := vs[1].Shape()[0]
	x, a, dy := floats[T](vs[0]), floats[T](vs[1]), floats[T](vs[len(vs)-1])
	fwd := op.fwd
	xd := x
	if fwd.spec.Dropout > 0 {
		xd = floats[T](fwd.xd.t)
	}
	dt := dy // LoRADown's upstream gradient is dt itself
	if !fwd.down {
		out := vs[2].Shape()[0]
		t, b := floats[T](fwd.t.t), floats[T](vs[2])
		dt = floats[T](op.dt.t)
		s := T(fwd.spec.Scale)
		matmul(false, false, n, r, out, s, dy, out, b, r, 0, dt, r)
		matmul(true, false, out, r, n, s, dy, out, t, r, 0, floats[T](op.db.t), r)
	}
	matmul(true, false, r, in, n, 1, dt, r, xd, in, 0, floats[T](op.da.t), in)
	matmul(false, false, n, in, r, 1, dt, r, a, in, 0, dx, in)
	if fwd.spec.Dropout > 0 {
		mask := floats[T](fwd.mask.t)
		parallelRange(len(dx), 1<<14, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				dx[j] *= mask[j]
			}
		})
	}
}
