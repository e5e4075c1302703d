package winrate

import (
	"context"
	"fmt"

	"github.com/alignkit/alignkit/rlhf"
)

// Verdicts recorded in the models' order (after un-swapping).
const (
	VerdictA       = "A"
	VerdictB       = "B"
	VerdictTie     = "tie"
	VerdictInvalid = "invalid"
)

// Judgement is one prompt's comparison, in the models' order: AnswerA is model A's whatever the
// order it was shown in, Verdict is A, B, tie or invalid, and ScoreA/ScoreB are the reward judge's
// scores (HasScores false for an LLM judge).
type Judgement struct {
	Prompt           rlhf.Prompt
	AnswerA, AnswerB string
	// Swapped says the judge saw model B's answer first.
	Swapped        bool
	Verdict        string
	HasScores      bool
	ScoreA, ScoreB float64
	Reply          string
}

// Compare judges a[i] against b[i] for every prompt, showing b[i] first where swaps[i], and records
// each verdict and score in the models' order.
func Compare(ctx context.Context, j Judge, prompts []rlhf.Prompt, a, b []string, swaps []bool) ([]Judgement, error) {
	if len(a) != len(prompts) || len(b) != len(prompts) || len(swaps) != len(prompts) {
		return nil, fmt.Errorf("compare: %d prompts, %d answers of A, %d of B, %d order draws: want one each per prompt", len(prompts), len(a), len(b), len(swaps))
	}
	shown := make([]Shown, len(prompts))
	for i, p := range prompts {
		shown[i] = Shown{Prompt: p, First: a[i], Second: b[i]}
		if swaps[i] {
			shown[i].First, shown[i].Second = b[i], a[i]
		}
	}
	ds, err := j.Judge(ctx, shown)
	if err != nil {
		return nil, err
	}
	if len(ds) != len(shown) {
		return nil, fmt.Errorf("compare: the judge returned %d decisions for %d pairs", len(ds), len(shown))
	}
	out := make([]Judgement, len(prompts))
	for i, d := range ds {
		jg := Judgement{Prompt: prompts[i], AnswerA: a[i], AnswerB: b[i], Swapped: swaps[i], Reply: d.Reply}
		first, second := VerdictA, VerdictB
		if swaps[i] {
			first, second = VerdictB, VerdictA
		}
		switch d.Pick {
		case PickFirst:
			jg.Verdict = first
		case PickSecond:
			jg.Verdict = second
		case PickTie:
			jg.Verdict = VerdictTie
		default:
			jg.Verdict = VerdictInvalid
		}
		if d.Scores != nil {
			if len(d.Scores) != 2 {
				return nil, fmt.Errorf("compare: prompt %d: %d scores, want 2", i, len(d.Scores))
			}
			jg.HasScores = true
			jg.ScoreA, jg.ScoreB = d.Scores[0], d.Scores[1]
			if swaps[i] {
				jg.ScoreA, jg.ScoreB = d.Scores[1], d.Scores[0]
			}
		}
		out[i] = jg
	}
	return out, nil
}

// Summary is the summary file: counts, rates over the valid judgements, and 95% intervals.
type Summary struct {
	ModelA string `json:"model_a"`
	ModelB string `json:"model_b"`
	Judge  string `json:"judge"`

	Judgements int `json:"judgements"`
	Valid      int `json:"valid"`
	Wins       int `json:"wins"`
	Ties       int `json:"ties"`
	Losses     int `json:"losses"`
	Invalid    int `json:"invalid"`
	// Skipped counts the prompts left out because they leave less than max_new_tokens of a model's
	// context (not judged, not in Judgements).
	Skipped int `json:"skipped_too_long"`
	// Swapped is how many judgements showed model B's answer first.
	Swapped int `json:"swapped"`

	// WinRate, TieRate and LossRate are wins, ties and losses of model A over the valid judgements.
	WinRate  float64 `json:"win_rate"`
	TieRate  float64 `json:"tie_rate"`
	LossRate float64 `json:"loss_rate"`
	// WinRateCI95 is the Wilson interval of WinRate.
	WinRateCI95 [2]float64 `json:"win_rate_ci95"`
	// Score is (wins + ties/2) / valid: 0.5 when the models are equal; ScoreCI95 its interval
	// (ScoreInterval).
	Score     float64    `json:"score"`
	ScoreCI95 [2]float64 `json:"score_ci95"`
	CIMethod  string     `json:"ci_method"`
	Seed      uint64     `json:"seed"`
}

// Summarize counts the judgements. With no valid judgement there are no rates: it errors.
func Summarize(js []Judgement) (Summary, error) {
	var s Summary
	s.Judgements = len(js)
	for _, j := range js {
		switch j.Verdict {
		case VerdictA:
			s.Wins++
		case VerdictB:
			s.Losses++
		case VerdictTie:
			s.Ties++
		case VerdictInvalid:
			s.Invalid++
		default:
			return Summary{}, fmt.Errorf("summary: unknown verdict %q", j.Verdict)
		}
		if j.Swapped {
			s.Swapped++
		}
	}
	s.Valid = s.Wins + s.Ties + s.Losses
	if s.Valid == 0 {
		return s, fmt.Errorf("no valid judgement: %d of %d verdicts were invalid", s.Invalid, s.Judgements)
	}
	n := float64(s.Valid)
	s.WinRate, s.TieRate, s.LossRate = float64(s.Wins)/n, float64(s.Ties)/n, float64(s.Losses)/n
	x := float64(s.Wins) + float64(s.Ties)/2
	s.Score = x / n
	var err error
	if s.WinRateCI95[0], s.WinRateCI95[1], err = Wilson(float64(s.Wins), s.Valid, Z95); err != nil {
		return s, err
	}
	if s.ScoreCI95[0], s.ScoreCI95[1], err = ScoreInterval(s.Wins, s.Ties, s.Valid, Z95); err != nil {
		return s, err
	}
	s.CIMethod = CIMethod
	return s, nil
}
