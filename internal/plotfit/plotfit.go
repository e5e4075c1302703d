// Package plotfit lays out alignkit's line plots so that they can be read: no point sits on the
// frame, and the legend covers no data.
//
// gonum/plot places its legend at a fixed corner whatever lies there, and an axis autoscaled to
// the data puts the extreme points on the frame. A Figure instead keeps the series it draws, pads
// the ranges, and draws its own legend in a corner of the data area that no point or line crosses,
// raising the top of the Y range until the top right corner is free when none is. Check states the
// same two properties on the figure's geometry, for tests.
package plotfit

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/recorder"
)

// Margins, as fractions of an axis's range, kept between the data and the frame.
const (
	yMargin = 0.08
	xMargin = 0.04
)

// clearance is kept between the legend's box and any point or line, beyond the glyph radius.
const clearance = vg.Length(2)

// inset keeps the legend off the axes.
const inset = vg.Length(4)

// Figure is a plot with the series it shows and a legend it places itself.
type Figure struct {
	Plot *plot.Plot
	// W and H are the size the figure is drawn at; the layout depends on them.
	W, H vg.Length
	// Radius is the largest glyph radius of the series' points (0 for lines alone).
	Radius vg.Length

	legend plot.Legend
	names  []string
	series []plotter.XYs
	// corner is where Fit put the legend.
	top, left bool
}

// New returns a figure for p drawn at w × h.
func New(p *plot.Plot, w, h vg.Length) *Figure {
	return &Figure{Plot: p, W: w, H: h, legend: plot.NewLegend(), top: true}
}

// Add records a series the plot shows (its plotters added to Plot by the caller) and, when name is
// not empty, a legend entry drawn with thumbs.
func (f *Figure) Add(name string, xys plotter.XYs, thumbs ...plot.Thumbnailer) {
	f.series = append(f.series, xys)
	if name != "" {
		f.legend.Add(name, thumbs...)
		f.names = append(f.names, name)
	}
}

// Fit pads the plot's ranges so that every point lies strictly inside them, then places the legend.
// It returns an error only when the legend is too big for the figure.
func (f *Figure) Fit() error {
	lo, hi, ok := f.bounds()
	if !ok {
		return nil
	}
	padAxis(&f.Plot.X, lo.X, hi.X, xMargin)
	padAxis(&f.Plot.Y, lo.Y, hi.Y, yMargin)
	if len(f.names) == 0 {
		return nil
	}
	for _, c := range [][2]bool{{true, false}, {true, true}, {false, false}, {false, true}} {
		f.top, f.left = c[0], c[1]
		if f.overlap() == "" {
			return nil
		}
	}
	// No corner is free: raise the top of the Y range until the data lies below the legend at the
	// top right. The axis's tick labels can change width as the range changes, so iterate.
	f.top, f.left = true, false
	y := &f.Plot.Y
	for range 20 {
		if f.overlap() == "" {
			return nil
		}
		dc := f.dataCanvas()
		box := f.legendBox(dc)
		free := float64((box.Min.Y - clearance - f.Radius - dc.Min.Y) / (dc.Max.Y - dc.Min.Y))
		if free < 0.25 {
			return fmt.Errorf("the legend (%d entries) leaves less than a quarter of the %v × %v figure for the data", len(f.names), f.W, f.H)
		}
		y.Max = y.Min + (hi.Y-y.Min)/free*1.02
	}
	return errors.New("the legend could not be placed clear of the data")
}

// padAxis widens a's range so that [lo, hi] lies at least margin × range inside it.
func padAxis(a *plot.Axis, lo, hi, margin float64) {
	aMin, aMax := math.Min(a.Min, lo), math.Max(a.Max, hi)
	span := aMax - aMin
	if span == 0 {
		span = math.Max(math.Abs(hi), 1)
	}
	m := margin * span
	if lo-aMin < m {
		aMin = lo - m
	}
	if aMax-hi < m {
		aMax = hi + m
	}
	a.Min, a.Max = aMin, aMax
}

// bounds is the smallest box holding every point.
func (f *Figure) bounds() (lo, hi plotter.XY, ok bool) {
	lo = plotter.XY{X: math.Inf(1), Y: math.Inf(1)}
	hi = plotter.XY{X: math.Inf(-1), Y: math.Inf(-1)}
	for _, s := range f.series {
		for _, p := range s {
			lo.X, lo.Y = math.Min(lo.X, p.X), math.Min(lo.Y, p.Y)
			hi.X, hi.Y = math.Max(hi.X, p.X), math.Max(hi.Y, p.Y)
			ok = true
		}
	}
	return lo, hi, ok
}

// canvas is a w × h canvas that records nothing worth keeping: the layout needs only its size.
func (f *Figure) canvas() draw.Canvas {
	return draw.NewCanvas(new(recorder.Canvas), f.W, f.H)
}

// dataCanvas is the area the plot draws its data in.
func (f *Figure) dataCanvas() draw.Canvas {
	return f.Plot.DataCanvas(f.canvas())
}

// legendCanvas is the area the legend is drawn in: the data area, inset from the axes.
func legendCanvas(dc draw.Canvas) draw.Canvas {
	return draw.Crop(dc, inset, -inset, inset, -inset)
}

