package train

import (
	"math"
	"testing"

	"gonum.org/v1/plot/plotter"
)

// TestLossPlotLayout: loss curves of the shapes trainers log give a plot whose points lie strictly
// inside the axes and whose legend covers no point or line (plotfit.Check on the figure's
// geometry): a falling SFT loss; a DPO loss that starts at ln 2 and stays noisy over the whole
// run (per-batch noise of ±0.15, so its points reach the top right corner where the old layout put
// the legend); and one eval point.
func TestLossPlotLayout(t *testing.T) {
	var sft, sftEval, dpo, dpoEval plotter.XYs
	for s := 1; s <= 100; s++ {
		x := float64(s)
		sft = append(sft, plotter.XY{X: x, Y: 1 + 2*math.Exp(-x/20)})
		// A fixed pseudo-random ±0.15: the sine of a large multiple is spread over [-1, 1].
		dpo = append(dpo, plotter.XY{X: x, Y: math.Ln2 - 0.2*x/100 + 0.15*math.Sin(x*12.9898)})
		if s%25 == 0 {
			sftEval = append(sftEval, plotter.XY{X: x, Y: 1.1 + 2*math.Exp(-x/20)})
			dpoEval = append(dpoEval, plotter.XY{X: x, Y: math.Ln2 - 0.1*x/100})
		}
	}
	for _, c := range []struct {
		name        string
		train, eval plotter.XYs
	}{
		{"sft", sft, sftEval},
		{"dpo", dpo, dpoEval},
		{"one eval point", nil, plotter.XYs{{X: 10, Y: 2.5}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := lossFigure(c.train, c.eval)
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
