package train

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/internal/plotfit"
)

// reporter shows progress: a progress bar with loss, tokens/s and ETA on a terminal, plain log lines
// otherwise (files, pipes, CI logs).
type reporter struct {
	w         io.Writer
	bar       *progressbar.ProgressBar
	total     int
	startStep int
	start     time.Time
	now       func() time.Time
	barKeys   []string // extra metrics the bar shows, without duplicates
}

func newReporter(o options, total, startStep int) *reporter {
	p := &reporter{w: o.log, total: total, startStep: startStep, start: o.now(), now: o.now}
	for _, k := range o.barMetrics {
		// loss, tokens/s and eval_loss are on the bar already.
		if k != "" && k != "loss" && k != "tokens_per_second" && !slices.Contains(p.barKeys, k) {
			p.barKeys = append(p.barKeys, k)
		}
	}
	if p.w == nil {
		p.w = io.Discard
	}
	useBar := false
	if o.bar != nil {
		useBar = *o.bar
	} else if f, ok := p.w.(*os.File); ok {
		useBar = term.IsTerminal(int(f.Fd()))
	}
	if useBar {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("training"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
		)
		p.bar.Set(startStep)
	}
	return p
}

// step advances the display; logged says that metrics (the last metrics line) are new.
func (p *reporter) step(step int, metrics map[string]float64, logged bool) {
	if p.bar != nil {
		if logged {
			desc := ""
			if v, ok := metrics["loss"]; ok {
				desc = fmt.Sprintf("loss %.4f", v)
			}
			if v, ok := metrics["tokens_per_second"]; ok {
				desc += fmt.Sprintf(" | %.0f tok/s", v)
			}
			for _, k := range p.barKeys {
				if v, ok := metrics[k]; ok {
					desc += fmt.Sprintf(" | %s %.4g", k, v)
				}
			}
			if v, ok := metrics["eval_loss"]; ok {
				desc += fmt.Sprintf(" | eval_loss %.4f", v)
			}
			for _, k := range p.barKeys {
				if v, ok := metrics["eval_"+k]; ok {
					desc += fmt.Sprintf(" | eval_%s %.4g", k, v)
				}
			}
			p.bar.Describe(desc)
		}
		p.bar.Set(step)
		return
	}
	if !logged {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "step %d/%d", step, p.total)
	keys := make([]string, 0, len(metrics))
	for k := range metrics {
		if k != "step" {
			keys = append(keys, k)
		}
	}
	// Loop metrics first in a fixed order, then the task's train values, then eval keys, alphabetically.
	order := []string{"epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second"}
	slices.SortFunc(keys, func(a, c string) int {
		ia, ic := slices.Index(order, a), slices.Index(order, c)
		switch {
		case ia >= 0 && ic >= 0:
			return ia - ic
		case ia >= 0:
			return -1
		case ic >= 0:
			return 1
		}
		ea, ec := strings.HasPrefix(a, "eval_"), strings.HasPrefix(c, "eval_")
		if ea != ec {
			if ea {
				return 1
			}
			return -1
		}
		return strings.Compare(a, c)
	})
	for _, k := range keys {
		fmt.Fprintf(&b, " %s %.6g", k, metrics[k])
	}
	if done := step - p.startStep; done > 0 && step < p.total {
		eta := time.Duration(float64(p.now().Sub(p.start)) / float64(done) * float64(p.total-step))
		fmt.Fprintf(&b, " eta %s", eta.Round(time.Second))
	}
	fmt.Fprintln(p.w, b.String())
}

// note prints a message line (checkpoint saved, warnings), above the bar if there is one.
func (p *reporter) note(format string, a ...any) {
	if p == nil {
		return
	}
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintf(p.w, format+"\n", a...)
}

func (p *reporter) close() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

// writeLossPlot draws the train loss and eval loss curves of log_history into a PNG at path.
func writeLossPlot(path string, history []map[string]any) error {
	var train, eval plotter.XYs
	for _, e := range history {
		step, ok := asFloat(e["step"])
		if !ok {
			continue
		}
		if v, ok := asFloat(e["loss"]); ok {
			train = append(train, plotter.XY{X: step, Y: v})
		}
		if v, ok := asFloat(e["eval_loss"]); ok {
			eval = append(eval, plotter.XY{X: step, Y: v})
		}
	}
	if len(train) == 0 && len(eval) == 0 {
		return nil
	}
	f, err := lossFigure(train, eval)
	if err != nil {
		return fmt.Errorf("plotting %s: %w", path, err)
	}
	png, err := f.PNG()
	if err != nil {
		return fmt.Errorf("drawing %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, png)
}

// lossFigure lays the loss curves out with plotfit: a noisy train loss (DPO's especially) can fill
// the top right corner that a falling loss usually leaves free, so the legend goes to whichever
// corner no point or line crosses, and the axes are padded past the extreme points.
func lossFigure(train, eval plotter.XYs) (*plotfit.Figure, error) {
	p := plot.New()
	p.Title.Text = "loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	p.Add(plotter.NewGrid())
	f := plotfit.New(p, 7*vg.Inch, 4*vg.Inch)
	f.Radius = vg.Points(1.5)
	for i, s := range []struct {
		name string
		xys  plotter.XYs
	}{{"train loss", train}, {"eval loss", eval}} {
		if len(s.xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		l.Color = plotColors[i]
		pts.Color = plotColors[i]
		pts.Radius = f.Radius
		p.Add(l, pts)
		f.Add(s.name, s.xys, l)
	}
	return f, f.Fit()
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, finite(x)
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

var plotColors = [...]color.Color{color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255}}
