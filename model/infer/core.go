package infer

import (
	"math"

	gblas "gonum.org/v1/gonum/blas"
)

// seg is one sequence's share of a batched pass: rows [row0, row0+n) of the activations hold its
// tokens at sequence indices start..start+n-1. With a cache, the rows also attend to the start tokens
// already cached (those the sliding window still sees), and their keys and values are appended to it.
type seg struct {
	row0, n int
	start   int
	cache   *kvCache // nil: the rows attend only among themselves (start must be 0)
}

// work holds one pass's activations; a Session keeps one so that decode steps do not allocate.
type work struct {
	x, h       []float32 // (N, D): residual stream, normed input of a sub-layer / its output
	q, att     []float32 // (N, H*HD)
	k, v       []float32 // (N, KV*HD)
	gate, up   []float32 // (N, F)
	cos, sin   []float32 // (N, HD/2)
	out        []float32 // (R, D): final-normed rows asked for
	scores     [][]float32
	mo, xe, ye []float32 // (N, D): MoE sum, gathered expert input and output
	router     []float32 // (N, E)
	expRows    [][]int   // per expert: rows routed to it, ascending
	expW       [][]float32
	probs      []float64 // (E): one token's router softmax
	chosen     []int     // (K): its experts
	chosenW    []float32 // (K): their weights
	logits     []float32 // (B, V): a decode step's logits (stepBatch)
}

// grow returns b resized to n, reallocating with 25% headroom so that buffers sized by a growing
// cache (the attention scores) are not reallocated at every decode step.
func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n, max(n, cap(b)+cap(b)/4))
	}
	return b[:n]
}

func (ws *work) reserve(e *Engine, N, R int) {
	ws.x = grow(ws.x, N*e.D)
	ws.h = grow(ws.h, N*e.D)
	ws.q = grow(ws.q, N*e.H*e.HD)
	ws.att = grow(ws.att, N*e.H*e.HD)
	ws.k = grow(ws.k, N*e.KV*e.HD)
	ws.v = grow(ws.v, N*e.KV*e.HD)
	ws.gate = grow(ws.gate, N*max(e.F, e.FE))
	ws.up = grow(ws.up, N*max(e.F, e.FE))
	ws.cos = grow(ws.cos, N*e.HD/2)
	ws.sin = grow(ws.sin, N*e.HD/2)
	ws.out = grow(ws.out, R*e.D)
	if e.E > 0 {
		ws.mo = grow(ws.mo, N*e.D)
		ws.xe = grow(ws.xe, N*e.D)
		ws.ye = grow(ws.ye, N*e.D)
		ws.router = grow(ws.router, N*e.E)
		if len(ws.expRows) != e.E {
			ws.expRows = make([][]int, e.E)
			ws.expW = make([][]float32, e.E)
			ws.probs = make([]float64, e.E)
			ws.chosen = make([]int, e.K)
			ws.chosenW = make([]float32, e.K)
		}
	}
	if len(ws.scores) < e.workers {
		ws.scores = make([][]float32, e.workers)
	}
}

// Tile of a pure-Go matrix product: gonum's Sgemm stays on its serial path (full-length dot products,
// no goroutines) while fewer than four 64×64 blocks make up the product, so a 64×192 tile is the
// largest that it computes serially.
const tileM, tileN = 64, 192

// matmulT computes c = a · wᵀ for a (m, k) and a torch-layout weight w (n, k): c is (m, n). A frozen
// weight computes the product itself (it dequantises tiles on the fly, see model/quant).
//
// OpenBLAS threads itself and gets the whole product. gonum's parallel path starts a goroutine per
// 64×64 block and splits k, so with gonum the product is instead cut into serial tiles spread over
// e.workers goroutines (or run inline when small): fewer goroutines, and each element is the same
// full-length dot product whatever m is, so a row's result does not depend on the batch it is in.
func (e *Engine) matmulT(a []float32, m, k int, wt weight, n int, c []float32) {
	if wt.f != nil {
		wt.f.MulT(c[:m*n], a[:m*k], m)
	} else {
		e.matmulBase(a, m, k, wt.d, n, c)
	}
	if p := wt.lora; p != nil {
		// c (m, n) += scale · (a (m, k) · Aᵀ (k, r)) · Bᵀ (r, n)
		t := make([]float32, m*p.r)
		e.bl.Sgemm(gblas.NoTrans, gblas.Trans, m, p.r, k, 1, a[:m*k], k, p.a, k, 0, t, p.r)
		e.bl.Sgemm(gblas.NoTrans, gblas.Trans, m, n, p.r, p.scale, t, p.r, p.b, p.r, 1, c[:m*n], n)
	}
}

