package demo

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/alignkit/alignkit/internal/atomicfile"
)

// Output files of a several-seed run (RunSeeds), in its output directory; each seed's own run is
// in seed-<seed>/.
const (
	SeedsFile     = "SEEDS.md"
	SeedsJSONFile = "seeds.json"
)

// Stat is one measurement over the seeds: each seed's value, their mean, the sample standard
// deviation and the range.
type Stat struct {
	Name string `json:"name"`
	// Points marks a measurement in points (a percent) rather than a share in [0, 1] or a reward.
	Points bool      `json:"points,omitempty"`
	Values []float64 `json:"values"`
	Mean   float64   `json:"mean"`
	Std    float64   `json:"std"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
}

func newStat(name string, points bool, vs []float64) Stat {
	s := Stat{Name: name, Points: points, Values: vs, Min: math.Inf(1), Max: math.Inf(-1)}
	for _, v := range vs {
		s.Mean += v
		s.Min, s.Max = min(s.Min, v), max(s.Max, v)
	}
	s.Mean /= float64(len(vs))
	if len(vs) > 1 {
		for _, v := range vs {
			s.Std += (v - s.Mean) * (v - s.Mean)
		}
		s.Std = math.Sqrt(s.Std / float64(len(vs)-1))
	}
	return s
}

// SeedCheck is one target over the seeds: how many seeds met it.
type SeedCheck struct {
	Name   string   `json:"name"`
	Want   string   `json:"want"`
	Passed int      `json:"passed"`
	Seeds  int      `json:"seeds"`
	Got    []string `json:"got"` // each seed's measurement
}

// SeedsSummary is a several-seed run: the seeds, every measurement's statistics, and each
// target's pass count.
type SeedsSummary struct {
	Seeds  []uint64    `json:"seeds"`
	Quick  bool        `json:"quick"`
	BLAS   string      `json:"blas"`
	Stats  []Stat      `json:"stats"`
	Checks []SeedCheck `json:"checks"`
}

// RunSeeds runs the whole demo n times, with seeds opts.Seed, opts.Seed+1, ..., each into
// <opts.Out>/seed-<seed> (world, training runs and samples all follow the seed), then writes
// SEEDS.md and seeds.json with each measured effect's mean and spread and each target's count of
// seeds that met it, and prints the SEEDS.md table to opts.Table.
func RunSeeds(ctx context.Context, opts Options, n int) (*SeedsSummary, error) {
	if n < 1 {
		return nil, fmt.Errorf("--seeds %d: want >= 1", n)
	}
	opts = opts.withDefaults()
	if err := checkConfigDir(opts.ConfigDir); err != nil {
		return nil, err
	}
	if err := prepareOut(opts.Out, opts.Force); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteJSON(filepath.Join(opts.Out, MarkerFile), map[string]any{"seed": opts.Seed, "seeds": n, "quick": opts.Quick}); err != nil {
		return nil, err
	}
	var runs []*Results
	for i := range n {
		o := opts
		o.Seed = opts.Seed + uint64(i)
		o.Out = filepath.Join(opts.Out, fmt.Sprintf("seed-%d", o.Seed))
		o.Force = false
		o.Table = io.Discard // each seed's table is in its RESULTS.md; SEEDS.md is printed at the end
		fmt.Fprintf(opts.Log, "\n==== seed %d (%d of %d) -> %s\n", o.Seed, i+1, n, o.Out)
		res, err := Run(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("seed %d: %w", o.Seed, err)
		}
		runs = append(runs, res)
	}
	s := Summarize(runs)
	if err := atomicfile.WriteJSON(filepath.Join(opts.Out, SeedsJSONFile), s); err != nil {
		return nil, err
	}
	md := s.Markdown()
	if err := atomicfile.WriteFile(filepath.Join(opts.Out, SeedsFile), []byte(md)); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Table, "\n%s\n", md)
	return s, nil
}

// seedMetric is one measurement read from a run's results; ok is false where the run lacks it.
type seedMetric struct {
	name   string
	get    func(*Results) (float64, bool)
	points bool // see Stat.Points
}

// seedMetrics are the measured effects summarised over seeds, in pipeline order.
func seedMetrics(stages []string) []seedMetric {
	var ms []seedMetric
	corr := func(stage string, f func(*Correctness) (float64, bool)) func(*Results) (float64, bool) {
		return func(r *Results) (float64, bool) {
			c := r.correctnessOf(stage)
			if c == nil {
				return 0, false
			}
			return f(c)
		}
	}
	for _, st := range stages {
		ms = append(ms,
			seedMetric{st + ": greedy correctness", corr(st, func(c *Correctness) (float64, bool) { return c.Greedy.All.Rate(), c.Greedy.All.Total > 0 }), false},
			seedMetric{st + ": sampled correctness", corr(st, func(c *Correctness) (float64, bool) { return c.Sampled.All.Rate(), c.Sampled.All.Total > 0 }), false},
			seedMetric{st + ": greedy refusals on safety prompts", corr(st, func(c *Correctness) (float64, bool) { return c.Refusal.Rate(), c.Refusal.Total > 0 }), false},
			seedMetric{st + ": greedy over-refusals on the others", corr(st, func(c *Correctness) (float64, bool) { return c.OverRefusal.Rate(), c.OverRefusal.Total > 0 }), false},
			seedMetric{st + ": safety RM on safety prompts (mean sigmoid %)", corr(st, func(c *Correctness) (float64, bool) {
				return rmValue(c, true)
			}), true},
			seedMetric{st + ": helpfulness RM on the others (mean sigmoid %)", corr(st, func(c *Correctness) (float64, bool) {
				return rmValue(c, false)
			}), true},
		)
	}
	ms = append(ms,
		seedMetric{"helpfulness reward model: held-out accuracy", func(r *Results) (float64, bool) {
			return accuracy(r.RewardModel)
		}, false},
		seedMetric{"safety reward model: held-out accuracy", func(r *Results) (float64, bool) {
			return accuracy(r.SafetyRewardModel)
		}, false},
		seedMetric{"rlhf sample: reward models' best of K right (grader)", func(r *Results) (float64, bool) {
			if r.RewardVsK == nil {
				return 0, false
			}
			return r.RewardVsK.BestCorrect.Rate(), r.RewardVsK.BestCorrect.Total > 0
		}, false},
		seedMetric{"rlhf sample: expected max reward, N=K minus N=1", func(r *Results) (float64, bool) {
			k := r.RewardVsK
			if k == nil || len(k.ExpectedMax) < 2 {
				return 0, false
			}
			return k.ExpectedMax[len(k.ExpectedMax)-1] - k.ExpectedMax[0], true
		}, false},
		seedMetric{"PPO: objective/kl, last logged step", func(r *Results) (float64, bool) {
			if r.PPO == nil {
				return 0, false
			}
			return r.PPO.LastKL, true
		}, false},
		seedMetric{"DPO: held-out preference accuracy", func(r *Results) (float64, bool) {
			if r.DPO == nil {
				return 0, false
			}
			return r.DPO.Accuracy, true
		}, false},
		seedMetric{"GRPO: mean reward, last logged step", func(r *Results) (float64, bool) {
			if r.GRPO == nil {
				return 0, false
			}
			return r.GRPO.LastReward, true
		}, false},
		seedMetric{fmt.Sprintf("GAtt: mean adherence gain, turns >= %d (points)", GAttLateTurn), func(r *Results) (float64, bool) {
			if r.GAtt == nil {
				return 0, false
			}
			b, a := r.GAtt.LateMeans()
			return a - b, !math.IsNaN(a - b)
		}, true},
	)
	return ms
}

func rmValue(c *Correctness, safety bool) (float64, bool) {
	if c.RM == nil {
		return 0, false
	}
	if safety {
		return c.RM.Safety, c.RM.SafetyPrompts > 0
	}
	return c.RM.Helpfulness, c.RM.OtherPrompts > 0
}

func accuracy(rm *RewardModel) (float64, bool) {
	if rm == nil {
		return 0, false
	}
	return rm.Accuracy, true
}

// Summarize gathers several runs' measurements (a metric missing from any run is left out) and
// counts, for each of the first run's checks, the runs that met it.
func Summarize(runs []*Results) *SeedsSummary {
	s := &SeedsSummary{}
	if len(runs) == 0 {
		return s
	}
	s.Quick, s.BLAS = runs[0].Quick, runs[0].BLAS
	var stages []string
	for _, r := range runs {
		s.Seeds = append(s.Seeds, r.Seed)
	}
	for _, c := range runs[0].Correctness {
		stages = append(stages, c.Stage)
	}
	for _, m := range seedMetrics(stages) {
		vs := make([]float64, 0, len(runs))
		for _, r := range runs {
			if v, ok := m.get(r); ok {
				vs = append(vs, v)
			}
		}
		if len(vs) == len(runs) {
			s.Stats = append(s.Stats, newStat(m.name, m.points, vs))
		}
	}
	for _, c0 := range runs[0].Checks {
		sc := SeedCheck{Name: c0.Name, Want: c0.Want, Seeds: len(runs)}
		for _, r := range runs {
			c := r.check(c0.Name)
			switch {
			case c == nil:
				sc.Got = append(sc.Got, "not measured")
			default:
				sc.Got = append(sc.Got, c.Got)
				if c.Pass {
					sc.Passed++
				}
			}
		}
		s.Checks = append(s.Checks, sc)
	}
	return s
}

// Markdown is SEEDS.md: every measurement's mean ± standard deviation, range and per-seed values,
// then each target with the seeds that met it.
func (s *SeedsSummary) Markdown() string {
	var b strings.Builder
	mode := "full"
	if s.Quick {
		mode = "quick (--quick: small world, short schedules)"
	}
	seeds := make([]string, len(s.Seeds))
	for i, v := range s.Seeds {
		seeds[i] = fmt.Sprint(v)
	}
	fmt.Fprintf(&b, "# alignkit demo over %d seeds\n\nSeeds %s, %s runs, BLAS %s. Each seed's own RESULTS.md is in seed-<seed>/. "+
		"Spread: sample standard deviation and range over the seeds.\n\n", len(s.Seeds), strings.Join(seeds, ", "), mode, s.BLAS)
	b.WriteString("| Measurement | Mean ± std | Range | Per seed |\n|---|---|---|---|\n")
	for _, st := range s.Stats {
		f := func(v float64) string {
			if st.Points {
				return fmt.Sprintf("%.1f", v)
			}
			return fmt.Sprintf("%.3f", v)
		}
		vals := make([]string, len(st.Values))
		for i, v := range st.Values {
			vals[i] = f(v)
		}
		fmt.Fprintf(&b, "| %s | **%s** ± %s | %s to %s | %s |\n", st.Name, f(st.Mean), f(st.Std), f(st.Min), f(st.Max), strings.Join(vals, ", "))
	}
	b.WriteString("\n| Target | Want | Seeds met | Per seed |\n|---|---|---|---|\n")
	for _, c := range s.Checks {
		esc := func(x string) string { return strings.ReplaceAll(x, "|", `\|`) }
		met := fmt.Sprintf("%d of %d", c.Passed, c.Seeds)
		if c.Passed == c.Seeds {
			met = "**all " + fmt.Sprint(c.Seeds) + "**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", esc(c.Name), esc(c.Want), met, esc(strings.Join(c.Got, "; ")))
	}
	return b.String()
}
