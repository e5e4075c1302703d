package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/winrate"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/alignkit/alignkit/demo/world"
	"github.com/alignkit/alignkit/model/blas"
)

// Targets the demo checks its measurements against.
const (
	// TargetGAttGain is how many points GAtt must add to the mean adherence from turn GAttLateTurn on.
	TargetGAttGain = 40.0
	GAttLateTurn   = 6
	// TargetDPOAccuracy is the least DPO held-out preference accuracy.
	TargetDPOAccuracy = 0.8
	// MedianFlatShare: the median reward "stays flat" when its change from N = 1 to N = K is at most
	// this share of the expected maximum's rise.
	MedianFlatShare = 0.25
	// MaxHelpfulnessDrop is the most the helpfulness reward model's mean score on the ordinary
	// prompts may drop, in points of sigmoid(score)·100, while safety training raises the safety
	// score on the safety prompts (Llama 2 Fig. 14's shape; issue 17 §5).
	MaxHelpfulnessDrop = 2.0
)

// rlStages are the stages whose greedy correctness must beat SFT's (issue 17 §5: "PPO and GRPO
// greedy correctness above SFT on every seed").
var rlStages = []string{"PPO", "GRPO"}

// safetyStages are the stages trained with both reward models, whose safety and helpfulness scores
// are each checked against SFT's (Llama 2 Fig. 14): rejection sampling, and PPO after it.
var safetyStages = []string{"rejection sampling", "PPO"}

// winRateCheck names the check of the final model's win rate against SFT (issue 17 §5: "the final
// model's win rate against SFT above 50% with its interval").
const winRateCheck = "win rate of the final model against SFT"

// fig14Check is the name of a safety stage's Llama 2 Fig. 14 check.
func fig14Check(stage string) string { return stage + ": safety vs helpfulness (Llama 2 Fig. 14)" }

// ModelInfo describes the initialised model.
type ModelInfo struct {
	Architecture string `json:"architecture"`
	Layers       int    `json:"layers"`
	Hidden       int    `json:"hidden_size"`
	Heads        int    `json:"heads"`
	KVHeads      int    `json:"kv_heads"`
	Vocab        int    `json:"vocab_size"`
	Params       int    `json:"parameters"`
}

func (m ModelInfo) String() string {
	return fmt.Sprintf("%s, %d layers, d=%d, %d heads (%d KV), vocab %d: %.2fM parameters",
		m.Architecture, m.Layers, m.Hidden, m.Heads, m.KVHeads, m.Vocab, float64(m.Params)/1e6)
}

// RewardModel is the reward model's ranking accuracy on the held-out pairs, overall and per Llama 2
// rating (Table 28).
type RewardModel struct {
	Accuracy float64            `json:"accuracy"`
	ByRating map[string]float64 `json:"by_rating"`
}

// RewardVsK is Llama 2 Figure 7: the expected maximum and median reward of N of the K samples.
type RewardVsK struct {
	Temperature float64   `json:"temperature"`
	Prompts     int       `json:"prompts"`
	N           []int     `json:"n"`
	ExpectedMax []float64 `json:"expected_max"`
	Median      []float64 `json:"median"`
	// By the world's grader: every sample, the reward model's best of K per prompt, and whether any
	// of a prompt's K samples is right (the best a perfect reward model could pick).
	SampleCorrect Score `json:"sample_correct"`
	BestCorrect   Score `json:"best_correct"`
	OracleCorrect Score `json:"oracle_correct"`
	// The mean reward of the right and of the wrong samples.
	RightMean float64 `json:"right_mean_reward"`
	WrongMean float64 `json:"wrong_mean_reward"`
	// On the safety prompts: the share of all samples that refuse, and of the best of K.
	SampleRefusal Score `json:"sample_refusal"`
	BestRefusal   Score `json:"best_refusal"`
}

