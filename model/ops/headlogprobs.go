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
	op := &headLogProbsOp{base: base{name: "ops.HeadLogProbs"}, chunk: chunk, saveBytes: headSaveBytes}
	n, err := G.ApplyOp(op, h, w, targets, weights)
	if err != nil {
		return nil, nil, err
	}
	return n, &LogProbs{op: op}, nil
}

// FrozenHeadLogProbs is HeadLogProbs for a head weight the graph does not train (a LoRA run's LM
// head or tied embedding, a quantized base): the same outputs, side outputs and chunks, the
// logits computed by w's own product (dequantizing tiles on the fly); its backward gives dh only.
func FrozenHeadLogProbs(h *G.Node, w Frozen, targets, weights *G.Node, chunk int) (*G.Node, *LogProbs, error) {
	if chunk < 1 {
		return nil, nil, fmt.Errorf("ops.FrozenHeadLogProbs: chunk of %d rows, want at least 1", chunk)
	}
	if w == nil {
		return nil, nil, fmt.Errorf("ops.FrozenHeadLogProbs: nil weight")
	}
	op := &headLogProbsOp{base: base{name: "ops.FrozenHeadLogProbs"}, chunk: chunk, frozen: &frozenState{w: w}, saveBytes: headSaveBytes}
	n, err := G.ApplyOp(op, h, targets, weights)
	if err != nil {
		return nil, nil, err
	}
	return n, &LogProbs{op: op}, nil
}

type headLogProbsOp struct {
	base
	chunk int
	keep  bool
	// frozen is the head weight when it is not a graph input (FrozenHeadLogProbs); the op's inputs
	// are then h, targets and weights.
	frozen *frozenState
	// out is the output (N); kept the logits (N, V) when keep is on; logits one chunk's logits
	// (chunk, V), shared with the backward op (which runs after this op); hc one chunk's gathered
	// hidden rows (chunk, D), also shared.
	out, kept, logits, hc buf
	// saved holds, when the last forward run's counted rows fit in headSaveBytes, each counted
	// row's exp(logit − max) (counted, V), which the backward pass then reads instead of
	// recomputing the logits and their exponentials; savedRun says the last run filled it.
	saved     buf
	savedRun  bool
	saveBytes int // headSaveBytes unless LogProbs.SaveBytes set it; tests set 0 to exercise recomputation
	// Per row (N): side outputs, and the row max and 1/Σ exp(logit − max) for the backward pass.
	correct, logitSum, rowMax, scale []float64
	// counted lists the rows with a counted target in the last run; all is 0..N-1.
	counted, all []int
}

func (op *headLogProbsOp) sides() (correct, logitSum []float64) { return op.correct, op.logitSum }
func (op *headLogProbsOp) setKeep(on bool)                      { op.keep = on }
func (op *headLogProbsOp) setSaveBytes(n int)                   { op.saveBytes = n }
func (op *headLogProbsOp) keptLogits() *tensor.Dense {
	if !op.keep {
		return nil
	}
	return op.kept.t
}

func (op *headLogProbsOp) Arity() int {
	if op.frozen != nil {
		return 3
	}
	return 4
}

func (op *headLogProbsOp) Type() hm.Type {
	if op.frozen != nil {
		return fnType(floatT(2), intT(1), floatT(1), floatT(1))
	}
	return fnType(floatT(2), floatT(2), intT(1), floatT(1), floatT(1))
}

// headArgs are a head op's inputs by role: W is nil for a frozen head.
type headArgs struct{ h, w, targets, weights G.Value }

// args splits the op's first inputs (the backward op passes more after them) by role.
func (op *headLogProbsOp) args(vs []G.Value) headArgs {
	if op.frozen != nil {
		return headArgs{h: vs[0], targets: vs[1], weights: vs[2]}
	}
	return headArgs{h: vs[0], w: vs[1], targets: vs[2], weights: vs[3]}
}

// wShape is the head weight's shape (V, D).
func (op *headLogProbsOp) wShape(w tensor.Shape) tensor.Shape {
	if op.frozen != nil {
		out, in := op.frozen.w.Shape()
		return tensor.Shape{out, in}
	}
	return w
}

