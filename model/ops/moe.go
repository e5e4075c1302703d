package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Mixtral's sparse mixture of experts is three ops over the router logits z = x·Wgᵀ (N, E):
//
//   - Route turns z into dense combination weights (N, E): as transformers, softmax over all E, keep
//     the top k, renormalise — which equals a softmax over the k selected logits — and 0 elsewhere.
//     RouteTopK can skip the renormalisation (Qwen3-MoE's norm_topk_prob false).
//   - RouterStats sums, over non-padding tokens, the top-k one-hot (row 0) and the full softmax
//     (row 1): (2, E). SwitchAuxLoss turns every layer's stats into the load-balancing loss.
//   - Experts gathers each expert's tokens, runs its SwiGLU MLP on just those rows and adds the
//     outputs back with the combination weights.
//
// The top-k selection itself is piecewise constant: gradients flow through the combination weights
// and the aux loss's softmax, not through which experts were chosen.

// topK writes the indices of the k largest values of row into idx, largest first; on ties the lower
// index wins.
func topK[T Float](row []T, idx []int) {
	for s := range idx {
		best := -1
		for j, v := range row {
			taken := false
			for _, p := range idx[:s] {
				if p == j {
					taken = true
					break
				}
			}
			if !taken && (best < 0 || v > row[best]) {
				best = j
			}
		}
		idx[s] = best
	}
}

// Route is the routing op: logits (N, E) to combination weights (N, E), the top k renormalised
// (Mixtral; Qwen3-MoE with norm_topk_prob).
func Route(logits *G.Node, k int) (*G.Node, error) { return RouteTopK(logits, k, true) }

// RouteTopK is Route with the renormalisation optional: with normalize false the k selected experts
// keep their full-softmax probabilities (Qwen3-MoE with norm_topk_prob false), which sum to less
// than 1.
func RouteTopK(logits *G.Node, k int, normalize bool) (*G.Node, error) {
	if logits.Dims() != 2 || k < 1 || k > logits.Shape()[1] {
		return nil, fmt.Errorf("ops.Route: top-k %d for router logits %v (want 1..E)", k, logits.Shape())
	}
	return G.ApplyOp(&routeOp{base: base{name: "ops.Route"}, k: k, norm: normalize}, logits)
}

type routeOp struct {
	base
	k    int
	norm bool
	out  buf
}

func (op *routeOp) Arity() int    { return 1 }
func (op *routeOp) Type() hm.Type { return fnType(floatT(2), floatT(2)) }
func (op *routeOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	return sh[0].Clone(), nil
}

func (op *routeOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	n, e := vs[0].Shape()[0], vs[0].Shape()[1]
	out := op.out.get(dt, n, e)
	if dt == tensor.Float32 {
		routeFwd(floats[float32](out), floats[float32](vs[0]), e, op.k, op.norm)
	} else {
		routeFwd(floats[float64](out), floats[float64](vs[0]), e, op.k, op.norm)
	}
	return out, nil
}

func routeFwd[T Float](out, z []T, e, k int, norm bool) {
	parallelRange(len(z)/e, 256, func(lo, hi int) {
		idx := make([]int, k)
		p := make([]float64, e)
		for i := lo; i < hi; i++ {
			row, o := z[i*e:(i+1)*e], out[i*e:(i+1)*e]
			topK(row, idx)
			clear(o)
			if !norm {
				softmaxRow(row, p)
				for _, j := range idx {
					o[j] = T(p[j])
				}
				continue
			}
			m := row[idx[0]]
			var s float64
			for _, j := range idx {
				s += float64(exp(row[j] - m))
			}
			for _, j := range idx {
				o[j] = T(float64(exp(row[j]-m)) / s)
			}
		}
	})
}

func (op *routeOp) DiffWRT(int) []bool { return []bool{true} }

func (op *routeOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !op.norm {
		dz, err := G.ApplyOp(&routeRawGradOp{base: base{name: "ops.RouteGrad"}}, inputs[0], output, grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dz}, nil
	}
	dz, err := G.ApplyOp(&routeGradOp{base: base{name: "ops.RouteGrad"}}, output, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dz}, nil
}

// routeRawGradOp is the unnormalised route's backward: with p = softmax(z) over all E and w the
// output (p_j on the selected experts, 0 elsewhere), dz_i = p_i·([w_i ≠ 0]·g_i − Σ_j w_j·g_j). It takes
// z, w and g.
type routeRawGradOp struct {
	base
	out buf
}