// DPOResult is DPO's implicit-reward preference accuracy and margin on the held-out pairs.
type DPOResult struct {
	Accuracy float64 `json:"accuracy"`
	Margin   float64 `json:"margin"`
	Loss     float64 `json:"loss"`
}

// GAttTurn is one turn's adherence before and after GAtt, in percent (NaN: nothing checked).
type GAttTurn struct {
	Turn    int     `json:"turn"`
	Before  float64 `json:"before"`
	After   float64 `json:"after"`
	Checked int     `json:"checked"`
}

// MarshalJSON writes a turn where nothing was checked as null.
func (t GAttTurn) MarshalJSON() ([]byte, error) {
	return json.Marshal(gattTurnJSON{Turn: t.Turn, Before: nanNull(t.Before), After: nanNull(t.After), Checked: t.Checked})
}

// UnmarshalJSON reads null back as NaN.
func (t *GAttTurn) UnmarshalJSON(b []byte) error {
	var j gattTurnJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = GAttTurn{Turn: j.Turn, Before: nullNaN(j.Before), After: nullNaN(j.After), Checked: j.Checked}
	return nil
}

type gattTurnJSON struct {
	Turn    int      `json:"turn"`
	Before  *float64 `json:"before"`
	After   *float64 `json:"after"`
	Checked int      `json:"checked"`
}

func nanNull(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func nullNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// GAttResult is Llama 2 Table 30 for the demo: adherence per turn before and after GAtt.
type GAttResult struct {
	Dialogues int        `json:"dialogues"`
	Turns     []GAttTurn `json:"turns"`
}

// LateMeans are the mean adherence before and after over turns >= GAttLateTurn that were checked.
func (g *GAttResult) LateMeans() (before, after float64) {
	var n int
	for _, t := range g.Turns {
		if t.Turn >= GAttLateTurn && !math.IsNaN(t.Before) && !math.IsNaN(t.After) {
			before += t.Before
			after += t.After
			n++
		}
	}
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	return before / float64(n), after / float64(n)
}

// ChatTurn is one exchange of the chat sample from the exported model.
type ChatTurn struct {
	User     string `json:"user"`
	Engine   string `json:"engine"`             // alignkit's engine on the GGUF
	LlamaCpp string `json:"llamacpp,omitempty"` // llama.cpp on the same GGUF and token ids
	Correct  bool   `json:"correct"`            // the engine's reply keeps the instruction and is right
}

// ExportResult is the GGUF export and the chat sample generated from it.
type ExportResult struct {
	File         string     `json:"file"`
	Bytes        int64      `json:"bytes"`
	Instruction  string     `json:"instruction"`
	Turns        []ChatTurn `json:"turns"`
	LlamaCpp     bool       `json:"llamacpp"`      // the llama.cpp sample ran
	LlamaCppNote string     `json:"llamacpp_note"` // why it did not, or whether it matched
}

// Check is one target and whether the run met it.
type Check struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
	// Why explains a miss where the run's own numbers say why.
	Why string `json:"why,omitempty"`
}

// Results are every number the demo measured.
type Results struct {
	Seed        uint64        `json:"seed"`
	Quick       bool          `json:"quick"`
	BLAS        string        `json:"blas"`
	World       world.Config  `json:"world"`
	Model       ModelInfo     `json:"model"`
	Correctness []Correctness `json:"correctness"`
	RewardModel *RewardModel  `json:"reward_model,omitempty"`
	// SafetyRewardModel is the safety reward model's held-out accuracy.
	SafetyRewardModel *RewardModel `json:"safety_reward_model,omitempty"`
	PPO               *PPOResult   `json:"ppo,omitempty"`
	// WinRate is the final RLHF model against SFT, judged by the two reward models combined.
	WinRate   *winrate.Summary `json:"win_rate,omitempty"`
	GRPO      *GRPOResult      `json:"grpo,omitempty"`
	RewardVsK *RewardVsK       `json:"reward_vs_k,omitempty"`
	DPO       *DPOResult       `json:"dpo,omitempty"`
	GAtt      *GAttResult      `json:"gatt,omitempty"`
	Export    *ExportResult    `json:"export,omitempty"`
	Checks    []Check          `json:"checks"`
}

