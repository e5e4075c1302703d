package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// AttentionSpec fixes the shapes of one attention op. Rows are (b, t) in row-major order, so the
// N = Batch·SeqLen rows of q, k and v hold batch row b's tokens at b·SeqLen .. b·SeqLen+SeqLen-1.
type AttentionSpec struct {
	Batch, SeqLen int
	Heads         int // query heads H
	KVHeads       int // key/value heads; query head h reads KV head h / (H/KVHeads) (GQA)
	HeadDim       int
	// Window is Mistral's sliding window: query index i sees key index j only when i−j < Window
	// (itself included). 0 means full causal attention.
	Window int
}

func (s AttentionSpec) validate() error {
	if s.Batch <= 0 || s.SeqLen <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.HeadDim <= 0 {
		return fmt.Errorf("ops.Attention: batch %d, seq_len %d, heads %d, kv_heads %d, head_dim %d must all be positive", s.Batch, s.SeqLen, s.Heads, s.KVHeads, s.HeadDim)
	}
	if s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("ops.Attention: heads %d is not a multiple of kv_heads %d", s.Heads, s.KVHeads)
	}
	if s.Window < 0 {
		return fmt.Errorf("ops.Attention: window %d is negative", s.Window)
	}
	return nil
}

// attnBlock is the number of queries handled per score block; the block's keys run from the
// earliest key any of its queries may see to its last query, so the causal upper triangle beyond
// the block is never computed.
const attnBlock = 64

// attnKeepLimit bounds the probabilities (elements, per op) that a differentiated attention op
// keeps for its backward pass; above it (long sequences) the backward pass recomputes them from the
// log-sum-exp instead.
const attnKeepLimit = 1 << 24

// Attention is causal scaled-dot-product attention (scale 1/sqrt(HeadDim)) for q (N, H·hd),
// k and v (N, KV·hd) and segments (N) (Int32), giving (N, H·hd) in q's layout. Key j is visible to
// query i of the same batch row when j ≤ i, i−j < Window (if set) and both carry the same non-zero
// segment id, so packed examples attend only within themselves. A padding token (segment 0) sees only
// itself: its output is finite and, as nothing else sees it, it influences nothing.
//
// No mask, repeated K/V or transpose is materialised: each (batch row, head) runs blocks of
// attnBlock queries through the BLAS on strided views of q, k and v, split over the cores by
// (batch row, head). A differentiated forward op keeps the blocks' probabilities (up to
// attnKeepLimit elements; beyond that only each query's log-sum-exp, from which the backward op
// recomputes them as FlashAttention does). The backward op, split by (batch row, KV head) so that
// each worker owns its dk and dv rows, returns dq and keeps dk and dv for two part ops.
func Attention(spec AttentionSpec, q, k, v, segments *G.Node) (*G.Node, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	return G.ApplyOp(&attentionOp{base: base{name: "ops.Attention"}, spec: spec, keepLimit: attnKeepLimit}, q, k, v, segments)
}

type attentionOp struct {
	base
	spec  AttentionSpec
	out   buf
	lse   []float64 // (N, H): log Σ_j exp(score_ij) per query and head, from the last forward run
	rowLo []int32   // (N): the first key index (within its row) that query i may see
	s32   scratch[float32]
	s64   scratch[float64]
	seen  map[int32]int32
	// keep is set once the op is differentiated: the forward pass then writes each block's
	// probabilities into kept (slot 0 of k32/k64) at pOff[(b·H+h)·blocks + block], when they fit in
	// attnKeepLimit (kept is false otherwise), and the backward pass reads them.
	keep, kept bool
	keepLimit  int
	pOff       []int
	k32        scratch[float32]
	k64        scratch[float64]
}

// planKeep lays out the kept probabilities: per (batch row, head), block after block, each
// rows × keys. It returns the total, or -1 when over attnKeepLimit.
func (op *attentionOp) planKeep() int {
	s := op.spec
	blocks := (s.SeqLen + attnBlock - 1) / attnBlock
	if len(op.pOff) != s.Batch*s.Heads*blocks {
		op.pOff = make([]int, s.Batch*s.Heads*blocks)
	}
	total := 0
	for b := 0; b < s.Batch; b++ {
		for h := 0; h < s.Heads; h++ {
			for blk := 0; blk < blocks; blk++ {
				i0 := blk * attnBlock
				i1 := min(i0+attnBlock, s.SeqLen)
				lo, hi := blockKeys(op.rowLo, b*s.SeqLen, i0, i1)
				op.pOff[(b*s.Heads+h)*blocks+blk] = total
				total += (i1 - i0) * (hi - lo)
			}
		}
	}
	if total > op.keepLimit {
		return -1
	}
	return total
}