func (op *routeRawGradOp) Arity() int { return 3 }
func (op *routeRawGradOp) Type() hm.Type {
	return fnType(floatT(2), floatT(2), floatT(2), floatT(2))
}
func (op *routeRawGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, _ := shapeOf(ds[0])
	return s.Clone(), nil
}

func (op *routeRawGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	e := vs[0].Shape()[1]
	out := op.out.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		routeRawBwd(floats[float32](out), floats[float32](vs[0]), floats[float32](vs[1]), floats[float32](vs[2]), e)
	} else {
		routeRawBwd(floats[float64](out), floats[float64](vs[0]), floats[float64](vs[1]), floats[float64](vs[2]), e)
	}
	return out, nil
}

func routeRawBwd[T Float](dz, z, w, g []T, e int) {
	parallelRange(len(z)/e, 256, func(lo, hi int) {
		p := make([]float64, e)
		for i := lo; i < hi; i++ {
			zr, wr, gr, dr := z[i*e:(i+1)*e], w[i*e:(i+1)*e], g[i*e:(i+1)*e], dz[i*e:(i+1)*e]
			softmaxRow(zr, p)
			var dot float64
			for j := range wr {
				dot += float64(wr[j]) * float64(gr[j])
			}
			for j := range wr {
				var sel float64
				if wr[j] != 0 {
					sel = float64(gr[j])
				}
				dr[j] = T(p[j] * (sel - dot))
			}
		}
	})
}

// routeGradOp: for selected j (weight w_j > 0), dz_j = w_j·(g_j − Σ_k w_k·g_k); 0 elsewhere.
type routeGradOp struct {
	base
	out buf
}

func (op *routeGradOp) Arity() int    { return 2 }
func (op *routeGradOp) Type() hm.Type { return fnType(floatT(2), floatT(2), floatT(2)) }
func (op *routeGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, _ := shapeOf(ds[0])
	return s.Clone(), nil
}

func (op *routeGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	e := vs[0].Shape()[1]
	out := op.out.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		routeBwd(floats[float32](out), floats[float32](vs[0]), floats[float32](vs[1]), e)
	} else {
		routeBwd(floats[float64](out), floats[float64](vs[0]), floats[float64](vs[1]), e)
	}
	return out, nil
}

func routeBwd[T Float](dz, w, g []T, e int) {
	parallelRange(len(w)/e, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			wr, gr, dr := w[i*e:(i+1)*e], g[i*e:(i+1)*e], dz[i*e:(i+1)*e]
			var dot float64
			for j := range wr {
				dot += float64(wr[j]) * float64(gr[j])
			}
			for j := range wr {
				dr[j] = wr[j] * (gr[j] - T(dot))
			}
		}
	})
}

// RouterStats is the aux-loss statistics op: logits (N, E) and segments (N) (Int32; 0 = padding,
// which transformers' attention mask leaves out) give (2, E): row 0 counts, per expert, the
// non-padding tokens that selected it among their top k; row 1 sums their full-softmax
// probabilities. Only row 1 is differentiable.
func RouterStats(logits, segments *G.Node, k int) (*G.Node, error) {
	if logits.Dims() != 2 || k < 1 || k > logits.Shape()[1] {
		return nil, fmt.Errorf("ops.RouterStats: top-k %d for router logits %v (want 1..E)", k, logits.Shape())
	}
	return G.ApplyOp(&routerStatsOp{base: base{name: "ops.RouterStats"}, k: k}, logits, segments)
}

type routerStatsOp struct {
	base
	k   int
	out buf
}

func (op *routerStatsOp) Arity() int    { return 2 }
func (op *routerStatsOp) Type() hm.Type { return fnType(floatT(2), intT(1), floatT(2)) }
func (op *routerStatsOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	z, s := sh[0], sh[1]
	if len(z) != 2 || !s.Eq(tensor.Shape{z[0]}) {
		return nil, op.errorf("logits %v and segments %v: want (N, E) and (N)", z, s)
	}
	return tensor.Shape{2, z[1]}, nil
}

