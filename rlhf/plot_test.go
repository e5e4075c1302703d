package rlhf

import (
	"math"
	"testing"
)

// TestCurvesPlotLayout: reward-vs-K curves shaped as the demo's (README, 2026-12-06: expected max
// 1.205 at N=1 rising to 2.976 at N=16, median 1.205 to 1.675), one temperature and three, and a
// falling curve, give a plot whose points lie strictly inside the axes and whose legend covers no
// point or line (plotfit.Check on the figure's geometry). The old layout put the N=16 maximum on
// the top frame.
func TestCurvesPlotLayout(t *testing.T) {
	curve := func(temp, lo, hi, shift float64) Curve {
		c := Curve{Temperature: temp}
		for n := 1; n <= 16; n++ {
			c.N = append(c.N, n)
			f := math.Log2(float64(n)) / 4 // 0 at N=1, 1 at N=16
			c.ExpectedMax = append(c.ExpectedMax, lo+(hi-lo)*f+shift)
			c.Median = append(c.Median, lo+(hi-lo)*0.27*f+shift)
		}
		return c
	}
	falling := curve(1, 3, 1, 0)
	for _, c := range []struct {
		name   string
		curves []Curve
	}{
		{"demo", []Curve{curve(1, 1.205, 2.976, 0)}},
		{"three temperatures", []Curve{curve(0.6, 1.205, 2.5, 0), curve(0.8, 1.205, 2.8, -0.1), curve(1, 1.205, 2.976, -0.2)}},
		{"falling", []Curve{falling}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := curvesFigure(c.curves)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Check(); err != nil {
				t.Errorf("legend at %s: %v", f.LegendCorner(), err)
			}
			if _, err := f.PNG(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