// matmulBase is matmulT's dense float32 product, without adapters.
func (e *Engine) matmulBase(a []float32, m, k int, w []float32, n int, c []float32) {
	if !e.pureGo {
		if m == 1 {
			// OpenBLAS 0.3.21's sgemm packs all of w for every call, which for the one-row products
			// of decoding reads the weights twice; its sgemv streams them once (measured: decode
			// d512 about 2x faster with it).
			e.bl.Sgemv(gblas.NoTrans, n, k, 1, w[:n*k], k, a[:k], 1, 0, c[:n], 1)
			return
		}
		e.bl.Sgemm(gblas.NoTrans, gblas.Trans, m, n, k, 1, a[:m*k], k, w[:n*k], k, 0, c[:m*n], n)
		return
	}
	tm, tn := (m+tileM-1)/tileM, (n+tileN-1)/tileN
	e.fanOut(tm*tn, 2*m*n*k, func(t, _ int) {
		i0, j0 := (t/tn)*tileM, (t%tn)*tileN
		bm, bn := min(tileM, m-i0), min(tileN, n-j0)
		e.bl.Sgemm(gblas.NoTrans, gblas.Trans, bm, bn, k, 1, a[i0*k:(i0+bm)*k], k, w[j0*k:(j0+bn)*k], k,
			0, c[i0*n+j0:(i0+bm-1)*n+j0+bn], n)
	})
}

// run computes the decoder over the batch described by segs and returns the final-normed hidden states
// of outRows, (len(outRows), D), in ws.out. Caches named by segs receive the new keys and values.
func (e *Engine) run(ws *work, tokens, pos []int32, segs []seg, outRows []int) []float32 {
	N, D, half := len(tokens), e.D, e.HD/2
	ws.reserve(e, N, len(outRows))
	for i, t := range tokens {
		copy(ws.x[i*D:(i+1)*D], e.embed[int(t)*D:(int(t)+1)*D])
	}
	// cos/sin of pos·inv_freq in float64, then rounded once: one table per row, shared by all layers.
	for i, p := range pos {
		for j, f := range e.invFreq {
			s, c := math.Sincos(float64(p) * f)
			ws.cos[i*half+j], ws.sin[i*half+j] = float32(c), float32(s)
		}
	}
	for l := range e.layers {
		e.layer(ws, l, segs, N)
	}
	eps := e.cfg.RMSNormEps
	for r, row := range outRows {
		rmsnorm(ws.out[r*D:(r+1)*D], ws.x[row*D:(row+1)*D], e.finalNorm, eps)
	}
	return ws.out[:len(outRows)*D]
}

