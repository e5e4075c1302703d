package infer

import "math"

// Attention kernels for small head dimensions. gonum's Sgemm computes each score as a call into an
// assembly dot product, which for head_dim 8 (stories260K) costs more in the call than in the
// arithmetic; plain loops win below smallHeadDim, and Sgemm's SIMD wins above it.
const smallHeadDim = 16

// scoresSmall sets S[r, c] = scale · Q[r] · K[c] for r < b, c < n; Q, K and S have row strides ldq,
// ldk and lds, and rows of length hd. Four keys at a time give four independent accumulators.
func scoresSmall(S []float32, lds int, Q []float32, ldq int, K []float32, ldk int, b, n, hd int, scale float32) {
	for r := 0; r < b; r++ {
		q := Q[r*ldq : r*ldq+hd]
		srow := S[r*lds : r*lds+n]
		c := 0
		for ; c+4 <= n; c += 4 {
			k0 := K[c*ldk:][:len(q)] // one bounds check per key instead of one per element
			k1 := K[(c+1)*ldk:][:len(q)]
			k2 := K[(c+2)*ldk:][:len(q)]
			k3 := K[(c+3)*ldk:][:len(q)]
			var a0, a1, a2, a3 float32
			for d, qv := range q {
				a0 += qv * k0[d]
				a1 += qv * k1[d]
				a2 += qv * k2[d]
				a3 += qv * k3[d]
			}
			s4 := srow[c : c+4 : c+4]
			s4[0], s4[1], s4[2], s4[3] = scale*a0, scale*a1, scale*a2, scale*a3
		}
		for ; c < n; c++ {
			k := K[c*ldk:][:len(q)]
			var acc float32
			for d, qv := range q {
				acc += qv * k[d]
			}
			srow[c] = scale * acc
		}
	}
}

// weightedSumSmall sets (or, with add, increments) O[r] = Σ_c P[r, c] · V[c] for r < b, c < n. Four
// keys at a time cut the loads and stores of O[r] fourfold; blocks of four zero weights (masked keys)
// are skipped.
func weightedSumSmall(O []float32, ldo int, P []float32, ldp int, V []float32, ldv int, b, n, hd int, add bool) {
	for r := 0; r < b; r++ {
		o := O[r*ldo : r*ldo+hd]
		if !add {
			clear(o)
		}
		prow := P[r*ldp : r*ldp+n]
		c := 0
		for ; c+4 <= n; c += 4 {
			p4 := prow[c : c+4 : c+4]
			p0, p1, p2, p3 := p4[0], p4[1], p4[2], p4[3]
			if p0 == 0 && p1 == 0 && p2 == 0 && p3 == 0 {
				continue
			}
			v0 := V[c*ldv:][:len(o)]
			v1 := V[(c+1)*ldv:][:len(o)]
			v2 := V[(c+2)*ldv:][:len(o)]
			v3 := V[(c+3)*ldv:][:len(o)]
			for d := range o {
				o[d] += p0*v0[d] + p1*v1[d] + p2*v2[d] + p3*v3[d]
			}
		}
		for ; c < n; c++ {
			p := prow[c]
			if p == 0 {
				continue
			}
			v := V[c*ldv:][:len(o)]
			for d, vv := range v {
				o[d] += p * vv
			}
		}
	}
}

// expShift replaces every x in row by expf(x - m) and returns the sum in float64. It is expf with the
// body inlined into the loop, which is what the softmax spends its time on.
func expShift(row []float32, m float32) float64 {
	const (
		log2e = 1.44269504088896341
		ln2   = 0.693147180559945309
	)
	var sum float64
	for i, v := range row {
		x := v - m
		if !(x >= -87.33654475) { // below float32's normal range (or -Inf, NaN): flush to zero
			row[i] = 0
			continue
		}
		xd := float64(x)
		n := (xd*log2e + 0x1.8p52) - 0x1.8p52
		r := xd - n*ln2
		p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
		ev := float32(p * math.Float64frombits(uint64(int64(n)+1023)<<52))
		row[i] = ev
		sum += float64(ev)
	}
	return sum
}
