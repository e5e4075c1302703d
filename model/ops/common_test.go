package ops

import (
	"math"
	"testing"
)

func TestExpfAccuracy(t *testing.T) {
	worst := 0.0
	for x := -87.0; x <= 88.5; x += 0.001237 {
		got := float64(expf(float32(x)))
		want := math.Exp(float64(float32(x)))
		worst = math.Max(worst, math.Abs(got-want)/want)
	}
	// float32's unit roundoff is 6e-8; Cephes' expf is within about two of them.
	if worst > 2.5e-7 {
		t.Fatalf("worst relative error %g", worst)
	}
	for _, tc := range []struct{ x, want float32 }{{-100, 0}, {float32(math.Inf(-1)), 0}, {0, 1}} {
		if got := expf(tc.x); got != tc.want {
			t.Fatalf("expf(%g) = %g, want %g", tc.x, got, tc.want)
		}
	}
	if !math.IsInf(float64(expf(100)), 1) {
		t.Fatal("expf(100) is not +Inf")
	}
}

func TestTopKOrderAndTies(t *testing.T) {
	idx := make([]int, 3)
	topK([]float64{0.5, 2, 2, -1, 3}, idx)
	if idx[0] != 4 || idx[1] != 1 || idx[2] != 2 {
		t.Fatalf("topK = %v, want [4 1 2]", idx)
	}
}

func TestParallelHelpersCoverEveryItemOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 17, 1000} {
		seen := make([]int, n)
		parallelRange(n, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		parallelItems(n, func(_, i int) { seen[i]++ })
		for i, c := range seen {
			if c != 2 {
				t.Fatalf("n=%d: item %d visited %d times, want 2", n, i, c)
			}
		}
	}
}