func (op *routerStatsOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	seg, err := int32s(vs[1])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	e := vs[0].Shape()[1]
	out := op.out.get(dt, 2, e)
	if dt == tensor.Float32 {
		routerStatsFwd(floats[float32](out), floats[float32](vs[0]), seg, e, op.k)
	} else {
		routerStatsFwd(floats[float64](out), floats[float64](vs[0]), seg, e, op.k)
	}
	return out, nil
}

// softmaxRow writes softmax(row) into p in float64.
func softmaxRow[T Float](row []T, p []float64) {
	m := row[0]
	for _, v := range row {
		m = max(m, v)
	}
	var s float64
	for j, v := range row {
		p[j] = float64(exp(v - m))
		s += p[j]
	}
	for j := range p {
		p[j] /= s
	}
}

func routerStatsFwd[T Float](out, z []T, seg []int32, e, k int) {
	// Serial in token order, so the float64 sums do not depend on scheduling (E is small).
	counts := make([]float64, e)
	probs := make([]float64, e)
	p := make([]float64, e)
	idx := make([]int, k)
	for i, s := range seg {
		if s == 0 {
			continue
		}
		row := z[i*e : (i+1)*e]
		topK(row, idx)
		for _, j := range idx {
			counts[j]++
		}
		softmaxRow(row, p)
		for j := range p {
			probs[j] += p[j]
		}
	}
	for j := 0; j < e; j++ {
		out[j] = T(counts[j])
		out[e+j] = T(probs[j])
	}
}

func (op *routerStatsOp) DiffWRT(int) []bool { return []bool{true, false} }

func (op *routerStatsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dz, err := G.ApplyOp(&routerStatsGradOp{base: base{name: "ops.RouterStatsGrad"}}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dz, nil}, nil
}

// routerStatsGradOp: for a non-padding token with softmax p and g = dstats[1], dz = p ⊙ (g − ⟨p, g⟩).
type routerStatsGradOp struct {
	base
	out buf
}

func (op *routerStatsGradOp) Arity() int    { return 3 }
func (op *routerStatsGradOp) Type() hm.Type { return fnType(floatT(2), intT(1), floatT(2), floatT(2)) }
func (op *routerStatsGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, _ := shapeOf(ds[0])
	return s.Clone(), nil
}

func (op *routerStatsGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0], vs[2])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	seg, err := int32s(vs[1])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	e := vs[0].Shape()[1]
	out := op.out.get(dt, vs[0].Shape()...)
	if dt == tensor.Float32 {
		routerStatsBwd(floats[float32](out), floats[float32](vs[0]), seg, floats[float32](vs[2])[e:], e)
	} else {
		routerStatsBwd(floats[float64](out), floats[float64](vs[0]), seg, floats[float64](vs[2])[e:], e)
	}
	return out, nil
}

func routerStatsBwd[T Float](dz, z []T, seg []int32, g []T, e int) {
	parallelRange(len(seg), 256, func(lo, hi int) {
		p := make([]float64, e)
		for i := lo; i < hi; i++ {
			dr := dz[i*e : (i+1)*e]
			if seg[i] == 0 {
				clear(dr)
				continue
			}
			softmaxRow(z[i*e:(i+1)*e], p)
			var dot float64
			for j := range p {
				dot += p[j] * float64(g[j])
			}
			for j := range p {
				dr[j] = T(p[j] * (float64(g[j]) - dot))
			}
		}
	})
}

// SwitchAuxLoss is transformers' load_balancing_loss_func for Mixtral with an attention mask: the
// router logits of all layers are concatenated, so with M = layers·tokens (non-padding tokens per
// layer), f_e = Σ_layers count_e / M and P_e = Σ_layers probsum_e / M, the loss is E·Σ_e f_e·P_e.
// stats holds each layer's RouterStats value (2·E, row-major). The gradient is E·f_e/M with
// respect to every layer's probability sums and 0 for the counts. With no tokens the loss is 0.
func SwitchAuxLoss(stats [][]float64, numExperts, tokens int) (loss float64, grads [][]float64) {
	e := numExperts
	grads = make([][]float64, len(stats))
	for l := range grads {
		grads[l] = make([]float64, 2*e)
	}
	m := float64(len(stats) * tokens)
	if m == 0 {
		return 0, grads
	}
	f := make([]float64, e)
	p := make([]float64, e)
	for _, s := range stats {
		for j := 0; j < e; j++ {
			f[j] += s[j] / m
			p[j] += s[e+j] / m
		}
	}
	for j := 0; j < e; j++ {
		loss += f[j] * p[j]
	}
	loss *= float64(e)
	for l := range grads {
		for j := 0; j < e; j++ {
			grads[l][e+j] = float64(e) * f[j] / m
		}
	}
	return loss, grads
}

