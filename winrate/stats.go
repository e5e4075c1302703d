package winrate

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Z95 is the standard normal's 0.975 quantile, Φ⁻¹(0.975), for two-sided 95% intervals.
const Z95 = 1.959963984540054

// CIMethod names the intervals Summarize reports, for the summary file.
const CIMethod = "Wilson score interval, 95% (z = 1.959964), on the valid judgements (Wilson 1927, JASA 22:209-212; " +
	"Agresti & Coull 1998, The American Statistician 52:119-126); the score counts a tie as half a win, and its " +
	"interval uses the effective number of trials n·s(1-s)/v that gives the Wilson interval the score's own " +
	"variance v = w + t/4 - s^2 (Kish's design effect; plain Wilson when v = 0)"

// ScoreInterval is the 95% interval of the score s = (wins + ties/2)/n. A judgement's score is 1,
// ½ or 0, whose variance v = w + t/4 − s² (w, t the win and tie rates) is s(1−s) − t/4: below the
// s(1−s) of a Bernoulli trial by a quarter of the tie rate. Wilson's interval on s with n trials
// would treat every tie as a coin flip and, with many ties, be several times too wide (220
// judgements with 80% ties: ±0.065 instead of ±0.029). The Wilson interval with the effective
// number of trials n·s(1−s)/v (Kish's design effect) has the score's own variance and stays within
// [0, 1]; without ties it is Wilson's. With v = 0 (every judgement a tie) it falls back to Wilson's
// on n trials rather than claim a zero-width interval from a finite sample.
func ScoreInterval(wins, ties, n int, z float64) (lo, hi float64, err error) {
	if n <= 0 || wins < 0 || ties < 0 || wins+ties > n {
		return 0, 0, fmt.Errorf("score interval: %d wins and %d ties of %d judgements: want 0 <= wins + ties <= n, n >= 1", wins, ties, n)
	}
	nf := float64(n)
	w, t := float64(wins)/nf, float64(ties)/nf
	s := w + t/2
	v := w + t/4 - s*s
	if v <= 1e-15 || s <= 0 || s >= 1 {
		return Wilson(s*nf, n, z)
	}
	lo, hi = wilson(s, nf*s*(1-s)/v, z)
	return lo, hi, nil
}

// Wilson is the Wilson score interval for x successes in n trials at normal quantile z:
//
//	(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n),  p̂ = x/n
//
// (Wilson 1927; the form in Agresti & Coull 1998, eq. 2). x need not be an integer. Unlike the normal (Wald) interval it stays inside [0, 1] and does not
// collapse to a point at p̂ = 0 or 1. n must be positive.
func Wilson(x float64, n int, z float64) (lo, hi float64, err error) {
	if n <= 0 {
		return 0, 0, fmt.Errorf("wilson interval: %d trials: want at least 1", n)
	}
	if math.IsNaN(x) || x < 0 || x > float64(n) {
		return 0, 0, fmt.Errorf("wilson interval: %v successes of %d: want 0 <= x <= n", x, n)
	}
	lo, hi = wilson(x/float64(n), float64(n), z)
	// At x = 0 (x = n) the bound is exactly 0 (1); rounding would leave ~1e-18.
	if x == 0 {
		lo = 0
	}
	if x == float64(n) {
		hi = 1
	}
	return lo, hi, nil
}

// wilson is Wilson's interval for the proportion p of n trials (n need not be whole), within [0, 1].
func wilson(p, n, z float64) (lo, hi float64) {
	z2 := z * z
	den := 1 + z2/n
	mid := (p + z2/(2*n)) / den
	half := z * math.Sqrt(p*(1-p)/n+z2/(4*n*n)) / den
	return math.Max(0, mid-half), math.Min(1, mid+half)
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
