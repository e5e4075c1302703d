package rlhf

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// RewardVsK returns, for N = 1..K (index N−1), the expected maximum and the expected median reward
// of N samples drawn without replacement from each prompt's K samples, averaged over prompts.
// rewards is (P, K): every prompt must have the same K ≥ 1, and every reward must be finite.
func RewardVsK(rewards [][]float64) (expectedMax, median []float64, err error) {
	if len(rewards) == 0 {
		return nil, nil, errors.New("rewards are empty: want at least one prompt")
	}
	k := len(rewards[0])
	if k == 0 {
		return nil, nil, errors.New("prompt 0 has no rewards: want K >= 1 samples per prompt")
	}
	for p, row := range rewards {
		if len(row) != k {
			return nil, nil, fmt.Errorf("prompt %d has %d rewards: want %d, as prompt 0", p, len(row), k)
		}
		for s, r := range row {
			if math.IsNaN(r) || math.IsInf(r, 0) {
				return nil, nil, fmt.Errorf("prompt %d sample %d: reward %v is not finite", p, s, r)
			}
		}
	}

	// w[j][n] holds, for N = n+1 and order j (1-based, j ≤ N), the weights over sorted positions
	// P(j-th smallest of the subset = r_(i)), i = 1..K; they depend on K only, so are built once.
	lf := logFactorials(k)
	logC := func(n, r int) float64 { return lf[n] - lf[r] - lf[n-r] }
	orderWeights := func(n, j int) []float64 {
		w := make([]float64, k)
		lt := logC(k, n)
		for i := j; i <= k-n+j; i++ {
			w[i-1] = math.Exp(logC(i-1, j-1) + logC(k-i, n-j) - lt)
		}
		return w
	}
	maxW := make([][]float64, k)
	medW := make([][]float64, k)
	for n := 1; n <= k; n++ {
		maxW[n-1] = orderWeights(n, n)
		if n%2 == 1 {
			medW[n-1] = orderWeights(n, (n+1)/2)
		} else {
			lo, hi := orderWeights(n, n/2), orderWeights(n, n/2+1)
			for i := range lo {
				lo[i] = (lo[i] + hi[i]) / 2
			}
			medW[n-1] = lo
		}
	}

	expectedMax = make([]float64, k)
	median = make([]float64, k)
	sorted := make([]float64, k)
	for _, row := range rewards {
		copy(sorted, row)
		sort.Float64s(sorted)
		for n := 0; n < k; n++ {
			expectedMax[n] += dot(maxW[n], sorted)
			median[n] += dot(medW[n], sorted)
		}
	}
	inv := 1 / float64(len(rewards))
	for n := range expectedMax {
		expectedMax[n] *= inv
		median[n] *= inv
	}
	return expectedMax, median, nil
}

// logFactorials returns log(n!) for n = 0..k, summed term by term: the values stay small (log 64! ≈
// 205) where C(K, N) itself would overflow float64 beyond K ≈ 1030.
func logFactorials(k int) []float64 {
	lf := make([]float64, k+1)
	for i := 2; i <= k; i++ {
		lf[i] = lf[i-1] + math.Log(float64(i))
	}
	return lf
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
