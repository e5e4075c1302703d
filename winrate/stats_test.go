package winrate

import (
	"math"
	"strings"
	"testing"
)

// TestWilson checks the interval against published values: Newcombe (1998), "Two-sided confidence
// intervals for the single proportion: comparison of seven methods", Statistics in Medicine
// 17:857-872, Table II, method 3 (score, no continuity correction), to its 4 decimals; and 8/10,
// 5/10, 0/10 and 4.5/9 worked from the formula in Wilson's doc comment (z² = 3.8414588, by hand and
// checked in Python): 8/10: mid = (0.8 + 0.1920729)/1.3841459 = 0.7167402, half =
// 1.959964·√(0.016 + 0.0096036)/1.3841459 = 0.2265777; 5/10: mid 0.5, half 0.2634069; 0/10: mid =
// half = 0.1387664; 4.5/9: mid 0.5, half 1.959964·√(0.25/9 + 3.8414588/324)/1.4268288 = 0.2734708.
func TestWilson(t *testing.T) {
	for _, c := range []struct {
		x      float64
		n      int
		lo, hi float64
		tol    float64
	}{
		{81, 263, 0.2553, 0.3662, 5e-5},
		{15, 148, 0.0624, 0.1605, 5e-5},
		{0, 20, 0, 0.1611, 5e-5},
		{1, 29, 0.0061, 0.1718, 5e-5},
		{8, 10, 0.7167402 - 0.2265777, 0.7167402 + 0.2265777, 2e-7},
		{5, 10, 0.5 - 0.2634069, 0.5 + 0.2634069, 2e-7},
		{0, 10, 0, 2 * 0.1387664, 2e-7},
		{10, 10, 1 - 2*0.1387664, 1, 2e-7},               // mirror of 0/10
		{4.5, 9, 0.5 - 0.2734708, 0.5 + 0.2734708, 2e-7}, // ties as halves: a non-integer count is fine
	} {
		lo, hi, err := Wilson(c.x, c.n, Z95)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(lo-c.lo) > c.tol || math.Abs(hi-c.hi) > c.tol {
			t.Errorf("Wilson(%v, %d) = [%.6f, %.6f], want [%.6f, %.6f]", c.x, c.n, lo, hi, c.lo, c.hi)
		}
	}
	for _, c := range []struct {
		x    float64
		n    int
		want string
	}{
		{0, 0, "wilson interval: 0 trials: want at least 1"},
		{11, 10, "wilson interval: 11 successes of 10: want 0 <= x <= n"},
		{math.NaN(), 10, "wilson interval: NaN successes of 10: want 0 <= x <= n"},
	} {
		if _, _, err := Wilson(c.x, c.n, Z95); err == nil || err.Error() != c.want {
			t.Errorf("Wilson(%v, %d): error %v, want %q", c.x, c.n, err, c.want)
		}
	}
}

// TestSwapsBalanced checks that the order draws are fair coins: over n = 2000 draws the swapped
// count is within 4 standard deviations of n/2 (√(n/4) = 22.4, so ±89; a fair coin leaves it with
// probability 6e-5) for each of several seeds; that a seed reproduces its draws; and that seeds
// differ.
func TestSwapsBalanced(t *testing.T) {
	const n = 2000
	bound := 4 * math.Sqrt(n*0.25)
	var prev []bool
	for seed := range uint64(8) {
		s := Swaps(n, seed)
		k := 0
		for _, v := range s {
			if v {
				k++
			}
		}
		if math.Abs(float64(k)-n/2) > bound {
			t.Errorf("seed %d: %d of %d swapped, want within %.0f of %d", seed, k, n, bound, n/2)
		}
		again := Swaps(n, seed)
		if strings.Join(boolStrings(s), "") != strings.Join(boolStrings(again), "") {
			t.Errorf("seed %d: draws differ between calls", seed)
		}
		if prev != nil && strings.Join(boolStrings(prev), "") == strings.Join(boolStrings(s), "") {
			t.Errorf("seeds %d and %d draw the same orders", seed-1, seed)
		}
		if short := Swaps(10, seed); strings.Join(boolStrings(short), "") != strings.Join(boolStrings(s[:10]), "") {
			t.Errorf("seed %d: the first draws depend on n", seed)
		}
		prev = s
	}
}

func boolStrings(b []bool) []string {
	out := make([]string, len(b))
	for i, v := range b {
		out[i] = "0"
		if v {
			out[i] = "1"
		}
	}
	return out
}