func (op *attentionOp) Arity() int { return 4 }
func (op *attentionOp) Type() hm.Type {
	return fnType(floatT(2), floatT(2), floatT(2), intT(1), floatT(2))
}

func (op *attentionOp) checkShapes(q, k, v, seg tensor.Shape) error {
	s := op.spec
	n := s.Batch * s.SeqLen
	if !q.Eq(tensor.Shape{n, s.Heads * s.HeadDim}) || !k.Eq(tensor.Shape{n, s.KVHeads * s.HeadDim}) ||
		!v.Eq(tensor.Shape{n, s.KVHeads * s.HeadDim}) || !seg.Eq(tensor.Shape{n}) {
		return op.errorf("q %v, k %v, v %v, segments %v do not match batch %d × seq_len %d with %d heads, %d kv heads of %d",
			q, k, v, seg, s.Batch, s.SeqLen, s.Heads, s.KVHeads, s.HeadDim)
	}
	return nil
}

func (op *attentionOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	if err := op.checkShapes(sh[0], sh[1], sh[2], sh[3]); err != nil {
		return nil, err
	}
	return sh[0].Clone(), nil
}

// computeRowLo fills rowLo: the earliest key each query may see (its segment's first token, the
// window's start, or itself for padding). Keys in [rowLo, i] still need the segment test when ids
// repeat non-contiguously.
func computeRowLo(rowLo []int32, seen *map[int32]int32, seg []int32, spec AttentionSpec) {
	if *seen == nil {
		*seen = make(map[int32]int32)
	}
	m := *seen
	for b := 0; b < spec.Batch; b++ {
		clear(m)
		for t := 0; t < spec.SeqLen; t++ {
			i := b*spec.SeqLen + t
			s := seg[i]
			first, ok := m[s]
			if !ok {
				first = int32(t)
				m[s] = first
			}
			if s == 0 {
				first = int32(t)
			}
			if spec.Window > 0 {
				first = max(first, int32(t-spec.Window+1))
			}
			rowLo[i] = first
		}
	}
}

func (op *attentionOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0], vs[1], vs[2])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	seg, err := int32s(vs[3])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if err := op.checkShapes(vs[0].Shape(), vs[1].Shape(), vs[2].Shape(), vs[3].Shape()); err != nil {
		return nil, err
	}
	s := op.spec
	n := s.Batch * s.SeqLen
	if len(op.lse) != n*s.Heads {
		op.lse = make([]float64, n*s.Heads)
		op.rowLo = make([]int32, n)
	}
	computeRowLo(op.rowLo, &op.seen, seg, s)
	out := op.out.get(dt, n, s.Heads*s.HeadDim)
	op.kept = false
	keepN := -1
	if op.keep {
		keepN = op.planKeep()
		op.kept = keepN >= 0
	}
	if dt == tensor.Float32 {
		var kept []float32
		if op.kept {
			kept = op.k32.get(0, keepN)
		}
		attnForward(s, floats[float32](out), floats[float32](vs[0]), floats[float32](vs[1]), floats[float32](vs[2]), seg, op.rowLo, op.lse, &op.s32, kept, op.pOff)
	} else {
		var kept []float64
		if op.kept {
			kept = op.k64.get(0, keepN)
		}
		attnForward(s, floats[float64](out), floats[float64](vs[0]), floats[float64](vs[1]), floats[float64](vs[2]), seg, op.rowLo, op.lse, &op.s64, kept, op.pOff)
	}
	return out, nil
}

// blockKeys returns the key range [lo, hi) that queries [i0, i1) of one batch row need.
func blockKeys(rowLo []int32, base, i0, i1 int) (int, int) {
	lo := i1
	for i := i0; i < i1; i++ {
		lo = min(lo, int(rowLo[base+i]))
	}
	return lo, i1
}

// maskRow prepares one query's row of scores (already scaled; keys lo..lo+len(row)-1) for a
// softmax: keys that query i may not see inside its span [rowLo, i] become −Inf, the entries outside
// the span become 0. It returns the span within row and the largest visible score.
func maskRow[T Float](row []T, seg []int32, base, lo, i, rowLo int) (jlo, jhi int, m T) {
	jlo, jhi = rowLo-lo, i-lo+1
	clear(row[:jlo])
	clear(row[jhi:])
	span := row[jlo:jhi]
	si := seg[base+i]
	m = row[jhi-1] // the query itself is always visible
	if si == 0 {
		// Padding sees itself only; its span is just itself (rowLo = i).
		return jlo, jhi, m
	}
	negInf := T(math.Inf(-1))
	keys := seg[base+lo+jlo : base+lo+jhi]
	for j, v := range span {
		if keys[j] != si {
			span[j] = negInf
		} else if v > m {
			m = v
		}
	}
	return jlo, jhi, m
}

