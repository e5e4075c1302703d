package infer

import (
	"math"
	"testing"
)

// TestExpf compares the fast float32 exp with math.Exp over the range the softmax uses (x <= 0, down to
// underflow) and a few positive values, in ulps of the correctly rounded float32 result; results below
// float32's normal range must flush to zero.
func TestExpf(t *testing.T) {
	worst := 0.0
	check := func(x float32) {
		want := math.Exp(float64(x))
		got := float64(expf(x))
		if want < 1.1754944e-38 { // below the normal range: flushed to zero
			if got != 0 {
				t.Fatalf("expf(%g) = %g, want 0 (flushed)", x, got)
			}
			return
		}
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1))) - float32(want))
		worst = math.Max(worst, math.Abs(got-want)/ulp)
	}
	for x := float32(-90); x < 88; x += 0.00731 {
		check(x)
	}
	for _, x := range []float32{0, float32(math.Copysign(0, -1)), 1e-8, -1e-8, 0.5, -0.5, 1, -1, 10, -10, -87.3, -88.7, 88.7} {
		check(x)
	}
	if worst > 1 {
		t.Errorf("expf is off by %.2f ulp (> 1)", worst)
	}
	t.Logf("worst error %.2f ulp", worst)
	if expf(-200) != 0 || !math.IsInf(float64(expf(100)), 1) || expf(float32(math.Inf(-1))) != 0 {
		t.Errorf("expf limits: %g %g %g", expf(-200), expf(100), expf(float32(math.Inf(-1))))
	}
}

// TestExpShift checks the softmax's inlined exp against expf, element by element, and its sum.
func TestExpShift(t *testing.T) {
	row := []float32{0, -1, -3.5, float32(math.Inf(-1)), -90, 2.25, -87.3, -0.001}
	const m = 2.25
	want := make([]float32, len(row))
	var wantSum float64
	for i, v := range row {
		want[i] = expf(v - m)
		wantSum += float64(want[i])
	}
	got := append([]float32(nil), row...)
	sum := expShift(got, m)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("element %d: expShift %g, expf %g", i, got[i], want[i])
		}
	}
	if sum != wantSum {
		t.Errorf("sum %g, want %g", sum, wantSum)
	}
}
