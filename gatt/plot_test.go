package gatt

import (
	"math"
	"testing"
)

// TestEvalPlotLayout: the demo's 2026-12-06 result (README's GAtt row: before GAtt 100% at turn 1
// and 0% from turn 2 on; after it 100, 97, ..., 70 over 20 turns), a single model, and a turn with
// nothing checked give a plot whose points lie strictly inside the axes and whose legend covers no
// point or line (checked on the figure's geometry by plotfit.Check).
func TestEvalPlotLayout(t *testing.T) {
	after := []float64{100, 97, 100, 100, 97, 97, 93, 93, 93, 93, 93, 93, 90, 90, 60, 53, 60, 70, 70, 70}
	turns := func(ps []float64) []TurnStat {
		out := make([]TurnStat, len(ps))
		for i, p := range ps {
			out[i] = TurnStat{Turn: i + 1, Percent: p}
		}
		return out
	}
	before := make([]float64, 20)
	before[0] = 100
	gap := append([]float64(nil), after...)
	gap[3] = math.NaN()
	for _, c := range []struct {
		name string
		r    EvalResult
	}{
		{"demo", EvalResult{Turns: 20, Models: []ModelResult{{Label: "before GAtt", Turns: turns(before)}, {Label: "after GAtt", Turns: turns(after)}}}},
		{"one model", EvalResult{Turns: 20, Models: []ModelResult{{Label: "runs/gatt-sft-stories260k", Turns: turns(after)}}}},
		{"unchecked turn", EvalResult{Turns: 20, Models: []ModelResult{{Label: "a", Turns: turns(before)}, {Label: "b", Turns: turns(gap)}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := evalFigure(c.r)
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