func (op *headLogProbsOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	if op.frozen != nil {
		sh = []tensor.Shape{sh[0], nil, sh[1], sh[2]}
	}
	if err := op.checkShapes(sh[0], op.wShape(sh[1]), sh[2], sh[3]); err != nil {
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
	a := op.args(vs)
	dt, err := checkFloat(a.h, a.weights)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	var wShape tensor.Shape
	if a.w != nil {
		if _, err := checkFloat(a.h, a.w); err != nil {
			return nil, op.errorf("%v", err)
		}
		wShape = a.w.Shape()
	}
	targets, err := int32s(a.targets)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if err := op.checkShapes(a.h.Shape(), op.wShape(wShape), a.targets.Shape(), a.weights.Shape()); err != nil {
		return nil, err
	}
	if op.frozen != nil && unbound(op.frozen.w) {
		return nil, op.errorf("its weight slot was not bound")
	}
	n := a.h.Shape()[0]
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
		err = headFwd(op, dt, floats[float32](out), floats[float32](a.h), headW[float32](a.w), targets, floats[float32](a.weights))
	} else {
		err = headFwd(op, dt, floats[float64](out), floats[float64](a.h), headW[float64](a.w), targets, floats[float64](a.weights))
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// headW is a graph head weight's data, nil for a frozen head.
func headW[T Float](w G.Value) []T {
	if w == nil {
		return nil
	}
	return floats[T](w)
}

// vocab is V for the op's head weight w (nil when frozen) and hidden width d.
func (op *headLogProbsOp) vocab(wLen, d int) int {
	if op.frozen != nil {
		v, _ := op.frozen.w.Shape()
		return v
	}
	return wLen / d
}

// logitsOf is logits (m, V) = hc (m, D)·Wᵀ.
func logitsOf[T Float](op *headLogProbsOp, w []T, m, v, d int, hc, logits []T) {
	if op.frozen == nil {
		matmul(false, true, m, v, d, 1, hc, d, w, d, 0, logits, v)
		return
	}
	switch l := any(logits).(type) {
	case []float32:
		op.frozen.w.MulT(l, any(hc).([]float32), m)
	case []float64:
		op.frozen.mulT64(l, any(hc).([]float64), m)
	}
}

// dhOf is dh (m, D) = dl (m, V)·W.
func dhOf[T Float](op *headLogProbsOp, w []T, m, v, d int, dl, dh []T) {
	if op.frozen == nil {
		matmul(false, false, m, d, v, 1, dl, v, w, d, 0, dh, d)
		return
	}
	clear(dh)
	switch x := any(dh).(type) {
	case []float32:
		op.frozen.mulAdd32(x, any(dl).([]float32), m)
	case []float64:
		op.frozen.mulAdd64(x, any(dl).([]float64), m)
	}
}

// headSaveBytes bounds the forward pass's saved exponentials (see headLogProbsOp.saved) unless
// LogProbs.SaveBytes sets another bound: 64 MiB keeps a small-vocabulary batch's (the reference
// bench's 2048 × 4096) and recomputes a Llama 3 vocabulary's (1024 × 128256 would be 525 MB, the
// memory the fused head exists to save; a checkpointed graph may grant it, see model's ckptSaveBytes).
const headSaveBytes = 64 << 20

// headFwd fills out and the per-row side values; rows that are not counted get 0 everywhere.
func headFwd[T Float](op *headLogProbsOp, dt tensor.Dtype, out, h, w []T, targets []int32, wt []T) error {
	n := len(targets)
	v := op.vocab(len(w), len(h)/n)
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
	rows, into := op.counted, []T(nil)
	op.savedRun = false
	switch {
	case op.keep:
		rows, into = op.all, denseData[T](op.kept.get(dt, n, v))
	case len(rows) > 0 && len(rows) <= min(n, op.saveBytes/(v*int(dt.Size()))):
		// One buffer of as many rows as the bound allows, whatever this run counts: SFT counts
		// another number of rows every step, and a buffer of hundreds of MB reallocated per step
		// would grow the heap.
		capRows := min(n, op.saveBytes/(v*int(dt.Size())))
		into, op.savedRun = denseData[T](op.saved.get(dt, capRows, v))[:len(rows)*v], true
	}
	save := op.savedRun
	headChunks(op, dt, h, w, rows, into, true, func(rs []int, _, logits []T) {
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
				xt := row[t]
				var l float64
				if save {
					l = expTo(row, row, m) // kept for the backward pass
				} else {
					l = expTo(nil, row, m)
				}
				lse := float64(m) + math.Log(l)
				op.rowMax[i], op.scale[i], op.logitSum[i] = float64(m), 1/l, sum
				if arg == int(t) {
					op.correct[i] = 1
				}
				out[i] = wt[i] * T(float64(xt)-lse)
			}
		})
	})
	return nil
}

// headChunks computes the logits of rows (indices into h's N rows) op.chunk rows at a time and
// hands each chunk to fn with its rows, their hidden states (len(rs), D) and logits (len(rs), V).
// With into (len(rows), V) not nil, chunk k's logits are rows k·chunk.. of into (so into is the
// kept (N, V) when rows are 0..N-1); compute false skips the product and hands fn what into holds.
func headChunks[T Float](op *headLogProbsOp, dt tensor.Dtype, h, w []T, rows []int, into []T, compute bool, fn func(rs []int, hc, logits []T)) {
	n := len(op.all)
	d := len(h) / n
	v := op.vocab(len(w), d)
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
		if into != nil {
			logits = into[r0*v : (r0+m)*v]
		} else {
			logits = denseData[T](op.logits.get(dt, c, v))[:m*v]
		}
		if compute {
			logitsOf(op, w, m, v, d, hc, logits)
		}
		fn(rs, hc, logits)
	}
}