// legendBox is the rectangle plot.Legend.Draw covers on the data area dc at the chosen corner
// (plot.Legend.Rectangle mirrors its left and right, so the geometry is computed here from the
// same terms Draw uses).
func (f *Figure) legendBox(dc draw.Canvas) vg.Rectangle {
	c := legendCanvas(dc)
	l := &f.legend
	l.Top, l.Left = f.top, f.left
	sty := l.TextStyle
	em := sty.Rectangle(" ").Max.X
	var textW, enth vg.Length
	for _, n := range f.names {
		r := sty.Rectangle(n)
		textW, enth = max(textW, r.Max.X), max(enth, r.Max.Y)
	}
	n := vg.Length(len(f.names))
	height := n*enth + (n-1)*l.Padding
	width := l.ThumbnailWidth + em + textW
	descent := sty.FontExtents().Descent
	var r vg.Rectangle
	if l.Left {
		r.Min.X, r.Max.X = c.Min.X, c.Min.X+width
	} else {
		r.Min.X, r.Max.X = c.Max.X-width, c.Max.X
	}
	if l.Top {
		r.Max.Y = c.Max.Y - descent
		r.Min.Y = r.Max.Y - height
	} else {
		r.Min.Y = c.Min.Y
		r.Max.Y = c.Min.Y + height
	}
	return r
}

// overlap describes the first point or line segment inside the legend's box (grown by the glyph
// radius and a clearance), or is "".
func (f *Figure) overlap() string {
	dc := f.dataCanvas()
	box := f.legendBox(dc)
	g := f.Radius + clearance
	box.Min.X, box.Min.Y, box.Max.X, box.Max.Y = box.Min.X-g, box.Min.Y-g, box.Max.X+g, box.Max.Y+g
	tx, ty := f.Plot.Transforms(&dc)
	for i, s := range f.series {
		for j, p := range s {
			a := vg.Point{X: tx(p.X), Y: ty(p.Y)}
			if j == 0 && segmentHits(a, a, box) {
				return fmt.Sprintf("series %d point (%g, %g) lies under the legend", i, p.X, p.Y)
			}
			if j == 0 {
				continue
			}
			q := s[j-1]
			b := vg.Point{X: tx(q.X), Y: ty(q.Y)}
			if segmentHits(b, a, box) {
				return fmt.Sprintf("series %d line from (%g, %g) to (%g, %g) passes under the legend", i, q.X, q.Y, p.X, p.Y)
			}
		}
	}
	return ""
}

// segmentHits reports whether the segment from a to b meets rectangle r (Liang-Barsky clipping).
func segmentHits(a, b vg.Point, r vg.Rectangle) bool {
	t0, t1 := 0.0, 1.0
	dx, dy := float64(b.X-a.X), float64(b.Y-a.Y)
	for _, e := range [4][2]float64{
		{-dx, float64(a.X - r.Min.X)}, {dx, float64(r.Max.X - a.X)},
		{-dy, float64(a.Y - r.Min.Y)}, {dy, float64(r.Max.Y - a.Y)},
	} {
		p, q := e[0], e[1]
		if p == 0 {
			if q < 0 {
				return false
			}
			continue
		}
		t := q / p
		if p < 0 {
			t0 = math.Max(t0, t)
		} else {
			t1 = math.Min(t1, t)
		}
		if t0 > t1 {
			return false
		}
	}
	return true
}

// Check returns an error when a point lies on or outside the frame (closer to it than 1% of the
// axis's range) or a point or line lies under the legend.
func (f *Figure) Check() error {
	x, y := f.Plot.X, f.Plot.Y
	for i, s := range f.series {
		for _, p := range s {
			if gap := 0.01 * (x.Max - x.Min); !(p.X-x.Min > gap && x.Max-p.X > gap) {
				return fmt.Errorf("series %d point (%g, %g) is on the frame: x axis %g..%g", i, p.X, p.Y, x.Min, x.Max)
			}
			if gap := 0.01 * (y.Max - y.Min); !(p.Y-y.Min > gap && y.Max-p.Y > gap) {
				return fmt.Errorf("series %d point (%g, %g) is on the frame: y axis %g..%g", i, p.X, p.Y, y.Min, y.Max)
			}
		}
	}
	if len(f.names) > 0 {
		if o := f.overlap(); o != "" {
			return errors.New(o)
		}
	}
	return nil
}

// LegendCorner says where the legend is: "top right", "bottom left", ...
func (f *Figure) LegendCorner() string {
	v, h := "bottom", "right"
	if f.top {
		v = "top"
	}
	if f.left {
		h = "left"
	}
	return v + " " + h
}

// PNG draws the figure: the plot, then the legend at its corner.
func (f *Figure) PNG() ([]byte, error) {
	c, err := draw.NewFormattedCanvas(f.W, f.H, "png")
	if err != nil {
		return nil, err
	}
	dc := draw.New(c)
	f.Plot.Draw(dc)
	f.legend.Top, f.legend.Left = f.top, f.left
	f.legend.Draw(legendCanvas(f.Plot.DataCanvas(dc)))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
