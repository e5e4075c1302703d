package winrate

import (
	"fmt"
	"math"
	"math/rand/v2"
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

// TestScoreInterval checks the score's interval against values worked from its doc comment, and
// its coverage by simulation. 36 wins, 175 ties, 9 losses of 220 (the demo's seed-1 PPO against
// SFT): s = 0.5613636, v = 0.1636364 + 0.1988636 − 0.3151291 = 0.0473709, n_eff =
// 220·0.2462552/0.0473709 = 1143.65, and Wilson's formula at n_eff gives [0.532445, 0.589871] (by
// hand and in Python); plain Wilson on 123.5/220 would give [0.495296, 0.625325], which holds 0.5.
// 6 wins, 2 ties, 2 losses of 10: v = 0.16, n_eff = 13.125, [0.432012, 0.877422]. Without ties
// the interval is Wilson's; with every judgement a tie it is Wilson's on n/2 of n.
func TestScoreInterval(t *testing.T) {
	wil := func(x float64, n int) [2]float64 {
		lo, hi, err := Wilson(x, n, Z95)
		if err != nil {
			t.Fatal(err)
		}
		return [2]float64{lo, hi}
	}
	for _, c := range []struct {
		wins, ties, n int
		want          [2]float64
	}{
		{36, 175, 220, [2]float64{0.5324454, 0.5898710}},
		{6, 2, 10, [2]float64{0.4320117, 0.8774224}},
		{7, 0, 10, wil(7, 10)},
		{0, 0, 10, wil(0, 10)},
		{10, 0, 10, wil(10, 10)},
		{0, 40, 40, wil(20, 40)},
	} {
		lo, hi, err := ScoreInterval(c.wins, c.ties, c.n, Z95)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(lo-c.want[0]) > 2e-7 || math.Abs(hi-c.want[1]) > 2e-7 {
			t.Errorf("ScoreInterval(%d, %d, %d) = [%.7f, %.7f], want [%.7f, %.7f]", c.wins, c.ties, c.n, lo, hi, c.want[0], c.want[1])
		}
	}
	for _, c := range [][3]int{{0, 0, 0}, {6, 5, 10}, {-1, 0, 10}} {
		want := fmt.Sprintf("score interval: %d wins and %d ties of %d judgements: want 0 <= wins + ties <= n, n >= 1", c[0], c[1], c[2])
		if _, _, err := ScoreInterval(c[0], c[1], c[2], Z95); err == nil || err.Error() != want {
			t.Errorf("ScoreInterval%v: error %v, want %q", c, err, want)
		}
	}
}

// TestScoreIntervalCoverage draws 4000 samples of 220 judgements from a tie-heavy trinomial (win
// 0.16, tie 0.80, loss 0.04: true score 0.56) and counts how often the interval holds the true
// score. A 95% interval must cover about 95% of them (binomial sd 0.34 points: 93.5–96.5% is over
// 4 sd); plain Wilson on the score covers almost all (it treats ties as coin flips) and fails this.
func TestScoreIntervalCoverage(t *testing.T) {
	const reps, n = 4000, 220
	r := rand.New(rand.NewPCG(3, 4))
	covered := 0
	for range reps {
		w, ties := 0, 0
		for range n {
			switch u := r.Float64(); {
			case u < 0.16:
				w++
			case u < 0.96:
				ties++
			}
		}
		lo, hi, err := ScoreInterval(w, ties, n, Z95)
		if err != nil {
			t.Fatal(err)
		}
		if lo <= 0.56 && 0.56 <= hi {
			covered++
		}
	}
	if c := float64(covered) / reps; c < 0.935 || c > 0.965 {
		t.Errorf("coverage %.4f, want 0.95 within 0.015", c)
	}
}
