package ops

import (
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LogProbs is a TokenLogProbs or HeadLogProbs op's handle on its forward-only side outputs, valid
// after a run.
type LogProbs struct{ op logProbsSide }

// logProbsSide is what both log-prob ops keep for LogProbs.
type logProbsSide interface {
	sides() (correct, logitSum []float64)
	setKeep(on bool)
	keptLogits() *tensor.Dense
	setSaveBytes(n int)
}

// Correct is 1 for each row whose argmax over the vocabulary (the first one on ties, as torch)
// equals its target, else 0; ignored rows are 0. (N)
func (l *LogProbs) Correct() []float64 { c, _ := l.op.sides(); return c }

// LogitSums is Σ_v logits[n, v] for each counted row, 0 for ignored rows. (N)
func (l *LogProbs) LogitSums() []float64 { _, s := l.op.sides(); return s }

// KeepLogits makes later runs keep the logits (N, V) for Logits; it costs one (N, V) buffer and,
// for TokenLogProbs, one copy per run.
func (l *LogProbs) KeepLogits(on bool) { l.op.setKeep(on) }

// SaveBytes sets how much memory the fused head (HeadLogProbs, FrozenHeadLogProbs,
// FrozenHeadLoRALogProbs) may spend on keeping each counted row's exponentials from the forward
// pass, so that the backward pass reads them instead of recomputing the logits (one head product
// less): it keeps them when the counted rows' (counted, V) values fit in n bytes (64 MiB unless
// set). TokenLogProbs holds its logits anyway and ignores it.
func (l *LogProbs) SaveBytes(n int) { l.op.setSaveBytes(n) }

// Logits returns the logits of the last run made with KeepLogits on (float32 or float64 data of
// shape (N, V)), or nil.
func (l *LogProbs) Logits() *tensor.Dense { return l.op.keptLogits() }

func (op *logProbsOp) sides() (correct, logitSum []float64) { return op.correct, op.logitSum }
func (op *logProbsOp) setKeep(on bool)                      { op.keep = on }
func (op *logProbsOp) keptLogits() *tensor.Dense            { return op.kept.t }
func (op *logProbsOp) setSaveBytes(int)                     {}

// TokenLogProbs is weights[n]·log_softmax(logits[n])[targets[n]] for logits (N, V), targets (N)
// (Int32) and weights (N): (N). A row with weight 0 or a negative target is ignored: its output and
// gradient are exactly 0. A counted target outside 0..V-1 is an error. No one-hot is built: the
// backward op writes dlogits = weight·upstream·(onehot(target) − softmax(logits)) row by row, from
// the exponentials and normalisers the forward pass kept (so each logit's exp is computed once).
// Exp sums run in float64.
func TokenLogProbs(logits, targets, weights *G.Node) (*G.Node, *LogProbs, error) {
	op := &logProbsOp{base: base{name: "ops.TokenLogProbs"}}
	n, err := G.ApplyOp(op, logits, targets, weights)
	if err != nil {
		return nil, nil, err
	}
	return n, &LogProbs{op: op}, nil
}

type logProbsOp struct {
	base
	out, kept         buf
	keep              bool
	correct, logitSum []float64
	// grad is the backward op once the graph is differentiated. The forward pass then leaves
	// exp(logit − max) of every counted row in grad's output buffer (which nothing else holds before
	// grad runs), and grad turns it into dlogits in place instead of computing the exps again.
	grad *logProbsGradOp
	// scale[i] = exp(max − lse) = 1/Σ exp(logit − max) for that reuse.
	scale []float64
}

func (op *logProbsOp) Arity() int    { return 3 }
func (op *logProbsOp) Type() hm.Type { return fnType(floatT(2), intT(1), floatT(1), floatT(1)) }

func (op *logProbsOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	if len(sh[0]) != 2 || !sh[1].Eq(tensor.Shape{sh[0][0]}) || !sh[2].Eq(tensor.Shape{sh[0][0]}) {
		return nil, op.errorf("logits %v, targets %v, weights %v: want (N, V), (N), (N)", sh[0], sh[1], sh[2])
	}
	return tensor.Shape{sh[0][0]}, nil
}

func counted[T Float](w T, target int32) bool { return w != 0 && target >= 0 }

func (op *logProbsOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0], vs[2])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	targets, err := int32s(vs[1])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	n, v := vs[0].Shape()[0], vs[0].Shape()[1]
	if len(op.scale) != n {
		op.correct = make([]float64, n)
		op.logitSum = make([]float64, n)
		op.scale = make([]float64, n)
	}
	out := op.out.get(dt, n)
	var exps *tensor.Dense
	if op.grad != nil {
		exps = op.grad.out.get(dt, n, v)
	}
	if dt == tensor.Float32 {
		err = logProbsFwd(op, floats[float32](out), floats[float32](vs[0]), targets, floats[float32](vs[2]), v, denseData[float32](exps))
	} else {
		err = logProbsFwd(op, floats[float64](out), floats[float64](vs[0]), targets, floats[float64](vs[2]), v, denseData[float64](exps))
	}
	if err != nil {
		return nil, err
	}
	if op.keep {
		k := op.kept.get(dt, n, v)
		if dt == tensor.Float32 {
			copy(floats[float32](k), floats[float32](vs[0]))
		} else {
			copy(floats[float64](k), floats[float64](vs[0]))
		}
	}
	return out, nil
}

