package gatt

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/internal/plotfit"
)

// plotColors cycles through matplotlib's first colours, one per model.
var plotColors = [...]color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255}, color.RGBA{R: 140, G: 86, B: 75, A: 255},
}

// writeEvalPlot draws % adherent against the turn, one line per model; turns where nothing was
// checked are left out of the line.
func writeEvalPlot(path string, r EvalResult) error {
	f, err := evalFigure(r)
	if err != nil {
		return fmt.Errorf("plotting %s: %w", path, err)
	}
	png, err := f.PNG()
	if err != nil {
		return fmt.Errorf("drawing %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, png)
}

// evalFigure lays the plot out with plotfit: a model that keeps the instruction runs along 100%
// and one that loses it along 0%, so the axis is padded past both and the legend goes where no
// line is (above the data when no corner is free).
func evalFigure(r EvalResult) (*plotfit.Figure, error) {
	p := plot.New()
	p.Title.Text = "GAtt consistency over turns"
	p.X.Label.Text = "turn"
	p.Y.Label.Text = "% adherent"
	p.X.Min, p.X.Max = 0.5, float64(r.Turns)+0.5
	p.Y.Min, p.Y.Max = 0, 100
	p.Add(plotter.NewGrid())
	f := plotfit.New(p, 7*vg.Inch, 4*vg.Inch)
	f.Radius = vg.Points(2)
	for i, m := range r.Models {
		var xys plotter.XYs
		for _, t := range m.Turns {
			if !math.IsNaN(t.Percent) {
				xys = append(xys, plotter.XY{X: float64(t.Turn), Y: t.Percent})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Label, err)
		}
		c := plotColors[i%len(plotColors)]
		l.Color, pts.Color = c, c
		pts.Radius = f.Radius
		p.Add(l, pts)
		f.Add(m.Label, xys, l, pts)
	}
	return f, f.Fit()
}
