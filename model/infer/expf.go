package infer

import "math"

// expf is e^x rounded to float32, several times faster than math.Exp and within 1 ulp of the
// correctly rounded result; the attention softmax calls it once per (query, key, head). In float64 it
// reduces x = n·ln2 + r with |r| <= ln2/2, evaluates e^r with a degree-7 Taylor polynomial (truncation
// error r⁸/8! < 5e-10 relative, far below float32's 6e-8), and scales by 2^n through the exponent bits;
// the single final rounding to float32 also produces the overflow to +Inf.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2   = 0.693147180559945309
	)
	switch {
	case x != x:
		return x
	case x < -87.33654475: // ln 2^-126
		// Results below float32's normal range flush to zero: a softmax term that small never
		// matters, and producing subnormals costs microcode assists on many CPUs.
		return 0
	case x > 89:
		return float32(math.Inf(1))
	}
	xd := float64(x)
	// Round x·log2e to the nearest integer by adding and removing 1.5·2^52, which leaves no fraction
	// bits (math.Floor is a function call without SSE4.1).
	n := (xd*log2e + 0x1.8p52) - 0x1.8p52
	r := xd - n*ln2
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return float32(p * math.Float64frombits(uint64(int64(n)+1023)<<52))
}