func (e *Engine) layer(ws *work, l int, segs []seg, N int) {
	L := &e.layers[l]
	D, eps := e.D, e.cfg.RMSNormEps
	qs, ks := e.H*e.HD, e.KV*e.HD

	e.fanRows(N, 3*D, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			rmsnorm(ws.h[r*D:(r+1)*D], ws.x[r*D:(r+1)*D], L.attnNorm, eps)
		}
	})
	e.matmulT(ws.h, N, D, L.wq, qs, ws.q) // (N, H*HD)
	e.matmulT(ws.h, N, D, L.wk, ks, ws.k) // (N, KV*HD)
	e.matmulT(ws.h, N, D, L.wv, ks, ws.v) // (N, KV*HD)
	e.fanRows(N, 3*(qs+ks), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			q, k := ws.q[r*qs:(r+1)*qs], ws.k[r*ks:(r+1)*ks]
			if L.bq != nil {
				addInto(q, L.bq)
				addInto(k, L.bk)
				addInto(ws.v[r*ks:(r+1)*ks], L.bv)
			}
			if L.qNorm != nil { // Qwen3: each head RMS-normed before RoPE
				for h0 := 0; h0 < qs; h0 += e.HD {
					rmsnorm(q[h0:h0+e.HD], q[h0:h0+e.HD], L.qNorm, eps)
				}
				for h0 := 0; h0 < ks; h0 += e.HD {
					rmsnorm(k[h0:h0+e.HD], k[h0:h0+e.HD], L.kNorm, eps)
				}
			}
			e.rope(q, ws.cos, ws.sin, r)
			e.rope(k, ws.cos, ws.sin, r)
		}
	})
	e.attention(ws, l, segs)
	writeCache(ws, e, l, segs)
	e.matmulT(ws.att, N, qs, L.wo, D, ws.h) // (N, D)
	if L.bo != nil {
		for r := 0; r < N; r++ {
			addInto(ws.h[r*D:(r+1)*D], L.bo)
		}
	}
	addInto(ws.x[:N*D], ws.h[:N*D])

	e.fanRows(N, 3*D, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			rmsnorm(ws.h[r*D:(r+1)*D], ws.x[r*D:(r+1)*D], L.mlpNorm, eps)
		}
	})
	if L.experts != nil {
		e.moe(ws, L, N)
		addInto(ws.x[:N*D], ws.mo[:N*D])
		return
	}
	e.swiglu(ws.h, N, e.F, L.gate, L.up, L.down, ws.gate, ws.up, ws.h)
	addInto(ws.x[:N*D], ws.h[:N*D])
}

// swiglu computes out = down(silu(gate·x) * up·x) for x (n, D) into out (n, D); g and u are (n, F)
// scratch. out may alias x.
func (e *Engine) swiglu(x []float32, n, F int, wg, wu, wd weight, g, u, out []float32) {
	D := e.D
	e.matmulT(x, n, D, wg, F, g)
	e.matmulT(x, n, D, wu, F, u)
	e.fanRows(n, 20*F, func(lo, hi int) {
		for i := lo * F; i < hi*F; i++ {
			gv := float64(g[i])
			g[i] = float32(gv/(1+math.Exp(-gv))) * u[i]
		}
	})
	e.matmulT(g, n, F, wd, D, out)
}

// moe is Mixtral's sparse block on ws.h (N, D), written to ws.mo (N, D): router logits, softmax over
// all experts, the top-k renormalised to sum 1, and the weighted sum of the chosen experts' SwiGLUs,
// accumulated in expert order as transformers' index_add_ does.
func (e *Engine) moe(ws *work, L *layerWeights, N int) {
	D, E := e.D, e.E
	e.matmulT(ws.h, N, D, L.router, E, ws.router) // (N, E)
	for x := range ws.expRows {
		ws.expRows[x] = ws.expRows[x][:0]
		ws.expW[x] = ws.expW[x][:0]
	}
	probs, chosen, weights := ws.probs, ws.chosen, ws.chosenW
	for r := 0; r < N; r++ {
		route(ws.router[r*E:(r+1)*E], probs, chosen, weights, e.normTopK)
		for j, x := range chosen {
			ws.expRows[x] = append(ws.expRows[x], r)
			ws.expW[x] = append(ws.expW[x], weights[j])
		}
	}
	mo := ws.mo[:N*D]
	clear(mo)
	for x := 0; x < E; x++ {
		rows := ws.expRows[x]
		n := len(rows)
		if n == 0 {
			continue
		}
		for i, r := range rows {
			copy(ws.xe[i*D:(i+1)*D], ws.h[r*D:(r+1)*D])
		}
		ex := &L.experts[x]
		e.swiglu(ws.xe, n, e.FE, ex.w1, ex.w3, ex.w2, ws.gate, ws.up, ws.ye)
		for i, r := range rows {
			w := ws.expW[x][i]
			dst, y := mo[r*D:(r+1)*D], ws.ye[i*D:(i+1)*D]
			for d := range dst {
				dst[d] += y[d] * w
			}
		}
	}
}

// route is Mixtral's router for one token: softmax over all experts' logits, the top-k experts
// (chosen, largest first) and their probabilities renormalised to sum 1 (weights); with norm false
// (Qwen3-MoE's norm_topk_prob false) the probabilities are kept as they are.
func route(logits []float32, probs []float64, chosen []int, weights []float32, norm bool) {
	topK(logits, probs, chosen)
	if !norm {
		for j, x := range chosen {
			weights[j] = float32(probs[x])
		}
		return
	}
	var sum float64
	for _, x := range chosen {
		sum += probs[x]
	}
	for j, x := range chosen {
		weights[j] = float32(probs[x] / sum)
	}
}

