package vecmath

import "golang.org/x/sys/cpu"

// HasExp says whether Exp has a vector body on this CPU: it needs AVX2 and FMA (every x86-64 core
// since 2013). It is set once at start-up from the CPU's feature bits and never changes.
var HasExp = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// expSumAVX2 is Exp's body, eight lanes at a time with the same Cephes reduction and
// polynomial (fused multiply-adds, so results differ from the scalar path by an ulp at most). It
// handles the first n - n%8 elements of src and returns their sum (accumulated in float64) and how
// many it did: it stops early at the first block holding an x - m above 88.3, where 2^n would leave
// the float32 range, and leaves that block and the rest to the scalar code. dst may be nil (sum
// only) or src itself.
//
//go:noescape
func expSumAVX2(dst, src *float32, n int, m float32) (sum float64, done int)

// Exp writes exp(src[i]-m) to dst[i] for i < done and returns their sum in float64, for the
// longest prefix it can do with 8-lane AVX2 (done is a multiple of 8; 0 without AVX2). dst may be
// nil (sum only) or src; otherwise it must be at least as long as src.
func Exp(dst, src []float32, m float32) (sum float64, done int) {
	n := len(src) &^ 7
	if !HasExp || n == 0 {
		return 0, 0
	}
	var d *float32
	if dst != nil {
		_ = dst[n-1] // bounds: the assembly writes dst[:n]
		d = &dst[0]
	}
	return expSumAVX2(d, &src[0], n, m)
}

//go:noescape
func swigluAVX2(y, gate, u, sig *float32, n int)

// SwiGLU writes y[i] = g[i]·σ(g[i])·u[i] and, when sig is not nil, sig[i] = σ(g[i]) for i < done,
// the longest multiple of 8 it can do with AVX2 (0 without it); σ(g) for g below -88.3 comes out
// under 1e-38 rather than 0. y, u and a non-nil sig must be at least as long as g.
func SwiGLU(y, g, u, sig []float32) (done int) {
	n := len(g) &^ 7
	if !HasExp || n == 0 {
		return 0
	}
	_, _ = y[n-1], u[n-1] // bounds: the assembly reads and writes [:n]
	var s *float32
	if sig != nil {
		_ = sig[n-1]
		s = &sig[0]
	}
	swigluAVX2(&y[0], &g[0], &u[0], s, n)
	return n
}