// Experts is the sparse expert layer: x (N, D), combination weights (N, E) from Route, and each
// expert's w1 (gate, (F, D)), w3 (up, (F, D)) and w2 (down, (D, F)) give
// y[n] = Σ_e c[n,e]·w2_e·(silu(w1_e·x[n]) ⊙ w3_e·x[n]), computed only for the rows with c[n,e] ≠ 0
// (a selected expert whose weight underflowed to 0 contributes nothing either way). Accordingly dc
// is computed only where c ≠ 0 and is 0 elsewhere: that is all Route's backward reads, as it
// multiplies by the weight. The forward op
// keeps the gathered rows and activations for the backward op, which returns dx and keeps the
// weights' gradients and dc.
func Experts(x, combine *G.Node, w1, w3, w2 []*G.Node) (*G.Node, error) {
	return experts(x, combine, w1, w3, w2, false)
}

// FrozenExperts is Experts over expert matrices that are not trained (a LoRA run whose adapters
// leave the experts alone): its backward gives dx and dc only and keeps no weight gradients.
func FrozenExperts(x, combine *G.Node, w1, w3, w2 []*G.Node) (*G.Node, error) {
	return experts(x, combine, w1, w3, w2, true)
}

func experts(x, combine *G.Node, w1, w3, w2 []*G.Node, frozen bool) (*G.Node, error) {
	e := len(w1)
	if e == 0 || len(w3) != e || len(w2) != e {
		return nil, fmt.Errorf("ops.Experts: %d gate, %d up and %d down matrices (want one of each per expert)", len(w1), len(w3), len(w2))
	}
	in := append(G.Nodes{x, combine}, w1...)
	in = append(in, w3...)
	in = append(in, w2...)
	return G.ApplyOp(&expertsOp{base: base{name: "ops.Experts"}, e: e, frozen: frozen}, in...)
}

type expertsOp struct {
	base
	e      int
	frozen bool // no gradients for the expert matrices
	out    buf
	// From the last forward run, with rows grouped by expert: rows[off[e]:off[e+1]] are expert e's
	// tokens. Slots of s32/s64: 0 gathered x (R, D), 1 gate (R, F), 2 up (R, F), 3 h (R, F),
	// 4 expert output (R, D), 5 σ(gate) (R, F).
	rows []int32
	off  []int
	s32  scratch[float32]
	s64  scratch[float64]
	ran  bool
}

func (op *expertsOp) Arity() int { return 3*op.e + 2 }
func (op *expertsOp) Type() hm.Type {
	ts := make([]hm.Type, op.Arity()+1)
	for i := range ts {
		ts[i] = floatT(2)
	}
	return fnType(ts...)
}

func (op *expertsOp) checkShapes(sh []tensor.Shape) error {
	x, c := sh[0], sh[1]
	if len(x) != 2 || !c.Eq(tensor.Shape{x[0], op.e}) {
		return op.errorf("x %v and combination weights %v: want (N, D) and (N, %d)", x, c, op.e)
	}
	d := x[1]
	f := sh[2][0]
	for e := 0; e < op.e; e++ {
		if !sh[2+e].Eq(tensor.Shape{f, d}) || !sh[2+op.e+e].Eq(tensor.Shape{f, d}) || !sh[2+2*op.e+e].Eq(tensor.Shape{d, f}) {
			return op.errorf("expert %d has w1 %v, w3 %v, w2 %v; want (%d, %d), (%d, %d), (%d, %d)", e, sh[2+e], sh[2+op.e+e], sh[2+2*op.e+e], f, d, f, d, d, f)
		}
	}
	return nil
}

func (op *expertsOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	if err := op.checkShapes(sh); err != nil {
		return nil, err
	}
	return sh[0].Clone(), nil
}

func (op *expertsOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	sh := make([]tensor.Shape, len(vs))
	for i, v := range vs {
		sh[i] = v.Shape()
	}
	if err := op.checkShapes(sh); err != nil {
		return nil, err
	}
	out := op.out.get(dt, sh[0]...)
	if dt == tensor.Float32 {
		expertsFwd(op, floats[float32](out), vs, &op.s32)
	} else {
		expertsFwd(op, floats[float64](out), vs, &op.s64)
	}
	op.ran = true
	return out, nil
}

