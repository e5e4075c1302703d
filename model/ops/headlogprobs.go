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
	return frozenHead("ops.FrozenHeadLogProbs", h, w, nil, targets, weights, chunk)
}

// HeadLoRA is a LoRA adapter on a frozen head (lm_head among lora_target_modules): the head's
// logits h·Wᵀ gain Scale·u·Bᵀ, PEFT's lora.Linear, for the adapter's down-projection
// u = dropout(h)·Aᵀ (N, r), which the graph computes (LoRADown) and differentiates into dA and dh,
// and its up-projection B (V, r).
type HeadLoRA struct {
	U, B  *G.Node
	Scale float64
}

// FrozenHeadLoRALogProbs is FrozenHeadLogProbs for a LoRA-adapted frozen head: each chunk's logits
// are h_c·Wᵀ + Scale·u_c·Bᵀ (chunk, V), so neither the (N, V) logits nor the LoRA term's (N, V)
// product or gradient is ever held. Its backward recomputes each chunk's dlogits as
// FrozenHeadLogProbs does and returns dh = dlogits·W, du = Scale·dlogits·B (N, r) and
// dB = Scale·dlogitsᵀ·u (V, r); ignored rows get dh = du = 0.
func FrozenHeadLoRALogProbs(h *G.Node, w Frozen, lora HeadLoRA, targets, weights *G.Node, chunk int) (*G.Node, *LogProbs, error) {
	if lora.U == nil || lora.B == nil {
		return nil, nil, fmt.Errorf("ops.FrozenHeadLoRALogProbs: nil u or B")
	}
	if math.IsNaN(lora.Scale) || math.IsInf(lora.Scale, 0) {
		return nil, nil, fmt.Errorf("ops.FrozenHeadLoRALogProbs: scale %g is not finite", lora.Scale)
	}
	return frozenHead("ops.FrozenHeadLoRALogProbs", h, w, &lora, targets, weights, chunk)
}