// attnForward computes the output and log-sum-exps; with kept (not nil) each block's
// probabilities are computed in place there, at pOff, instead of in scratch memory.
func attnForward[T Float](s AttentionSpec, out, q, k, v []T, seg, rowLo []int32, lse []float64, sc *scratch[T], kept []T, pOff []int) {
	H, KV, hd, Tn := s.Heads, s.KVHeads, s.HeadDim, s.SeqLen
	group := H / KV
	scale := T(1 / math.Sqrt(float64(hd)))
	ldq, ldk := H*hd, KV*hd
	for w := 0; w < workers(); w++ {
		sc.get(w, attnBlock*Tn)
	}
	blocks := (Tn + attnBlock - 1) / attnBlock
	defer SerialBLAS()()
	parallelItems(s.Batch*H, func(worker, item int) {
		b, h := item/H, item%H
		g := h / group
		base := b * Tn
		S := sc.get(worker, attnBlock*Tn)
		for i0 := 0; i0 < Tn; i0 += attnBlock {
			i1 := min(i0+attnBlock, Tn)
			rows := i1 - i0
			lo, hi := blockKeys(rowLo, base, i0, i1)
			nk := hi - lo
			if kept != nil {
				off := pOff[item*blocks+i0/attnBlock]
				S = kept[off : off+rows*nk]
			}
			qOff := ((base+i0)*H + h) * hd
			kOff := ((base+lo)*KV + g) * hd
			tiledGemm(false, true, rows, nk, hd, scale, q[qOff:], ldq, k[kOff:], ldk, 0, S, nk)
			for r := 0; r < rows; r++ {
				i := i0 + r
				row := S[r*nk : (r+1)*nk]
				jlo, jhi, m := maskRow(row, seg, base, lo, i, int(rowLo[base+i]))
				span := row[jlo:jhi]
				l := expShift(span, m)
				lse[(base+i)*H+h] = float64(m) + math.Log(l)
				inv := T(1 / l)
				for j := range span {
					span[j] *= inv
				}
			}
			tiledGemm(false, false, rows, hd, nk, 1, S, nk, v[kOff:], ldk, 0, out[qOff:], ldq)
		}
	})
}

func (op *attentionOp) DiffWRT(int) []bool { return []bool{true, true, true, false} }

func (op *attentionOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	op.keep = true
	bw := &attentionGradOp{base: base{name: "ops.AttentionGrad"}, fwd: op}
	dq, err := G.ApplyOp(bw, inputs[0], inputs[1], inputs[2], inputs[3], output, grad)
	if err != nil {
		return nil, err
	}
	dk, err := newPart("ops.AttentionGradK", dq, inputs[1].Shape(), func() *tensor.Dense { return bw.dk.t })
	if err != nil {
		return nil, err
	}
	dv, err := newPart("ops.AttentionGradV", dq, inputs[2].Shape(), func() *tensor.Dense { return bw.dv.t })
	if err != nil {
		return nil, err
	}
	return G.Nodes{dq, dk, dv, nil}, nil
}

// attentionGradOp takes q, k, v, segments, the forward output o and its gradient do; it returns dq
// and keeps dk and dv. It reads the forward op's log-sum-exp, which the forward op computed in this
// run because o is one of this op's inputs.
type attentionGradOp struct {
	base
	fwd        *attentionOp
	dq, dk, dv buf
	dsum       []float64 // (N, H): Σ_d do·o per query and head
	s32a, s32b scratch[float32]
	s64a, s64b scratch[float64]
}

func (op *attentionGradOp) Arity() int { return 6 }
func (op *attentionGradOp) Type() hm.Type {
	return fnType(floatT(2), floatT(2), floatT(2), intT(1), floatT(2), floatT(2), floatT(2))
}
func (op *attentionGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	q, _ := shapeOf(ds[0])
	return q.Clone(), nil
}

