package winrate

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Z95 is the standard normal's 0.975 quantile, Φ⁻¹(0.975), for two-sided 95% intervals.
const Z95 = 1.959963984540054

// CIMethod names the interval Summarize reports, for the summary file.
const CIMethod = "Wilson score interval, 95% (z = 1.959964), on the valid judgements; score counts a tie as half a win " +
	"(Wilson 1927, JASA 22:209-212; Agresti & Coull 1998, The American Statistician 52:119-126)"

// Wilson is the Wilson score interval for x successes in n trials at normal quantile z:
//
//	(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n),  p̂ = x/n
//
// (Wilson 1927; the form in Agresti & Coull 1998, eq. 2). x need not be an integer: the score
// counts ties as half wins, and since a tie's half has less variance than a coin flip the interval
// is then conservative. Unlike the normal (Wald) interval it stays inside [0, 1] and does not
// collapse to a point at p̂ = 0 or 1. n must be positive.
func Wilson(x float64, n int, z float64) (lo, hi float64, err error) {
	if n <= 0 {
		return 0, 0, fmt.Errorf("wilson interval: %d trials: want at least 1", n)
	}
	if math.IsNaN(x) || x < 0 || x > float64(n) {
		return 0, 0, fmt.Errorf("wilson interval: %v successes of %d: want 0 <= x <= n", x, n)
	}
	nf := float64(n)
	p := x / nf
	z2 := z * z
	den := 1 + z2/nf
	mid := (p + z2/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	lo, hi = math.Max(0, mid-half), math.Min(1, mid+half)
	// At x = 0 (x = n) the bound is exactly 0 (1); rounding would leave ~1e-18.
	if x == 0 {
		lo = 0
	}
	if x == float64(n) {
		hi = 1
	}
	return lo, hi, nil
}

// swapStream is the PCG stream of the order draws, so that they do not coincide with another
// consumer of the same seed.
const swapStream = 0x77696e72617465 // "winrate"

// Swaps draws, for n judgements, whether each shows model B's answer first: a fair coin per
// judgement from a PCG seeded with seed, so a run is reproducible and the draw of judgement i does
// not depend on how many there are after it.
func Swaps(n int, seed uint64) []bool {
	r := rand.New(rand.NewPCG(seed, swapStream))
	out := make([]bool, n)
	for i := range out {
		out[i] = r.IntN(2) == 1
	}
	return out
}
