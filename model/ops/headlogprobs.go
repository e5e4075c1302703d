package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// HeadLogProbs is the LM head fused with TokenLogProbs: for hidden states h (N, D), the head's
// torch-layout weight W (V, D), targets (N) (Int32) and weights (N) it returns
// weights[n]·log_softmax(h[n]·Wᵀ)[targets[n]] (N), with the same side outputs (Correct, LogitSums)
// and the same ignored-row rule as TokenLogProbs, without ever holding the (N, V) logits or their
// gradient (the idea of Liger-Kernel's fused linear cross-entropy).
//
// The forward pass computes the logits of at most chunk counted rows at a time (chunk, V) and keeps
// only each row's max and 1/Σexp (float64); the backward pass recomputes each chunk's logits, turns
// them into dlogits in place and accumulates dh = dlogits·W and dW += dlogitsᵀ·h chunk by chunk.
// Ignored rows cost nothing in either pass (SFT's prompt tokens). With KeepLogits on, the forward
// pass computes every row, straight into the kept (N, V) buffer. Exp sums run in float64.
//
// W may be used elsewhere too (tied embeddings): Gorgonia sums its gradients.
func HeadLogProbs(h, w, targets, weights *G.Node, chunk int) (*G.Node, *LogProbs, error) {
	if chunk < 1 {
		return nil, nil, fmt.Errorf("ops.HeadLogProbs: chunk of %d rows, want at least 1", chunk)
	}
	op := &headLogProbsOp{base: base{name: "ops.HeadLogProbs"}, chunk: chunk}
	n, err := G.ApplyOp(op, h, w, targets, weights)
	if err != nil {
		return nil, nil, err
	}
	return n, &LogProbs{op: op}, nil
}

type headLogProbsOp struct {
	base
	chunk int
	keep  bool
	// out is the output (N); kept the logits (N, V) when keep is on; logits one chunk's logits
	// (chunk, V), shared with the backward op (which runs after this op); hc one chunk's gathered
	// hidden rows (chunk, D), also shared.
	out, kept, logits, hc buf
	// Per row (N): side outputs, and the row max and 1/Σ exp(logit − max) for the backward pass.
	correct, logitSum, rowMax, scale []float64
	// counted lists the rows with a counted target in the last run; all is 0..N-1.
	counted, all []int
}

func (op *headLogProbsOp) sides() (correct, logitSum []float64) { return op.correct, op.logitSum }
func (op *headLogProbsOp) setKeep(on bool)                      { op.keep = on }
func (op *headLogProbsOp) keptLogits() *tensor.Dense {
	if !op.keep {
		return nil
	}
	return op.kept.t
}

func (op *headLogProbsOp) Arity() int { return 4 }
func (op *headLogProbsOp) Type() hm.Type {
	return fnType(floatT(2), floatT(2), intT(1), floatT(1), floatT(1))
}

func (op *headLogProbsOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	if err := op.checkShapes(sh[0], sh[1], sh[2], sh[3]); err != nil {
		return nil, err
	}
	return tensor.Shape{sh[0][0]}, nil
}

func (op *headLogProbsOp) checkShapes(h, w, t, wt tensor.Shape) error {
	if len(h) != 2 || len(w) != 2 || h[1] != w[1] || !t.Eq(tensor.Shape{h[0]}) || !wt.Eq(tensor.Shape{h[0]}) {
		return op.errorf("h %v, W %v, targets %v, weights %v: want (N, D), (V, D), (N), (N)", h, w, t, wt)
	}
	return nil
}