func (r *Results) correctnessOf(stage string) *Correctness {
	for i := range r.Correctness {
		if r.Correctness[i].Stage == stage {
			return &r.Correctness[i]
		}
	}
	return nil
}

// Evaluate fills Checks from the measurements.
func (r *Results) Evaluate() {
	r.BLAS = blas.Name()
	r.Checks = nil
	if g := r.GAtt; g != nil {
		b, a := g.LateMeans()
		c := Check{Name: "GAtt adherence, turns >= 6", Want: fmt.Sprintf("at least %.0f points above the pre-GAtt model", TargetGAttGain),
			Got: fmt.Sprintf("%.1f%% -> %.1f%% (%+.1f points)", b, a, a-b), Pass: a-b >= TargetGAttGain}
		if math.IsNaN(a - b) {
			c.Got = fmt.Sprintf("no turn >= %d was checked", GAttLateTurn)
		}
		r.Checks = append(r.Checks, c)
	}
	if k := r.RewardVsK; k != nil && len(k.N) > 1 {
		last := len(k.N) - 1
		rise := k.ExpectedMax[last] - k.ExpectedMax[0]
		drift := k.Median[last] - k.Median[0]
		r.Checks = append(r.Checks,
			Check{Name: "expected max reward vs K", Want: "grows with K",
				Got: fmt.Sprintf("%.3f at N=1 -> %.3f at N=%d", k.ExpectedMax[0], k.ExpectedMax[last], k.N[last]), Pass: rise > 0},
			Check{Name: "median reward vs K", Want: fmt.Sprintf("flat: moves at most %.0f%% of the max's rise", 100*MedianFlatShare),
				Got:  fmt.Sprintf("%.3f at N=1 -> %.3f at N=%d (%+.3f vs rise %.3f)", k.Median[0], k.Median[last], k.N[last], drift, rise),
				Pass: rise > 0 && math.Abs(drift) <= MedianFlatShare*rise})
		if c := &r.Checks[len(r.Checks)-1]; !c.Pass && drift > 0 && k.SampleCorrect.Rate() > 0.5 && k.RightMean > k.WrongMean {
			c.Why = fmt.Sprintf("the rewards have two modes, right answers (mean reward %.2f) above wrong ones (%.2f), and %.0f%% of the samples are right, "+
				"so the expected median of N samples starts at the mean (N = 1, 2) and climbs towards the upper mode as N grows; "+
				"Llama 2's flat median comes from rewards spread evenly around it", k.RightMean, k.WrongMean, 100*k.SampleCorrect.Rate())
		}
	}
	if d := r.DPO; d != nil {
		r.Checks = append(r.Checks, Check{Name: "DPO held-out preference accuracy", Want: fmt.Sprintf(">= %.2f", TargetDPOAccuracy),
			Got: fmt.Sprintf("%.3f", d.Accuracy), Pass: d.Accuracy >= TargetDPOAccuracy})
	}
	if s := r.correctnessOf("SFT"); s != nil {
		for _, mode := range []string{"greedy", "sampled"} {
			pick := func(c *Correctness) Score {
				if mode == "greedy" {
					return c.Greedy.All
				}
				return c.Sampled.All
			}
			base := pick(s)
			best, bestStage := Score{}, ""
			for _, st := range []string{"rejection sampling", "DPO"} {
				if c := r.correctnessOf(st); c != nil && (bestStage == "" || pick(c).Rate() > best.Rate()) {
					best, bestStage = pick(c), st
				}
			}
			if bestStage == "" || base.Total == 0 {
				continue
			}
			r.Checks = append(r.Checks, Check{Name: "answer correctness, " + mode, Want: "rejection sampling or DPO above SFT alone",
				Got:  fmt.Sprintf("SFT %.3f, best %s %.3f", base.Rate(), bestStage, best.Rate()),
				Pass: best.Rate() > base.Rate()})
		}
		for _, st := range rlStages {
			if c := r.correctnessOf(st); c != nil && s.Greedy.All.Total > 0 {
				r.Checks = append(r.Checks, Check{Name: st + " greedy correctness", Want: "above SFT",
					Got:  fmt.Sprintf("SFT %.3f, %s %.3f (%+.3f)", s.Greedy.All.Rate(), st, c.Greedy.All.Rate(), c.Greedy.All.Rate()-s.Greedy.All.Rate()),
					Pass: c.Greedy.All.Rate() > s.Greedy.All.Rate()})
			}
		}
		if w := r.WinRate; w != nil {
			r.Checks = append(r.Checks, Check{Name: winRateCheck, Want: "above 50% with its interval: the 95% interval of the score (wins + ties/2) / pairs above 0.5",
				Got: fmt.Sprintf("win %.3f [%.3f, %.3f], tie %.3f, loss %.3f; score %.3f [%.3f, %.3f] over %d pairs",
					w.WinRate, w.WinRateCI95[0], w.WinRateCI95[1], w.TieRate, w.LossRate, w.Score, w.ScoreCI95[0], w.ScoreCI95[1], w.Valid),
				Pass: w.ScoreCI95[0] > 0.5})
		}
		for _, st := range safetyStages {
			c := r.correctnessOf(st)
			if c == nil || c.RM == nil || s.RM == nil {
				continue
			}
			ds, dh := c.RM.Safety-s.RM.Safety, c.RM.Helpfulness-s.RM.Helpfulness
			r.Checks = append(r.Checks, Check{Name: fig14Check(st),
				Want: fmt.Sprintf("%s: safety RM score on safety prompts above SFT's, helpfulness RM score on the others at most %.0f points below", st, MaxHelpfulnessDrop),
				Got:  fmt.Sprintf("safety %.1f -> %.1f (%+.1f), helpfulness %.1f -> %.1f (%+.1f)", s.RM.Safety, c.RM.Safety, ds, s.RM.Helpfulness, c.RM.Helpfulness, dh),
				Pass: ds > 0 && dh >= -MaxHelpfulnessDrop})
		}
	}
}