func expertsFwd[T Float](op *expertsOp, y []T, vs []G.Value, sc *scratch[T]) {
	E := op.e
	x, c := floats[T](vs[0]), floats[T](vs[1])
	n, d := vs[0].Shape()[0], vs[0].Shape()[1]
	f := vs[2].Shape()[0]
	op.rows = op.rows[:0]
	op.off = append(op.off[:0], 0)
	for e := 0; e < E; e++ {
		for i := 0; i < n; i++ {
			if c[i*E+e] != 0 {
				op.rows = append(op.rows, int32(i))
			}
		}
		op.off = append(op.off, len(op.rows))
	}
	r := len(op.rows)
	xs := sc.get(0, r*d)
	gate, up, h := sc.get(1, r*f), sc.get(2, r*f), sc.get(3, r*f)
	ye := sc.get(4, r*d)
	rows := op.rows
	parallelRange(r, max(1, 4096/d), func(lo, hi int) {
		for j := lo; j < hi; j++ {
			copy(xs[j*d:(j+1)*d], x[int(rows[j])*d:int(rows[j]+1)*d])
		}
	})
	for e := 0; e < E; e++ {
		r0, ne := op.off[e], op.off[e+1]-op.off[e]
		matmul(false, true, ne, f, d, 1, xs[r0*d:], d, floats[T](vs[2+e]), d, 0, gate[r0*f:], f)
		matmul(false, true, ne, f, d, 1, xs[r0*d:], d, floats[T](vs[2+E+e]), d, 0, up[r0*f:], f)
	}
	swigluFwd(h, gate, up, sc.get(5, r*f))
	for e := 0; e < E; e++ {
		r0, ne := op.off[e], op.off[e+1]-op.off[e]
		matmul(false, true, ne, d, f, 1, h[r0*f:], f, floats[T](vs[2+2*E+e]), f, 0, ye[r0*d:], d)
	}
	clear(y)
	// Expert by expert (each token at most once per expert), so each token's sum runs in expert order.
	for e := 0; e < E; e++ {
		r0, r1 := op.off[e], op.off[e+1]
		parallelRange(r1-r0, max(1, 4096/d), func(lo, hi int) {
			for j := r0 + lo; j < r0+hi; j++ {
				t := int(rows[j])
				w := c[t*E+e]
				dst, src := y[t*d:(t+1)*d], ye[j*d:(j+1)*d]
				for k := range dst {
					dst[k] += w * src[k]
				}
			}
		})
	}
}

func (op *expertsOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = i < 2 || !op.frozen
	}
	return d
}