func (op *headLogProbsOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0], vs[1], vs[3])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	targets, err := int32s(vs[2])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if err := op.checkShapes(vs[0].Shape(), vs[1].Shape(), vs[2].Shape(), vs[3].Shape()); err != nil {
		return nil, err
	}
	n := vs[0].Shape()[0]
	if len(op.all) != n {
		op.correct, op.logitSum = make([]float64, n), make([]float64, n)
		op.rowMax, op.scale = make([]float64, n), make([]float64, n)
		op.all = make([]int, n)
		for i := range op.all {
			op.all[i] = i
		}
	}
	out := op.out.get(dt, n)
	if dt == tensor.Float32 {
		err = headFwd(op, dt, floats[float32](out), floats[float32](vs[0]), floats[float32](vs[1]), targets, floats[float32](vs[3]))
	} else {
		err = headFwd(op, dt, floats[float64](out), floats[float64](vs[0]), floats[float64](vs[1]), targets, floats[float64](vs[3]))
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// headFwd fills out and the per-row side values; rows that are not counted get 0 everywhere.
func headFwd[T Float](op *headLogProbsOp, dt tensor.Dtype, out, h, w []T, targets []int32, wt []T) error {
	n, v := len(targets), len(w)/(len(h)/len(targets))
	op.counted = op.counted[:0]
	for i, t := range targets {
		out[i], op.correct[i], op.logitSum[i], op.rowMax[i], op.scale[i] = 0, 0, 0, 0, 0
		if !counted(wt[i], t) {
			continue
		}
		if int(t) >= v {
			return op.errorf("target %d at row %d is outside 0..%d", t, i, v-1)
		}
		op.counted = append(op.counted, i)
	}
	rows, kept := op.counted, []T(nil)
	if op.keep {
		rows, kept = op.all, denseData[T](op.kept.get(dt, n, v))
	}
	headChunks(op, dt, h, w, rows, kept, func(rs []int, _, logits []T) {
		parallelRange(len(rs), max(1, 16384/v), func(lo, hi int) {
			for j := lo; j < hi; j++ {
				i := rs[j]
				t := targets[i]
				if !counted(wt[i], t) {
					continue // computed only to be kept
				}
				row := logits[j*v : (j+1)*v]
				m, arg := row[0], 0
				var sum float64
				for k, x := range row {
					if x > m {
						m, arg = x, k
					}
					sum += float64(x)
				}
				l := expTo(nil, row, m)
				lse := float64(m) + math.Log(l)
				op.rowMax[i], op.scale[i], op.logitSum[i] = float64(m), 1/l, sum
				if arg == int(t) {
					op.correct[i] = 1
				}
				out[i] = wt[i] * T(float64(row[t])-lse)
			}
		})
	})
	return nil
}

// headChunks computes the logits of rows (indices into h's N rows) op.chunk rows at a time and
// hands each chunk to fn with its rows, their hidden states (len(rs), D) and logits (len(rs), V).
// With kept (N, V) not nil, rows must be 0..N-1 and the logits are written into kept.
func headChunks[T Float](op *headLogProbsOp, dt tensor.Dtype, h, w []T, rows []int, kept []T, fn func(rs []int, hc, logits []T)) {
	n := len(op.all)
	d := len(h) / n
	v := len(w) / d
	c := min(op.chunk, n)
	for r0 := 0; r0 < len(rows); r0 += c {
		rs := rows[r0:min(r0+c, len(rows))]
		m := len(rs)
		var hc []T
		if rs[m-1]-rs[0] == m-1 { // consecutive rows: read h in place
			hc = h[rs[0]*d : (rs[0]+m)*d]
		} else {
			hc = denseData[T](op.hc.get(dt, c, d))[:m*d]
			for j, i := range rs {
				copy(hc[j*d:(j+1)*d], h[i*d:(i+1)*d])
			}
		}
		var logits []T
		if kept != nil {
			logits = kept[rs[0]*v : (rs[0]+m)*v]
		} else {
			logits = denseData[T](op.logits.get(dt, c, v))[:m*v]
		}
		matmul(false, true, m, v, d, 1, hc, d, w, d, 0, logits, v)
		fn(rs, hc, logits)
	}
}

func (op *headLogProbsOp) DiffWRT(int) []bool { return []bool{true, true, false, false} }

func (op *headLogProbsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &headLogProbsGradOp{base: base{name: "ops.HeadLogProbsGrad"}, fwd: op}
	dh, err := G.ApplyOp(bw, inputs[0], inputs[1], inputs[2], inputs[3], output, grad)
	if err != nil {
		return nil, err
	}
	dw, err := newPart("ops.HeadLogProbsDW", dh, inputs[1].Shape(), func() *tensor.Dense { return bw.dw.t })
	if err != nil {
		return nil, err
	}
	return G.Nodes{dh, dw, nil, nil}, nil
}

// headLogProbsGradOp takes h, W, targets, weights, the forward output (which orders it after the
// forward op, whose row statistics it reads) and the upstream gradient (N); it returns dh (N, D)
// and keeps dW (V, D) for a part op.
type headLogProbsGradOp struct {
	base
	fwd     *headLogProbsOp
	dh, dw  buf
	dhChunk buf // one chunk's dh rows (chunk, D) when the rows are not consecutive
}

func (op *headLogProbsGradOp) Arity() int { return 6 }
func (op *headLogProbsGradOp) Type() hm.Type {
	return fnType(floatT(2), floatT(2), intT(1), floatT(1), floatT(1), floatT(1), floatT(2))
}
func (op *headLogProbsGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(ds[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	return s.Clone(), nil
}

func (op *headLogProbsGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0], vs[1], vs[3], vs[5])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	targets, err := int32s(vs[2])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	n, d, v := vs[0].Shape()[0], vs[0].Shape()[1], vs[1].Shape()[0]
	if len(op.fwd.all) != n || vs[5].Shape().TotalSize() != n {
		return nil, op.errorf("the forward op has not run on these %d rows", n)
	}
	dh, dw := op.dh.get(dt, n, d), op.dw.get(dt, v, d)
	if dt == tensor.Float32 {
		headBwd(op, dt, floats[float32](dh), floats[float32](dw), floats[float32](vs[0]), floats[float32](vs[1]), targets, floats[float32](vs[3]), floats[float32](vs[5]))
	} else {
		headBwd(op, dt, floats[float64](dh), floats[float64](dw), floats[float64](vs[0]), floats[float64](vs[1]), targets, floats[float64](vs[3]), floats[float64](vs[5]))
	}
	return dh, nil
}

// headBwd recomputes each chunk of counted rows' logits, turns them into
// dlogits = c·(onehot − exp(logit − max)·scale) with c = weight·upstream (as TokenLogProbs'
// backward) and accumulates dh and dW from them. Rows that are not counted get dh = 0.
func headBwd[T Float](op *headLogProbsGradOp, dt tensor.Dtype, dh, dw, h, w []T, targets []int32, wt, g []T) {
	f := op.fwd
	d := len(h) / len(targets)
	v := len(w) / d
	clear(dh)
	first := true
	headChunks(f, dt, h, w, f.counted, nil, func(rs []int, hc, dl []T) {
		parallelRange(len(rs), max(1, 16384/v), func(lo, hi int) {
			for j := lo; j < hi; j++ {
				i := rs[j]
				drow := dl[j*v : (j+1)*v]
				c := wt[i] * g[i]
				if c == 0 {
					clear(drow)
					continue
				}
				expTo(drow, drow, T(f.rowMax[i]))
				k := -c * T(f.scale[i])
				for x := range drow {
					drow[x] *= k
				}
				drow[targets[i]] += c
			}
		})
		m := len(rs)
		if rs[m-1]-rs[0] == m-1 {
			matmul(false, false, m, d, v, 1, dl, v, w, d, 0, dh[rs[0]*d:(rs[0]+m)*d], d)
		} else {
			dhc := denseData[T](op.dhChunk.get(dt, min(f.chunk, len(f.all)), d))[:m*d]
			matmul(false, false, m, d, v, 1, dl, v, w, d, 0, dhc, d)
			for j, i := range rs {
				copy(dh[i*d:(i+1)*d], dhc[j*d:(j+1)*d])
			}
		}
		beta := T(1)
		if first {
			beta, first = 0, false
		}
		matmul(true, false, v, d, m, 1, dl, v, hc, d, beta, dw, d)
	})
	if first {
		clear(dw) // no counted row
	}
}