// topK fills probs with softmax(logits) (float64) and chosen with the indices of the k largest, largest
// first; ties go to the lower index.
func topK(logits []float32, probs []float64, chosen []int) {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	var s float64
	for i, v := range logits {
		probs[i] = math.Exp(float64(v) - m)
		s += probs[i]
	}
	for i := range probs {
		probs[i] /= s
	}
	for j := range chosen {
		best := -1
		for i, p := range probs {
			taken := false
			for _, c := range chosen[:j] {
				taken = taken || c == i
			}
			if !taken && (best < 0 || p > probs[best]) {
				best = i
			}
		}
		chosen[j] = best
	}
}

// queryBlock bounds the query rows whose scores are held at once, so the score scratch stays
// (queryBlock, keys) however long the prefill.
const queryBlock = 64

// attention computes softmax(q kᵀ / sqrt(HD) + mask) v for every (segment, head) into ws.att. Query head
// h reads KV head h / (H/KV) in place: repeated K/V are never built. Keys are the segment's cached
// tokens (ring slots) followed by its own new rows; the mask is causal, and with a sliding window W a
// query at sequence index p sees indices p-W+1..p.
func (e *Engine) attention(ws *work, l int, segs []seg) {
	H, HD, W := e.H, e.HD, e.window
	G := H / e.KV
	qs, ks := H*HD, e.KV*HD
	scale := float32(1 / math.Sqrt(float64(HD)))
	total, maxCols := 0, 0
	for _, s := range segs {
		C := s.cache.cached(s.start)
		total += H * s.n * (C + s.n) * HD * 4
		maxCols = max(maxCols, C+s.n)
	}
	need := min(queryBlock, maxCols) * maxCols
	for w := range ws.scores {
		ws.scores[w] = grow(ws.scores[w], need)
	}
	negInf := float32(math.Inf(-1))
	e.fanOut(len(segs)*H, total, func(task, w int) {
		s, h := segs[task/H], task%H
		g := h / G
		C := s.cache.cached(s.start)
		var kc, vc []float32 // (C, HD) each, for KV head g
		if C > 0 {
			kc = s.cache.k[l][g*s.cache.capacity*HD:][:C*HD]
			vc = s.cache.v[l][g*s.cache.capacity*HD:][:C*HD]
		}
		kn := ws.k[s.row0*ks+g*HD:]
		vn := ws.v[s.row0*ks+g*HD:]
		for i0 := 0; i0 < s.n; i0 += queryBlock {
			b := min(queryBlock, s.n-i0)
			nn := i0 + b // new keys visible to this block at most
			cols := C + nn
			S := ws.scores[w][:b*cols] // (b, C+nn)
			Q := ws.q[(s.row0+i0)*qs+h*HD:]
			e.scores(S, cols, Q, qs, kc, HD, b, C, scale)
			e.scores(S[C:], cols, Q, qs, kn, ks, b, nn, scale)
			for r := 0; r < b; r++ {
				i := i0 + r
				row := S[r*cols : (r+1)*cols]
				jlo := 0 // the oldest new key row i sees
				if W > 0 {
					// Positions older than lo are out of the window: the oldest cached ones and the
					// oldest new ones.
					lo := s.start + i - W + 1
					for q := s.start - C; q < lo && q < s.start; q++ {
						row[s.cache.slot(q)] = negInf
					}
					jlo = max(0, lo-s.start)
				}
				maskedSoftmax(row[:C], row[C:], jlo, i)
			}
			O := ws.att[(s.row0+i0)*qs+h*HD:]
			e.weightedSum(O, qs, S, cols, vc, HD, b, C, false)
			e.weightedSum(O, qs, S[C:], cols, vn, ks, b, nn, C > 0)
		}
	})
}