// frozenHead builds the frozen-head op, with a LoRA term when lora is not nil.
func frozenHead(name string, h *G.Node, w Frozen, lora *HeadLoRA, targets, weights *G.Node, chunk int) (*G.Node, *LogProbs, error) {
	if chunk < 1 {
		return nil, nil, fmt.Errorf("%s: chunk of %d rows, want at least 1", name, chunk)
	}
	if w == nil {
		return nil, nil, fmt.Errorf("%s: nil weight", name)
	}
	op := &headLogProbsOp{base: base{name: name}, chunk: chunk, frozen: &frozenState{w: w}, saveBytes: headSaveBytes}
	ins := G.Nodes{h, targets, weights}
	if lora != nil {
		op.lora, op.loraScale = true, lora.Scale
		ins = G.Nodes{h, lora.U, lora.B, targets, weights}
	}
	n, err := G.ApplyOp(op, ins...)
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
	// are then h, targets and weights, or h, u, B, targets and weights with a LoRA term (lora on,
	// FrozenHeadLoRALogProbs), whose logits gain loraScale·u·Bᵀ.
	frozen    *frozenState
	lora      bool
	loraScale float64
	// out is the output (N); kept the logits (N, V) when keep is on; logits one chunk's logits
	// (chunk, V), shared with the backward op (which runs after this op); hc and uc one chunk's
	// gathered hidden rows (chunk, D) and LoRA rows (chunk, r), also shared.
	out, kept, logits, hc, uc buf
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

// inTypes are the op's input types by position (see headArgsOf).
func (op *headLogProbsOp) inTypes() []hm.Type {
	switch {
	case op.frozen == nil:
		return []hm.Type{floatT(2), floatT(2), intT(1), floatT(1)}
	case op.lora:
		return []hm.Type{floatT(2), floatT(2), floatT(2), intT(1), floatT(1)}
	}
	return []hm.Type{floatT(2), intT(1), floatT(1)}
}

func (op *headLogProbsOp) Arity() int { return len(op.inTypes()) }

func (op *headLogProbsOp) Type() hm.Type { return fnType(append(op.inTypes(), floatT(1))...) }

// headArgs are a head op's inputs by role: W is nil for a frozen head, u and B for a head without
// a LoRA term.
type headArgs[V any] struct{ h, w, u, b, targets, weights V }

// headArgsOf splits the op's first inputs (the backward op passes more after them) by role.
func headArgsOf[V any](op *headLogProbsOp, vs []V) headArgs[V] {
	switch {
	case op.frozen == nil:
		return headArgs[V]{h: vs[0], w: vs[1], targets: vs[2], weights: vs[3]}
	case op.lora:
		return headArgs[V]{h: vs[0], u: vs[1], b: vs[2], targets: vs[3], weights: vs[4]}
	}
	return headArgs[V]{h: vs[0], targets: vs[1], weights: vs[2]}
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
	a := headArgsOf(op, sh)
	if err := op.checkShapes(a); err != nil {
		return nil, err
	}
	return tensor.Shape{a.h[0]}, nil
}

// checkShapes checks h (N, D), W (V, D) (a frozen head's own), targets (N), weights (N) and, with
// a LoRA term, u (N, r) and B (V, r).
func (op *headLogProbsOp) checkShapes(a headArgs[tensor.Shape]) error {
	h, w, t, wt := a.h, op.wShape(a.w), a.targets, a.weights
	if len(h) != 2 || len(w) != 2 || h[1] != w[1] || !t.Eq(tensor.Shape{h[0]}) || !wt.Eq(tensor.Shape{h[0]}) {
		return op.errorf("h %v, W %v, targets %v, weights %v: want (N, D), (V, D), (N), (N)", h, w, t, wt)
	}
	if op.lora {
		u, b := a.u, a.b
		if len(u) != 2 || len(b) != 2 || u[0] != h[0] || b[0] != w[0] || u[1] != b[1] {
			return op.errorf("h %v, W %v, u %v, B %v: want (N, D), (V, D), (N, r), (V, r)", h, w, u, b)
		}
	}
	return nil
}

// valueShapes are the shapes of a run's input values by role.
func valueShapes(a headArgs[G.Value]) headArgs[tensor.Shape] {
	s := func(v G.Value) tensor.Shape {
		if v == nil {
			return nil
		}
		return v.Shape()
	}
	return headArgs[tensor.Shape]{h: s(a.h), w: s(a.w), u: s(a.u), b: s(a.b), targets: s(a.targets), weights: s(a.weights)}
}

// floatArgs checks that the float inputs share one float dtype and returns it.
func floatArgs(a headArgs[G.Value], more ...G.Value) (tensor.Dtype, error) {
	vs := []G.Value{a.h, a.weights}
	for _, v := range []G.Value{a.w, a.u, a.b} {
		if v != nil {
			vs = append(vs, v)
		}
	}
	return checkFloat(append(vs, more...)...)
}

// headData is a run's float inputs as T slices: w nil for a frozen head, u and b nil without a
// LoRA term.
type headData[T Float] struct{ h, w, u, b []T }

func dataOf[T Float](a headArgs[G.Value]) headData[T] {
	f := func(v G.Value) []T {
		if v == nil {
			return nil
		}
		return floats[T](v)
	}
	return headData[T]{h: f(a.h), w: f(a.w), u: f(a.u), b: f(a.b)}
}

func (op *headLogProbsOp) Do(vs ...G.Value) (G.Value, error) {
	a := headArgsOf(op, vs)
	dt, err := floatArgs(a)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	targets, err := int32s(a.targets)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if err := op.checkShapes(valueShapes(a)); err != nil {
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
		err = headFwd(op, dt, floats[float32](out), dataOf[float32](a), targets, floats[float32](a.weights))
	} else {
		err = headFwd(op, dt, floats[float64](out), dataOf[float64](a), targets, floats[float64](a.weights))
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dims are the run's sizes: N rows, D hidden, V vocabulary, r the LoRA rank (0 without).
func (op *headLogProbsOp) dims(hLen, wLen, uLen int) (n, d, v, r int) {
	n = len(op.all)
	d = hLen / n
	if op.frozen != nil {
		v, _ = op.frozen.w.Shape()
	} else {
		v = wLen / d
	}
	if op.lora {
		r = uLen / n
	}
	return n, d, v, r
}

// logitsOf is logits (m, V) = hc (m, D)·Wᵀ, plus loraScale·uc (m, r)·Bᵀ with a LoRA term.
func logitsOf[T Float](op *headLogProbsOp, x headData[T], m, v, d, r int, hc, uc, logits []T) {
	if op.frozen == nil {
		matmul(false, true, m, v, d, 1, hc, d, x.w, d, 0, logits, v)
		return
	}
	switch l := any(logits).(type) {
	case []float32:
		op.frozen.w.MulT(l, any(hc).([]float32), m)
	case []float64:
		op.frozen.mulT64(l, any(hc).([]float64), m)
	}
	if op.lora && r > 0 {
		matmul(false, true, m, v, r, T(op.loraScale), uc, r, x.b, r, 1, logits, v)
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
func headFwd[T Float](op *headLogProbsOp, dt tensor.Dtype, out []T, x headData[T], targets []int32, wt []T) error {
	n := len(targets)
	_, _, v, _ := op.dims(len(x.h), len(x.w), len(x.u))
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
	headChunks(op, dt, x, rows, into, true, func(rs []int, _, _, logits []T) {
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

// chunkRows returns rows rs of x (N rows of width k) as one (len(rs), k) slice: x's own rows when
// rs are consecutive, else scratch from b (capRows, k), holding copies of the rows when fill is on
// (an input) or left as it is (an output, which unchunkRows then copies back).
func chunkRows[T Float](b *buf, dt tensor.Dtype, x []T, rs []int, k, capRows int, fill bool) []T {
	m := len(rs)
	if rs[m-1]-rs[0] == m-1 {
		return x[rs[0]*k : (rs[0]+m)*k]
	}
	xc := denseData[T](b.get(dt, capRows, k))[:m*k]
	if fill {
		for j, i := range rs {
			copy(xc[j*k:(j+1)*k], x[i*k:(i+1)*k])
		}
	}
	return xc
}

// unchunkRows copies row j of xc (len(rs), k) to row rs[j] of x, unless chunkRows handed out x's
// own rows (consecutive rs).
func unchunkRows[T Float](x, xc []T, rs []int, k int) {
	if m := len(rs); rs[m-1]-rs[0] == m-1 {
		return
	}
	for j, i := range rs {
		copy(x[i*k:(i+1)*k], xc[j*k:(j+1)*k])
	}
}

// headChunks computes the logits of rows (indices into h's N rows) op.chunk rows at a time and
// hands each chunk to fn with its rows, their hidden states (len(rs), D), LoRA rows (len(rs), r)
// (nil without a LoRA term) and logits (len(rs), V). With into (len(rows), V) not nil, chunk k's
// logits are rows k·chunk.. of into (so into is the kept (N, V) when rows are 0..N-1); compute
// false skips the product and hands fn what into holds.
func headChunks[T Float](op *headLogProbsOp, dt tensor.Dtype, x headData[T], rows []int, into []T, compute bool, fn func(rs []int, hc, uc, logits []T)) {
	n, d, v, r := op.dims(len(x.h), len(x.w), len(x.u))
	c := min(op.chunk, n)
	for r0 := 0; r0 < len(rows); r0 += c {
		rs := rows[r0:min(r0+c, len(rows))]
		m := len(rs)
		hc := chunkRows(&op.hc, dt, x.h, rs, d, c, true)
		var uc []T
		if r > 0 {
			uc = chunkRows(&op.uc, dt, x.u, rs, r, c, true)
		}
		var logits []T
		if into != nil {
			logits = into[r0*v : (r0+m)*v]
		} else {
			logits = denseData[T](op.logits.get(dt, c, v))[:m*v]
		}
		if compute {
			logitsOf(op, x, m, v, d, r, hc, uc, logits)
		}
		fn(rs, hc, uc, logits)
	}
}

func (op *headLogProbsOp) DiffWRT(int) []bool {
	switch {
	case op.frozen == nil:
		return []bool{true, true, false, false}
	case op.lora:
		return []bool{true, true, true, false, false}
	}
	return []bool{true, false, false}
}

func (op *headLogProbsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &headLogProbsGradOp{base: base{name: op.name + "Grad"}, fwd: op}
	dh, err := G.ApplyOp(bw, append(append(G.Nodes{}, inputs...), output, grad)...)
	if err != nil {
		return nil, err
	}
	part := func(suffix string, in *G.Node, b *buf) (*G.Node, error) {
		return newPart(op.name+suffix, dh, in.Shape(), func() *tensor.Dense { return b.t })
	}
	switch {
	case op.frozen == nil:
		dw, err := part("DW", inputs[1], &bw.dw)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dh, dw, nil, nil}, nil
	case op.lora:
		du, err := part("DU", inputs[1], &bw.du)
		if err != nil {
			return nil, err
		}
		db, err := part("DB", inputs[2], &bw.db)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dh, du, db, nil, nil}, nil
	}
	return G.Nodes{dh, nil, nil}, nil
}

// headLogProbsGradOp takes the forward op's inputs, its output (which orders it after the forward
// op, whose row statistics it reads) and the upstream gradient (N); it returns dh (N, D) and keeps
// dW (V, D) (a trainable head), or du (N, r) and dB (V, r) (a LoRA term) for part ops.
type headLogProbsGradOp struct {
	base
	fwd            *headLogProbsOp
	dh, dw, du, db buf
	dhChunk        buf // one chunk's dh rows (chunk, D) when the rows are not consecutive
	duChunk        buf // one chunk's du rows (chunk, r), likewise
}

func (op *headLogProbsGradOp) Arity() int { return op.fwd.Arity() + 2 }
func (op *headLogProbsGradOp) Type() hm.Type {
	return fnType(append(op.fwd.inTypes(), floatT(1), floatT(1), floatT(2))...)
}
func (op *headLogProbsGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(ds[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	return s.Clone(), nil
}

func (op *headLogProbsGradOp) Do(vs ...G.Value) (G.Value, error) {
	a := headArgsOf(op.fwd, vs)
	g := vs[len(vs)-1]
	dt, err := floatArgs(a, g)
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
	// Gradients the head has no input for stay nil interfaces.
	var dw, du, db G.Value
	if a.w != nil {
		dw = op.dw.get(dt, a.w.Shape()[0], d)
	}
	if a.u != nil {
		du, db = op.du.get(dt, a.u.Shape()...), op.db.get(dt, a.b.Shape()...)
	}
	if dt == tensor.Float32 {
		headBwd(op, dt, floats[float32](dh), dataOf[float32](headArgs[G.Value]{w: dw, u: du, b: db}), dataOf[float32](a), targets, floats[float32](a.weights), floats[float32](g))
	} else {
		headBwd(op, dt, floats[float64](dh), dataOf[float64](headArgs[G.Value]{w: dw, u: du, b: db}), dataOf[float64](a), targets, floats[float64](a.weights), floats[float64](g))
	}
	return dh, nil
}

// headBwd recomputes each chunk of counted rows' logits, turns them into
// dlogits = c·(onehot − exp(logit − max)·scale) with c = weight·upstream (as TokenLogProbs'
// backward) and accumulates dh and, for a trainable head, dW, or, with a LoRA term, du and dB from
// them (grads' w, u and b; nil where the head has no such input). Rows that are not counted get
// dh = du = 0.
func headBwd[T Float](op *headLogProbsGradOp, dt tensor.Dtype, dh []T, grads, x headData[T], targets []int32, wt, g []T) {
	f := op.fwd
	n, d, v, r := f.dims(len(x.h), len(x.w), len(x.u))
	clear(dh)
	clear(grads.u)
	first := true
	var saved []T
	if f.savedRun {
		saved = denseData[T](f.saved.t)
	}
	capRows := min(f.chunk, n)
	s := T(f.loraScale)
	headChunks(f, dt, x, f.counted, saved, saved == nil, func(rs []int, hc, uc, dl []T) {
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
		dhc := chunkRows(&op.dhChunk, dt, dh, rs, d, capRows, false)
		dhOf(f, x.w, m, v, d, dl, dhc)
		unchunkRows(dh, dhc, rs, d)
		beta := T(1)
		if first {
			beta, first = 0, false
		}
		if grads.w != nil {
			matmul(true, false, v, d, m, 1, dl, v, hc, d, beta, grads.w, d)
		}
		if grads.u != nil {
			duc := chunkRows(&op.duChunk, dt, grads.u, rs, r, capRows, false)
			matmul(false, false, m, r, v, s, dl, v, x.b, r, 0, duc, r)
			unchunkRows(grads.u, duc, rs, r)
			matmul(true, false, v, r, m, s, dl, v, uc, r, beta, grads.b, r)
		}
	})
	if first {
		clear(grads.w) // no counted row
		clear(grads.b)
	}
}