func (op *expertsOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	bw := &expertsGradOp{base: base{name: "ops.ExpertsGrad"}, fwd: op, dw: make([]buf, 3*op.e)}
	in := append(append(G.Nodes{}, inputs...), output, grad)
	dx, err := G.ApplyOp(bw, in...)
	if err != nil {
		return nil, err
	}
	out := G.Nodes{dx}
	dc, err := newPart("ops.ExpertsGradCombine", dx, inputs[1].Shape(), func() *tensor.Dense { return bw.dc.t })
	if err != nil {
		return nil, err
	}
	out = append(out, dc)
	if op.frozen {
		return append(out, make(G.Nodes, 3*op.e)...), nil
	}
	for i := 0; i < 3*op.e; i++ {
		slot := &bw.dw[i]
		p, err := newPart(fmt.Sprintf("ops.ExpertsGradW%d", i), dx, inputs[2+i].Shape(), func() *tensor.Dense { return slot.t })
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// expertsGradOp takes the forward inputs, the forward output and dy; it returns dx and keeps dc and
// the gradients of every w1, w3, w2 (in input order).
type expertsGradOp struct {
	base
	fwd    *expertsOp
	dx, dc buf
	dw     []buf
	// Slots: 0 dy·c per row (R, D), 1 dh (R, F), 2 dgate (R, F), 3 dup (R, F), 4 dx per row (R, D).
	s32 scratch[float32]
	s64 scratch[float64]
}

func (op *expertsGradOp) Arity() int { return op.fwd.Arity() + 2 }
func (op *expertsGradOp) Type() hm.Type {
	ts := make([]hm.Type, op.Arity()+1)
	for i := range ts {
		ts[i] = floatT(2)
	}
	return fnType(ts...)
}
func (op *expertsGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, _ := shapeOf(ds[0])
	return s.Clone(), nil
}

func (op *expertsGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs...)
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if !op.fwd.ran {
		return nil, op.errorf("the forward experts op has not run")
	}
	dx := op.dx.get(dt, vs[0].Shape()...)
	op.dc.get(dt, vs[1].Shape()...)
	for i := range op.dw {
		if !op.fwd.frozen {
			op.dw[i].get(dt, vs[2+i].Shape()...)
		}
	}
	if dt == tensor.Float32 {
		expertsBwd(op, floats[float32](dx), vs, &op.fwd.s32, &op.s32)
	} else {
		expertsBwd(op, floats[float64](dx), vs, &op.fwd.s64, &op.s64)
	}
	return dx, nil
}

func expertsBwd[T Float](op *expertsGradOp, dx []T, vs []G.Value, fs, sc *scratch[T]) {
	fwd := op.fwd
	E := fwd.e
	c := floats[T](vs[1])
	dy := floats[T](vs[len(vs)-1])
	d := vs[0].Shape()[1]
	f := vs[2].Shape()[0]
	rows := fwd.rows
	r := len(rows)
	xs, gate, up, h, ye := fs.get(0, r*d), fs.get(1, r*f), fs.get(2, r*f), fs.get(3, r*f), fs.get(4, r*d)
	dyc, dh, dg, du, dxs := sc.get(0, r*d), sc.get(1, r*f), sc.get(2, r*f), sc.get(3, r*f), sc.get(4, r*d)
	dc := floats[T](op.dc.t)
	clear(dc)
	for e := 0; e < E; e++ {
		r0, r1 := fwd.off[e], fwd.off[e+1]
		parallelRange(r1-r0, max(1, 4096/d), func(lo, hi int) {
			for j := r0 + lo; j < r0+hi; j++ {
				t := int(rows[j])
				w := c[t*E+e]
				src, dst, yr := dy[t*d:(t+1)*d], dyc[j*d:(j+1)*d], ye[j*d:(j+1)*d]
				var dot float64
				for k := range dst {
					dst[k] = w * src[k]
					dot += float64(src[k]) * float64(yr[k])
				}
				dc[t*E+e] = T(dot)
			}
		})
	}
	for e := 0; e < E; e++ {
		r0, ne := fwd.off[e], fwd.off[e+1]-fwd.off[e]
		w2 := floats[T](vs[2+2*E+e])
		if !fwd.frozen {
			matmul(true, false, d, f, ne, 1, dyc[r0*d:], d, h[r0*f:], f, 0, floats[T](op.dw[2*E+e].t), f)
		}
		matmul(false, false, ne, f, d, 1, dyc[r0*d:], d, w2, f, 0, dh[r0*f:], f)
	}
	swigluBwd(dg, du, gate, up, dh, fs.get(5, r*f))
	for e := 0; e < E; e++ {
		r0, ne := fwd.off[e], fwd.off[e+1]-fwd.off[e]
		w1, w3 := floats[T](vs[2+e]), floats[T](vs[2+E+e])
		if !fwd.frozen {
			matmul(true, false, f, d, ne, 1, dg[r0*f:], f, xs[r0*d:], d, 0, floats[T](op.dw[e].t), d)
			matmul(true, false, f, d, ne, 1, du[r0*f:], f, xs[r0*d:], d, 0, floats[T](op.dw[E+e].t), d)
		}
		matmul(false, false, ne, d, f, 1, dg[r0*f:], f, w1, d, 0, dxs[r0*d:], d)
		matmul(false, false, ne, d, f, 1, du[r0*f:], f, w3, d, 1, dxs[r0*d:], d)
	}
	clear(dx)
	for e := 0; e < E; e++ {
		r0, r1 := fwd.off[e], fwd.off[e+1]
		parallelRange(r1-r0, max(1, 4096/d), func(lo, hi int) {
			for j := r0 + lo; j < r0+hi; j++ {
				t := int(rows[j])
				dst, src := dx[t*d:(t+1)*d], dxs[j*d:(j+1)*d]
				for k := range dst {
					dst[k] += src[k]
				}
			}
		})
	}
}