// scores sets S[r, c] = scale · Q[r] · K[c] for b ≤ queryBlock query rows and n keys (row strides
// lds, ldq, ldk; rows of e.HD).
func (e *Engine) scores(S []float32, lds int, Q []float32, ldq int, K []float32, ldk, b, n int, scale float32) {
	if e.HD < smallHeadDim {
		scoresSmall(S, lds, Q, ldq, K, ldk, b, n, e.HD, scale)
		return
	}
	// Keys in chunks of tileN: with at most 64 query rows this keeps gonum's Sgemm on its serial path
	// inside this already parallel task.
	for c0 := 0; c0 < n; c0 += tileN {
		bn := min(tileN, n-c0)
		e.bl.Sgemm(gblas.NoTrans, gblas.Trans, b, bn, e.HD, scale, Q, ldq, K[c0*ldk:], ldk, 0, S[c0:], lds)
	}
}

// weightedSum sets (add: increments) O[r] = Σ_c P[r, c] · V[c] for b query rows and n keys.
func (e *Engine) weightedSum(O []float32, ldo int, P []float32, ldp int, V []float32, ldv, b, n int, add bool) {
	if e.HD < smallHeadDim {
		weightedSumSmall(O, ldo, P, ldp, V, ldv, b, n, e.HD, add)
		return
	}
	if n == 0 {
		if !add {
			for r := 0; r < b; r++ {
				clear(O[r*ldo : r*ldo+e.HD])
			}
		}
		return
	}
	var beta float32
	if add {
		beta = 1
	}
	e.bl.Sgemm(gblas.NoTrans, gblas.NoTrans, b, e.HD, n, 1, P, ldp, V, ldv, beta, O, ldo)
}

// writeCache stores layer l's new keys and values of every cached segment; with a ring only the last
// W of them can survive, so earlier ones are skipped.
func writeCache(ws *work, e *Engine, l int, segs []seg) {
	HD, ks := e.HD, e.KV*e.HD
	for _, s := range segs {
		c := s.cache
		if c == nil {
			continue
		}
		j0 := 0
		if c.ring > 0 {
			j0 = max(0, s.n-c.ring)
		}
		for j := j0; j < s.n; j++ {
			slot := c.slot(s.start + j)
			src := (s.row0 + j) * ks
			for g := 0; g < e.KV; g++ {
				dst := (g*c.capacity + slot) * HD
				copy(c.k[l][dst:dst+HD], ws.k[src+g*HD:src+(g+1)*HD])
				copy(c.v[l][dst:dst+HD], ws.v[src+g*HD:src+(g+1)*HD])
			}
		}
	}
}

// rope rotates every head of one row in place, HF rotate-half layout: the pairs are (i, i+HD/2).
func (e *Engine) rope(x, cos, sin []float32, row int) {
	half := e.HD / 2
	c, s := cos[row*half:(row+1)*half], sin[row*half:(row+1)*half]
	for h0 := 0; h0 < len(x); h0 += e.HD {
		a, b := x[h0:h0+half], x[h0+half:h0+e.HD]
		for i := range a {
			x1, x2 := a[i], b[i]
			a[i] = x1*c[i] - x2*s[i]
			b[i] = x2*c[i] + x1*s[i]
		}
	}
}

// rmsnorm writes w * x / sqrt(mean(x²) + eps); the mean and the reciprocal root are taken in float64.
func rmsnorm(dst, x, w []float32, eps float64) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+eps)
	for i, v := range x {
		dst[i] = w[i] * float32(float64(v)*r)
	}
}

// maskedSoftmax normalises one query's scores in place: all cached keys (those already masked hold
// -Inf, and expf(-Inf) is 0) and new keys jlo..i; the other new keys become exactly 0 without an exp.
// The sum is in float64.
func maskedSoftmax(cached, fresh []float32, jlo, i int) {
	vis := fresh[jlo : i+1]
	m := vis[len(vis)-1] // the query's own key is always visible
	for _, v := range cached {
		if v > m {
			m = v
		}
	}
	for _, v := range vis {
		if v > m {
			m = v
		}
	}
	sum := expShift(cached, m) + expShift(vis, m)
	clear(fresh[:jlo])
	clear(fresh[i+1:])
	inv := float32(1 / sum)
	for c := range cached {
		cached[c] *= inv
	}
	for j := range vis {
		vis[j] *= inv
	}
}

func addInto(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}