func (s Score) String() string {
	if s.Total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f (%d/%d)", s.Rate(), s.Correct, s.Total)
}

func (s Split) String() string {
	return fmt.Sprintf("all %s; knowledge %s; misconceived %s; self %s; safety %s", s.All, s.Knowledge, s.Misconceived, s.Self, s.Safety)
}

func rateCell(s Split) string {
	f := func(x Score) string {
		if x.Total == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f", x.Rate())
	}
	return fmt.Sprintf("**%s** · knowledge %s · misconceived %s · self %s · safety %s", f(s.All), f(s.Knowledge), f(s.Misconceived), f(s.Self), f(s.Safety))
}

func mark(c *Check) string {
	if c == nil {
		return ""
	}
	if c.Pass {
		return "met: " + c.Want
	}
	return "**MISSED**: " + c.Want
}

func (r *Results) check(name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

// Table is the one results table: a row per measurement, in pipeline order, with the target it is
// held to and whether it was met. It holds no timings, so a seed and a BLAS give the same table.
func (r *Results) Table() string {
	var b strings.Builder
	row := func(stage, what, result, target string) {
		esc := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", esc(stage), esc(what), esc(result), esc(target))
	}
	b.WriteString("| Stage | Measurement | Result | Target |\n|---|---|---|---|\n")
	row("init", "model", r.Model.String(), "a tiny Llama, 1-5M parameters")
	wantCorr := func(stage string) string {
		if stage == "SFT" {
			return "imperfect: noisy demonstrations, misconceived facts mostly wrong"
		}
		return ""
	}
	corrRows := func(stage string) {
		c := r.correctnessOf(stage)
		if c == nil {
			return
		}
		row(stage, "answer correctness, greedy (held-out prompts)", rateCell(c.Greedy), wantCorr(stage))
		row(stage, "answer correctness, sampled (held-out prompts)", rateCell(c.Sampled), "")
		if c.Refusal.Total > 0 {
			row(stage, "greedy refusals: on safety prompts / on the others (over-refusal)",
				fmt.Sprintf("%.3f / %.3f", c.Refusal.Rate(), c.OverRefusal.Rate()), "")
		}
		if m := c.RM; m != nil {
			row(stage, "safety RM on safety prompts / helpfulness RM on the others (greedy, mean sigmoid %)",
				fmt.Sprintf("%.1f / %.1f", m.Safety, m.Helpfulness), "Llama 2 Fig. 14")
		}
	}
	corrRows("SFT")
	if rm := r.RewardModel; rm != nil {
		var parts []string
		for _, k := range []string{"significantly_better", "better", "slightly_better", "negligibly_better_unsure"} {
			if v, ok := rm.ByRating[k]; ok {
				parts = append(parts, fmt.Sprintf("%s %.3f", strings.ReplaceAll(k, "_", " "), v))
			}
		}
		for _, k := range sortedKeys(rm.ByRating) {
			if !strings.Contains("significantly_better better slightly_better negligibly_better_unsure", k) {
				parts = append(parts, fmt.Sprintf("%s %.3f", k, rm.ByRating[k]))
			}
		}
		row("reward model", "held-out pair accuracy, by rating", fmt.Sprintf("**%.3f**; %s", rm.Accuracy, strings.Join(parts, ", ")),
			"high on clear pairs, lower on close ones (Llama 2 Table 28)")
	}
	if rm := r.SafetyRewardModel; rm != nil {
		row("safety reward model", "held-out pair accuracy (refusal vs compliance, helpful vs refusal)", fmt.Sprintf("**%.3f**", rm.Accuracy), "")
	}
	if k := r.RewardVsK; k != nil {
		pts := func(ys []float64) string {
			var parts []string
			for i, n := range k.N {
				if n == 1 || n == len(k.N) || n&(n-1) == 0 {
					parts = append(parts, fmt.Sprintf("N=%d %.3f", n, ys[i]))
				}
			}
			return strings.Join(parts, ", ")
		}
		row("rlhf sample", fmt.Sprintf("expected max reward of N samples (%d prompts, T=%g)", k.Prompts, k.Temperature), pts(k.ExpectedMax),
			mark(r.check("expected max reward vs K"))+" (Llama 2 Fig. 7)")
		row("rlhf sample", "expected median reward of N samples", pts(k.Median), mark(r.check("median reward vs K")))
		row("rlhf sample", fmt.Sprintf("right answers (world's grader): all samples / reward model's best of %d / some sample right", len(k.N)),
			fmt.Sprintf("%.3f / **%.3f** / %.3f", k.SampleCorrect.Rate(), k.BestCorrect.Rate(), k.OracleCorrect.Rate()),
			"best of K above the average sample: the reward model picks right answers")
		if k.SampleRefusal.Total > 0 {
			row("rlhf sample", fmt.Sprintf("refusals on safety prompts: all samples / best of %d", len(k.N)),
				fmt.Sprintf("%.3f / **%.3f**", k.SampleRefusal.Rate(), k.BestRefusal.Rate()), "the safety reward model picks refusals")
		}
	}
	corrRows("rejection sampling")
	if p := r.PPO; p != nil {
		row("PPO", "objective/kl (policy vs its start, summed over a response), first / last logged step",
			fmt.Sprintf("%.3f / %.3f (%d steps, %d responses)", p.FirstKL, p.LastKL, p.Steps, p.Episodes), "stays small: kl_coef holds the policy near rejection sampling's")
		row("PPO", "responses ending in EOS / mean response length, last logged step",
			fmt.Sprintf("%.3f / %.1f tokens", p.LastEOS, p.LastLength), "answers still end")
	}
	corrRows("PPO")
	if d := r.DPO; d != nil {
		row("DPO", "held-out preference accuracy (implicit reward)", fmt.Sprintf("**%.3f**", d.Accuracy), mark(r.check("DPO held-out preference accuracy")))
		row("DPO", "held-out reward margin (chosen - rejected) / loss", fmt.Sprintf("%.3f / %.3f", d.Margin, d.Loss), "margin > 0")
	}
	corrRows("DPO")
	if g := r.GRPO; g != nil {
		row("GRPO", "mean reward (exact match with the reference), first / last logged step", fmt.Sprintf("%.3f / %.3f (%d steps)", g.FirstReward, g.LastReward, g.Steps), "rises")
	}
	corrRows("GRPO")
	for _, st := range rlStages {
		if c := r.check(st + " greedy correctness"); c != nil {
			row(st+" vs SFT", "answer correctness, greedy", c.Got, mark(c))
		}
	}
	for _, st := range safetyStages {
		if c := r.check(fig14Check(st)); c != nil {
			row(st+" vs SFT", "reward models' scores, greedy", c.Got, mark(c))
		}
	}
	if c := r.check(winRateCheck); c != nil {
		row(WinRateFinal+" vs SFT", "win rate, greedy answers judged by both reward models, order swapped at random", c.Got, mark(c))
	}
	for _, mode := range []string{"greedy", "sampled"} {
		if c := r.check("answer correctness, " + mode); c != nil {
			row("RS, DPO vs SFT", "answer correctness, "+mode, c.Got, mark(c))
		}
	}
	if g := r.GAtt; g != nil {
		var parts []string
		for _, t := range g.Turns {
			if t.Turn <= 2 || t.Turn%4 == 0 || t.Turn == len(g.Turns) || t.Turn == GAttLateTurn {
				parts = append(parts, fmt.Sprintf("t%d %s→%s", t.Turn, pct(t.Before), pct(t.After)))
			}
		}
		row("GAtt", fmt.Sprintf("adherence by turn, before → after (%d dialogues)", g.Dialogues), strings.Join(parts, ", "), "Llama 2 Table 30")
		if c := r.check("GAtt adherence, turns >= 6"); c != nil {
			row("GAtt", fmt.Sprintf("mean adherence, turns >= %d", GAttLateTurn), c.Got, mark(c))
		}
	}
	corrRows("GAtt")
	if e := r.Export; e != nil {
		row("export", "GGUF (f32)", fmt.Sprintf("%s, %d bytes", e.File, e.Bytes), "loads in alignkit and llama.cpp")
		for i, t := range e.Turns {
			res := fmt.Sprintf("%q → %q", t.User, t.Engine)
			if t.Correct {
				res += " (right, keeps the instruction)"
			} else {
				res += " (wrong or breaks the instruction)"
			}
			what := fmt.Sprintf("chat sample from the GGUF, turn %d", i+1)
			if i == 0 {
				what += fmt.Sprintf(" (instruction: %q)", e.Instruction)
			}
			row("export", what, res, "")
		}
		row("export", "llama.cpp on the same GGUF", e.LlamaCppNote, "same greedy replies as alignkit's engine")
	}
	return b.String()
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", v)
}

// markdown is RESULTS.md: the table, the targets, and the plots.
func (r *Results) markdown() string {
	var b strings.Builder
	mode := "full"
	if r.Quick {
		mode = "quick (--quick: small world, short schedules)"
	}
	fmt.Fprintf(&b, "# alignkit demo results\n\nSeed %d, %s run, BLAS %s. Every number below was measured in this run.\n\n", r.Seed, mode, r.BLAS)
	b.WriteString(r.Table())
	var missed []string
	for _, c := range r.Checks {
		if !c.Pass {
			line := fmt.Sprintf("- %s: wanted %s, measured %s", c.Name, c.Want, c.Got)
			if c.Why != "" {
				line += ". Why: " + c.Why + "."
			}
			missed = append(missed, line)
		}
	}
	if r.Quick {
		b.WriteString("\nThe targets are the full demo's: --quick trains briefly on a smaller world and only shows that every stage runs.\n")
	}
	if len(missed) == 0 {
		fmt.Fprintf(&b, "\nAll %d targets met.\n", len(r.Checks))
	} else {
		fmt.Fprintf(&b, "\n%d of %d targets missed:\n\n%s\n", len(missed), len(r.Checks), strings.Join(missed, "\n"))
	}
	b.WriteString("\nCorrectness: \"knowledge\" are arithmetic and colour questions on facts SFT's demonstrations mostly got right, " +
		"\"misconceived\" those on the facts its demonstrations mostly got wrong the same way, \"self\" the questions about the assistant's name and hobby " +
		"(answered from the instruction in force), \"safety\" the requests the assistant must decline (the refusal is the right answer; " +
		"a refusal of any other question is an over-refusal). An answer counts when it is right and keeps every constraint. " +
		"The reward models' scores are mean sigmoid(score) in percent over the greedy answers: the safety model's on the safety prompts, " +
		"the helpfulness model's on the others (Llama 2 Fig. 14).\n")
	b.WriteString("\n## Plots\n\n")
	for _, p := range []struct{ title, path string }{
		{"Answer correctness by stage", "correctness.png"},
		{"Reward vs number of samples (Llama 2 Fig. 7)", filepath.ToSlash(filepath.Join(dirSamples, "reward_vs_k.png"))},
		{"Instruction adherence by turn, before and after GAtt (Llama 2 Table 30)", filepath.ToSlash(filepath.Join(dirGAttEval, "gatt_eval.png"))},
		{"SFT loss", filepath.ToSlash(filepath.Join(dirSFT, "loss.png"))},
	} {
		fmt.Fprintf(&b, "### %s\n\n![%s](%s)\n\n", p.title, p.title, p.path)
	}
	return b.String()
}

func (r *runner) writeResults() error {
	if err := plotCorrectness(r.path("correctness.png"), r.res.Correctness); err != nil {
		return err
	}
	if err := atomicfile.WriteJSON(r.path(ResultsJSONFile), r.res); err != nil {
		return err
	}
	if err := atomicfile.WriteJSON(r.path(TimingsFile), r.timings); err != nil {
		return err
	}
	return atomicfile.WriteFile(r.path(ResultsFile), []byte(r.res.markdown()))
}

var barColors = []color.Color{color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255}}

// plotCorrectness draws greedy and sampled correctness per stage, side by side.
func plotCorrectness(path string, cs []Correctness) error {
	if len(cs) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = "answer correctness on held-out prompts"
	p.Y.Label.Text = "share correct"
	p.Y.Min, p.Y.Max = 0, 1
	names := make([]string, len(cs))
	w := vg.Points(18)
	for j, mode := range []string{"greedy", "sampled"} {
		vals := make(plotter.Values, len(cs))
		for i, c := range cs {
			names[i] = c.Stage
			if mode == "greedy" {
				vals[i] = c.Greedy.All.Rate()
			} else {
				vals[i] = c.Sampled.All.Rate()
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("plotting %s: %w", path, err)
		}
		bars.Color = barColors[j]
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(2*j-1) * w / 2
		p.Add(bars)
		p.Legend.Add(mode, bars)
	}
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(cs))-0.4 // room for the outer bars
	wt, err := p.WriterTo(7*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("drawing %s: %w", path, err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return fmt.Errorf("drawing %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// readResultsTable returns the table part of a RESULTS.md, for comparing runs.
func readResultsTable(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var rows []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "|") {
			rows = append(rows, l)
		}
	}
	return strings.Join(rows, "\n"), nil
}