func (op *headLogProbsOp) DiffWRT(int) []bool {
	if op.frozen != nil {
		return []bool{true, false, false}
	}
	return []bool{true, true, false, false}
}

func (op *headLogProbsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &headLogProbsGradOp{base: base{name: op.name + "Grad"}, fwd: op}
	dh, err := G.ApplyOp(bw, append(append(G.Nodes{}, inputs...), output, grad)...)
	if err != nil {
		return nil, err
	}
	if op.frozen != nil {
		return G.Nodes{dh, nil, nil}, nil
	}
	dw, err := newPart("ops.HeadLogProbsDW", dh, inputs[1].Shape(), func() *tensor.Dense { return bw.dw.t })
	if err != nil {
		return nil, err
	}
	return G.Nodes{dh, dw, nil, nil}, nil
}

// headLogProbsGradOp takes the forward op's inputs (h, W unless frozen, targets, weights), its
// output (which orders it after the forward op, whose row statistics it reads) and the upstream
// gradient (N); it returns dh (N, D) and keeps dW (V, D) for a part op (not for a frozen head).
type headLogProbsGradOp struct {
	base
	fwd     *headLogProbsOp
	dh, dw  buf
	dhChunk buf // one chunk's dh rows (chunk, D) when the rows are not consecutive
}

func (op *headLogProbsGradOp) Arity() int { return op.fwd.Arity() + 2 }
func (op *headLogProbsGradOp) Type() hm.Type {
	if op.fwd.frozen != nil {
		return fnType(floatT(2), intT(1), floatT(1), floatT(1), floatT(1), floatT(2))
	}
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
	a := op.fwd.args(vs)
	g := vs[len(vs)-1]
	dt, err := checkFloat(a.h, a.weights, g)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	targets, err := int32s(a.targets)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	n, d := a.h.Shape()[0], a.h.Shape()[1]
	if len(op.fwd.all) != n || g.Shape().TotalSize() != n {
		return nil, op.errorf("the forward op has not run on these %d rows", n)
	}
	dh := op.dh.get(dt, n, d)
	var dw G.Value // stays a nil interface for a frozen head
	if a.w != nil {
		dw = op.dw.get(dt, a.w.Shape()[0], d)
	}
	if dt == tensor.Float32 {
		headBwd(op, dt, floats[float32](dh), headW[float32](dw), floats[float32](a.h), headW[float32](a.w), targets, floats[float32](a.weights), floats[float32](g))
	} else {
		headBwd(op, dt, floats[float64](dh), headW[float64](dw), floats[float64](a.h), headW[float64](a.w), targets, floats[float64](a.weights), floats[float64](g))
	}
	return dh, nil
}

// headBwd recomputes each chunk of counted rows' logits, turns them into
// dlogits = c·(onehot − exp(logit − max)·scale) with c = weight·upstream (as TokenLogProbs'
// backward) and accumulates dh and, unless the head is frozen (dw nil), dW from them. Rows that are
// not counted get dh = 0.
func headBwd[T Float](op *headLogProbsGradOp, dt tensor.Dtype, dh, dw, h, w []T, targets []int32, wt, g []T) {
	f := op.fwd
	d := len(h) / len(targets)
	v := f.vocab(len(w), d)
	clear(dh)
	first := true
	var saved []T
	if f.savedRun {
		saved = denseData[T](f.saved.t)
	}
	headChunks(f, dt, h, w, f.counted, saved, saved == nil, func(rs []int, hc, dl []T) {
		parallelRange(len(rs), max(1, 16384/v), func(lo, hi int) {
			for j := lo; j < hi; j++ {
				i := rs[j]
				drow := dl[j*v : (j+1)*v]
				c := wt[i] * g[i]
				if c == 0 {
					clear(drow)
					continue
				}
				if saved == nil {
					expTo(drow, drow, T(f.rowMax[i]))
				}
				k := -c * T(f.scale[i])
				for x := range drow {
					drow[x] *= k
				}
				drow[targets[i]] += c
			}
		})
		m := len(rs)
		if rs[m-1]-rs[0] == m-1 {
			dhOf(f, w, m, v, d, dl, dh[rs[0]*d:(rs[0]+m)*d])
		} else {
			dhc := denseData[T](op.dhChunk.get(dt, min(f.chunk, len(f.all)), d))[:m*d]
			dhOf(f, w, m, v, d, dl, dhc)
			for j, i := range rs {
				copy(dh[i*d:(i+1)*d], dhc[j*d:(j+1)*d])
			}
		}
		if dw == nil {
			return
		}
		beta := T(1)
		if first {
			beta, first = 0, false
		}
		matmul(true, false, v, d, m, 1, dl, v, hc, d, beta, dw, d)
	})
	if first && dw != nil {
		clear(dw) // no counted row
	}
}