func (op *attentionGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0], vs[1], vs[2], vs[4], vs[5])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	seg, err := int32s(vs[3])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	s := op.fwd.spec
	n := s.Batch * s.SeqLen
	if len(op.fwd.lse) != n*s.Heads {
		return nil, op.errorf("the forward attention has not run")
	}
	if len(op.dsum) != n*s.Heads {
		op.dsum = make([]float64, n*s.Heads)
	}
	dq := op.dq.get(dt, vs[0].Shape()...)
	dk := op.dk.get(dt, vs[1].Shape()...)
	dv := op.dv.get(dt, vs[2].Shape()...)
	if dt == tensor.Float32 {
		var kept []float32
		if op.fwd.kept {
			kept = op.fwd.k32.get(0, 0)
		}
		attnBackward(s, floats[float32](dq), floats[float32](dk), floats[float32](dv), floats[float32](vs[0]), floats[float32](vs[1]), floats[float32](vs[2]),
			floats[float32](vs[4]), floats[float32](vs[5]), seg, op.fwd.rowLo, op.fwd.lse, op.dsum, &op.s32a, &op.s32b, kept, op.fwd.pOff)
	} else {
		var kept []float64
		if op.fwd.kept {
			kept = op.fwd.k64.get(0, 0)
		}
		attnBackward(s, floats[float64](dq), floats[float64](dk), floats[float64](dv), floats[float64](vs[0]), floats[float64](vs[1]), floats[float64](vs[2]),
			floats[float64](vs[4]), floats[float64](vs[5]), seg, op.fwd.rowLo, op.fwd.lse, op.dsum, &op.s64a, &op.s64b, kept, op.fwd.pOff)
	}
	return dq, nil
}

// attnBackward: with P recomputed from the log-sum-exp and D_i = Σ_d do_i·o_i,
//
//	dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − D)·scale,  dQ = dS·K,  dK += dSᵀ·Q.
//
// Work is split by (batch row, KV head), so each worker owns its dk and dv rows.
func attnBackward[T Float](s AttentionSpec, dq, dk, dv, q, k, v, o, do []T, seg, rowLo []int32, lse, dsum []float64, scA, scB *scratch[T], kept []T, pOff []int) {
	H, KV, hd, Tn := s.Heads, s.KVHeads, s.HeadDim, s.SeqLen
	group := H / KV
	scale := T(1 / math.Sqrt(float64(hd)))
	ldq, ldk := H*hd, KV*hd
	n := s.Batch * Tn
	parallelRange(n, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for h := 0; h < H; h++ {
				var d float64
				off := (i*H + h) * hd
				for x := 0; x < hd; x++ {
					d += float64(do[off+x]) * float64(o[off+x])
				}
				dsum[i*H+h] = d
			}
		}
	})
	for w := 0; w < workers(); w++ {
		scA.get(w, attnBlock*Tn)
		scB.get(w, attnBlock*Tn)
	}
	defer SerialBLAS()()
	parallelItems(s.Batch*KV, func(worker, item int) {
		b, g := item/KV, item%KV
		base := b * Tn
		for t := 0; t < Tn; t++ {
			off := ((base+t)*KV + g) * hd
			clear(dk[off : off+hd])
			clear(dv[off : off+hd])
		}
		dS := scB.get(worker, attnBlock*Tn)
		blocks := (Tn + attnBlock - 1) / attnBlock
		for h := g * group; h < (g+1)*group; h++ {
			for i0 := 0; i0 < Tn; i0 += attnBlock {
				i1 := min(i0+attnBlock, Tn)
				rows := i1 - i0
				lo, hi := blockKeys(rowLo, base, i0, i1)
				nk := hi - lo
				qOff := ((base+i0)*H + h) * hd
				kOff := ((base+lo)*KV + g) * hd
				var P []T
				if kept != nil {
					off := pOff[(b*H+h)*blocks+i0/attnBlock]
					P = kept[off : off+rows*nk]
				} else {
					P = scA.get(worker, attnBlock*Tn)
					tiledGemm(false, true, rows, nk, hd, scale, q[qOff:], ldq, k[kOff:], ldk, 0, P, nk)
					for r := 0; r < rows; r++ {
						i := i0 + r
						row := P[r*nk : (r+1)*nk]
						jlo, jhi, _ := maskRow(row, seg, base, lo, i, int(rowLo[base+i]))
						expShift(row[jlo:jhi], T(lse[(base+i)*H+h]))
					}
				}
				tiledGemm(true, false, nk, hd, rows, 1, P, nk, do[qOff:], ldq, 1, dv[kOff:], ldk)
				tiledGemm(false, true, rows, nk, hd, 1, do[qOff:], ldq, v[kOff:], ldk, 0, dS, nk)
				for r := 0; r < rows; r++ {
					i := i0 + r
					d := T(dsum[(base+i)*H+h])
					jlo, jhi := int(rowLo[base+i])-lo, i-lo+1
					sr := dS[r*nk : (r+1)*nk]
					clear(sr[:jlo])
					clear(sr[jhi:])
					pr, sp := P[r*nk+jlo:r*nk+jhi], sr[jlo:jhi]
					for j := range sp {
						sp[j] = pr[j] * (sp[j] - d) * scale
					}
				}
				tiledGemm(false, false, rows, hd, nk, 1, dS, nk, k[kOff:], ldk, 0, dq[qOff:], ldq)
				tiledGemm(true, false, nk, hd, rows, 1, dS, nk, q[qOff:], ldq, 1, dk[kOff:], ldk)
			}
		}
	})
}