func denseData[T Float](t *tensor.Dense) []T {
	if t == nil {
		return nil
	}
	return t.Data().([]T)
}

// logProbsFwd computes the outputs and side outputs; when exps is not nil it also keeps
// exp(logit − max) of each counted row there for the backward op.
func logProbsFwd[T Float](op *logProbsOp, out, logits []T, targets []int32, w []T, v int, exps []T) error {
	for i, t := range targets {
		if counted(w[i], t) && int(t) >= v {
			return op.errorf("target %d at row %d is outside 0..%d", t, i, v-1)
		}
	}
	parallelRange(len(targets), max(1, 16384/v), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			t := targets[i]
			if !counted(w[i], t) {
				out[i], op.scale[i], op.correct[i], op.logitSum[i] = 0, 0, 0, 0
				continue
			}
			row := logits[i*v : (i+1)*v]
			m, arg := row[0], 0
			var sum float64
			for j, x := range row {
				if x > m {
					m, arg = x, j
				}
				sum += float64(x)
			}
			var dst []T
			if exps != nil {
				dst = exps[i*v : (i+1)*v]
			}
			l := expTo(dst, row, m)
			lse := float64(m) + math.Log(l)
			op.scale[i] = 1 / l
			op.logitSum[i] = sum
			op.correct[i] = 0
			if arg == int(t) {
				op.correct[i] = 1
			}
			out[i] = w[i] * T(float64(row[t])-lse)
		}
	})
	return nil
}

func (op *logProbsOp) DiffWRT(int) []bool { return []bool{true, false, false} }

func (op *logProbsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &logProbsGradOp{base: base{name: "ops.TokenLogProbsGrad"}, fwd: op}
	dl, err := G.ApplyOp(bw, inputs[0], inputs[1], inputs[2], output, grad)
	if err != nil {
		return nil, err
	}
	op.grad = bw
	return G.Nodes{dl, nil, nil}, nil
}

// logProbsGradOp takes logits, targets, weights, the forward output (which orders it after the
// forward op, whose exponentials and normalisers it reads) and the upstream gradient (N); it returns
// dlogits (N, V).
type logProbsGradOp struct {
	base
	fwd *logProbsOp
	out buf
}

func (op *logProbsGradOp) Arity() int { return 5 }
func (op *logProbsGradOp) Type() hm.Type {
	return fnType(floatT(2), intT(1), floatT(1), floatT(1), floatT(1), floatT(2))
}
func (op *logProbsGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, _ := shapeOf(ds[0])
	return s.Clone(), nil
}

func (op *logProbsGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0], vs[2], vs[4])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	targets, err := int32s(vs[1])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	n, v := vs[0].Shape()[0], vs[0].Shape()[1]
	if len(op.fwd.scale) != n {
		return nil, op.errorf("the forward op has not run")
	}
	if op.fwd.grad != op || op.out.t == nil || !op.out.t.Shape().Eq(vs[0].Shape()) || op.out.t.Dtype() != dt {
		return nil, op.errorf("the forward op did not leave its exponentials")
	}
	dl := op.out.t
	if dt == tensor.Float32 {
		logProbsBwd(floats[float32](dl), targets, floats[float32](vs[2]), floats[float32](vs[4]), op.fwd.scale, v)
	} else {
		logProbsBwd(floats[float64](dl), targets, floats[float64](vs[2]), floats[float64](vs[4]), op.fwd.scale, v)
	}
	return dl, nil
}

// logProbsBwd turns the kept exp(logit − max) rows of dl into dlogits in place:
// dl = c·(onehot − exp(logit − max)·scale) with c = weight·upstream.
func logProbsBwd[T Float](dl []T, targets []int32, w, g []T, scale []float64, v int) {
	parallelRange(len(targets), max(1, 16384/v), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			drow := dl[i*v : (i+1)*v]
			t := targets[i]
			c := w[i] * g[i]
			if !counted(w[i], t) || c == 0 {
				clear(drow)
				continue
			}
			k := -c * T(scale[i])
			for j := range drow {
				drow[j] *= k
			}
			drow[t] += c
		}
	})
}
