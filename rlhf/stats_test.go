package rlhf

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sort"
	"testing"
)

// bruteForce enumerates every N-subset of each prompt's K samples (as index bitmasks) and averages
// the subset's maximum and median, then averages over prompts.
func bruteForce(rewards [][]float64) (mx, med []float64) {
	k := len(rewards[0])
	mx, med = make([]float64, k), make([]float64, k)
	count := make([]float64, k)
	for _, row := range rewards {
		for i := range count {
			count[i] = 0
		}
		rowMax, rowMed := make([]float64, k), make([]float64, k)
		for mask := 1; mask < 1<<k; mask++ {
			var sub []float64
			for i := 0; i < k; i++ {
				if mask&(1<<i) != 0 {
					sub = append(sub, row[i])
				}
			}
			sort.Float64s(sub)
			n := bits.OnesCount(uint(mask))
			m := sub[n/2]
			if n%2 == 0 {
				m = (sub[n/2-1] + sub[n/2]) / 2
			}
			rowMax[n-1] += sub[n-1]
			rowMed[n-1] += m
			count[n-1]++
		}
		for n := range mx {
			mx[n] += rowMax[n] / count[n] / float64(len(rewards))
			med[n] += rowMed[n] / count[n] / float64(len(rewards))
		}
	}
	return mx, med
}

func TestRewardVsKBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, k := range []int{1, 2, 3, 6, 9} {
		rewards := make([][]float64, 4)
		for p := range rewards {
			rewards[p] = make([]float64, k)
			for i := range rewards[p] {
				// Rounded to quarters so that ties are common.
				rewards[p][i] = math.Round(rng.NormFloat64()*4) / 4
			}
		}
		mx, med, err := RewardVsK(rewards)
		if err != nil {
			t.Fatal(err)
		}
		wantMax, wantMed := bruteForce(rewards)
		for n := 0; n < k; n++ {
			if math.Abs(mx[n]-wantMax[n]) > 1e-12 || math.Abs(med[n]-wantMed[n]) > 1e-12 {
				t.Errorf("K=%d N=%d: max %v med %v, brute force %v %v", k, n+1, mx[n], med[n], wantMax[n], wantMed[n])
			}
		}
	}
}

func TestRewardVsKProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const k = 16
	rewards := make([][]float64, 5)
	var meanAll, maxMean float64
	for p := range rewards {
		rewards[p] = make([]float64, k)
		rowMax := math.Inf(-1)
		for i := range rewards[p] {
			r := rng.NormFloat64()
			rewards[p][i] = r
			meanAll += r / (k * 5)
			rowMax = math.Max(rowMax, r)
		}
		maxMean += rowMax / 5
	}
	mx, med, err := RewardVsK(rewards)
	if err != nil {
		t.Fatal(err)
	}
	// N = 1: the max and the median of one sample are that sample, so both are the mean reward.
	if math.Abs(mx[0]-meanAll) > 1e-12 || math.Abs(med[0]-meanAll) > 1e-12 {
		t.Errorf("N=1: max %v median %v, want the mean %v", mx[0], med[0], meanAll)
	}
	// N = K: the only subset is all samples, so the expected max is the observed max.
	if math.Abs(mx[k-1]-maxMean) > 1e-12 {
		t.Errorf("N=K: max %v, want the observed max %v", mx[k-1], maxMean)
	}
	for n := 1; n < k; n++ {
		if mx[n] < mx[n-1]-1e-12 {
			t.Errorf("expected max decreases at N=%d: %v < %v", n+1, mx[n], mx[n-1])
		}
		if med[n] > mx[n]+1e-12 {
			t.Errorf("N=%d: median %v above max %v", n+1, med[n], mx[n])
		}
	}
}

// For rewards 1..K, the max of a random N-subset has expectation N(K+1)/(N+1) (the classic
// order-statistic result), and by the symmetry i ↔ K+1−i the expected median is (K+1)/2 for every N.
// K = 64 checks that nothing overflows: C(64, 32) ≈ 1.8e18.
func TestRewardVsKUniformClosedForm(t *testing.T) {
	for _, k := range []int{64, 200} {
		row := make([]float64, k)
		for i := range row {
			row[k-1-i] = float64(i + 1) // unsorted on purpose
		}
		mx, med, err := RewardVsK([][]float64{row})
		if err != nil {
			t.Fatal(err)
		}
		for n := 1; n <= k; n++ {
			wantMax := float64(n) * float64(k+1) / float64(n+1)
			if math.Abs(mx[n-1]-wantMax) > 1e-9*wantMax {
				t.Errorf("K=%d N=%d: max %.15g, want %.15g", k, n, mx[n-1], wantMax)
			}
			if want := float64(k+1) / 2; math.Abs(med[n-1]-want) > 1e-9*want {
				t.Errorf("K=%d N=%d: median %.15g, want %.15g", k, n, med[n-1], want)
			}
		}
	}
}

func TestRewardVsKErrors(t *testing.T) {
	cases := []struct {
		in   [][]float64
		want string
	}{
		{nil, "rewards are empty: want at least one prompt"},
		{[][]float64{{}}, "prompt 0 has no rewards: want K >= 1 samples per prompt"},
		{[][]float64{{1, 2}, {1}}, "prompt 1 has 1 rewards: want 2, as prompt 0"},
		{[][]float64{{1, 2}, {1, math.NaN()}}, "prompt 1 sample 1: reward NaN is not finite"},
	}
	for _, tc := range cases {
		_, _, err := RewardVsK(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
