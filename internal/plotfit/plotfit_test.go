package plotfit

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// figure builds a figure of the given series with a legend entry each, as the callers do.
func figure(t *testing.T, series ...plotter.XYs) *Figure {
	t.Helper()
	p := plot.New()
	f := New(p, 7*vg.Inch, 4*vg.Inch)
	f.Radius = vg.Points(2)
	for i, s := range series {
		l, pts, err := plotter.NewLinePoints(s)
		if err != nil {
			t.Fatal(err)
		}
		p.Add(l, pts)
		f.Add(strings.Repeat("long legend entry ", 1)+string(rune('A'+i)), s, l, pts)
	}
	return f
}

func line(ys ...float64) plotter.XYs {
	xys := make(plotter.XYs, len(ys))
	for i, y := range ys {
		xys[i] = plotter.XY{X: float64(i + 1), Y: y}
	}
	return xys
}

// TestFitPlacesLegendClear: for data leaving different corners free, Fit picks a free corner
// (top right first), the legend then covers no point or line, and no point is on the frame.
// Without Fit the same figures fail Check: the test can fail.
func TestFitPlacesLegendClear(t *testing.T) {
	for _, c := range []struct {
		name   string
		series []plotter.XYs
		corner string
	}{
		// Losses fall: the top right is free.
		{"falling", []plotter.XYs{line(3, 2, 1.5, 1.2, 1.1, 1.05, 1), line(3.1, 2.2, 1.7, 1.5)}, "top right"},
		// Reward against K rises: the top left is free.
		{"rising", []plotter.XYs{line(1, 2, 2.5, 2.8, 3), line(1, 1.2, 1.4, 1.6, 1.7)}, "top left"},
		// GAtt: 100% then 0% before, near 100% after: only the middle is free, no corner is.
		{"gatt", []plotter.XYs{line(100, 0, 0, 0, 0, 0, 0, 0, 0, 0), line(100, 97, 100, 97, 93, 93, 90, 80, 60, 70)}, "top right"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := figure(t, c.series...)
			if err := f.Check(); err == nil {
				t.Errorf("Check passes before Fit (legend at %s, y %g..%g): it cannot detect the problem", f.LegendCorner(), f.Plot.Y.Min, f.Plot.Y.Max)
			}
			if err := f.Fit(); err != nil {
				t.Fatal(err)
			}
			if err := f.Check(); err != nil {
				t.Errorf("after Fit (legend at %s): %v", f.LegendCorner(), err)
			}
			if got := f.LegendCorner(); got != c.corner {
				t.Errorf("legend at %s, want %s", got, c.corner)
			}
			b, err := f.PNG()
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if w := img.Bounds().Dx(); w < 600 {
				t.Errorf("PNG is %d pixels wide", w)
			}
		})
	}
}

// TestFitRaisesTopWhenNoCornerIsFree: a zigzag over the whole range crosses every corner; Fit raises
// Y.Max so the data lies below the legend, keeping Y.Min.
func TestFitRaisesTopWhenNoCornerIsFree(t *testing.T) {
	var ys []float64
	for i := range 40 {
		ys = append(ys, float64(i%2))
	}
	f := figure(t, line(ys...), line(ys[1:]...))
	if err := f.Fit(); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(); err != nil {
		t.Error(err)
	}
	if f.Plot.Y.Max <= 1+yMargin || f.Plot.Y.Min != -yMargin {
		t.Errorf("y axis %g..%g: want -yMargin and a top raised above 1+yMargin", f.Plot.Y.Min, f.Plot.Y.Max)
	}
}

func TestPadAxis(t *testing.T) {
	for _, c := range []struct {
		min, max, lo, hi float64
		wantMin, wantMax float64
	}{
		{math.Inf(1), math.Inf(-1), 0, 10, -0.5, 10.5}, // autoscaled: 5% each side
		{0, 105, 0, 100, -5.25, 105.25},                // a preset top 5 above the data: not 5% of 105
		{-1, 11, 0, 10, -1, 11},                        // already clear both sides
		{math.Inf(1), math.Inf(-1), 2, 2, 1.9, 2.1},    // one value
	} {
		a := plot.Axis{Min: c.min, Max: c.max}
		padAxis(&a, c.lo, c.hi, 0.05)
		if math.Abs(a.Min-c.wantMin) > 1e-12 || math.Abs(a.Max-c.wantMax) > 1e-12 {
			t.Errorf("padAxis(%g..%g, data %g..%g) = %g..%g, want %g..%g", c.min, c.max, c.lo, c.hi, a.Min, a.Max, c.wantMin, c.wantMax)
		}
	}
}

func TestSegmentHits(t *testing.T) {
	r := vg.Rectangle{Min: vg.Point{X: 10, Y: 10}, Max: vg.Point{X: 20, Y: 20}}
	for _, c := range []struct {
		a, b vg.Point
		want bool
	}{
		{vg.Point{X: 0, Y: 15}, vg.Point{X: 30, Y: 15}, true},  // straight through
		{vg.Point{X: 12, Y: 12}, vg.Point{X: 13, Y: 13}, true}, // inside
		{vg.Point{X: 0, Y: 0}, vg.Point{X: 30, Y: 5}, false},   // below
		{vg.Point{X: 0, Y: 25}, vg.Point{X: 25, Y: 0}, true},   // across a corner
		{vg.Point{X: 0, Y: 15}, vg.Point{X: 9, Y: 15}, false},  // stops short
		{vg.Point{X: 15, Y: 0}, vg.Point{X: 15, Y: 9}, false},  // vertical, short
	} {
		if got := segmentHits(c.a, c.b, r); got != c.want {
			t.Errorf("segmentHits(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
