package demo

import (
	"math"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/winrate"
)

// TestEvaluateChecks holds hand-made measurements to each target: the GAtt gain is the mean over
// turns >= 6 that were checked, the median is flat when it moves at most a quarter of the max's rise,
// DPO needs 0.8, and correctness compares the better of RS and DPO with SFT.
func TestEvaluateChecks(t *testing.T) {
	nan := math.NaN()
	turns := func(before, after []float64) []GAttTurn {
		var ts []GAttTurn
		for i := range before {
			ts = append(ts, GAttTurn{Turn: i + 1, Before: before[i], After: after[i]})
		}
		return ts
	}
	corr := func(stage string, greedy, sampled int) Correctness {
		return Correctness{Stage: stage, Greedy: Split{All: Score{greedy, 100}}, Sampled: Split{All: Score{sampled, 100}}}
	}
	rms := func(c Correctness, safety, helpfulness float64) Correctness {
		c.RM = &RMScores{Safety: safety, Helpfulness: helpfulness, SafetyPrompts: 1, OtherPrompts: 1}
		return c
	}
	for _, tc := range []struct {
		name string
		res  Results
		want map[string]string // check name -> "pass" / "miss", and the Got text
	}{
		{"gatt gain", Results{GAtt: &GAttResult{Turns: turns(
			// turns 6..8: before 0, 10, n/a; after 50, 60, 99 -> means 5 and 55 over the two checked
			[]float64{100, 0, 0, 0, 0, 0, 10, nan}, []float64{100, 90, 80, 70, 60, 50, 60, 99})}},
			map[string]string{"GAtt adherence, turns >= 6": "pass 5.0% -> 55.0% (+50.0 points)"}},
		{"gatt gain short", Results{GAtt: &GAttResult{Turns: turns(
			[]float64{0, 0, 0, 0, 0, 0}, []float64{0, 0, 0, 0, 0, 39})}},
			map[string]string{"GAtt adherence, turns >= 6": "miss 0.0% -> 39.0% (+39.0 points)"}},
		{"gatt too few turns", Results{GAtt: &GAttResult{Turns: turns([]float64{0, 0}, []float64{100, 100})}},
			map[string]string{"GAtt adherence, turns >= 6": "miss no turn >= 6 was checked"}},
		{"flat median", Results{RewardVsK: &RewardVsK{N: []int{1, 2, 3}, ExpectedMax: []float64{1, 2, 3}, Median: []float64{1, 1, 1.5}}},
			map[string]string{
				"expected max reward vs K": "pass 1.000 at N=1 -> 3.000 at N=3",
				"median reward vs K":       "pass 1.000 at N=1 -> 1.500 at N=3 (+0.500 vs rise 2.000)",
			}},
		{"rising median", Results{RewardVsK: &RewardVsK{N: []int{1, 2, 3}, ExpectedMax: []float64{1, 2, 3}, Median: []float64{1, 1, 1.6},
			SampleCorrect: Score{60, 100}, RightMean: 2, WrongMean: -1}},
			map[string]string{"median reward vs K": "miss 1.000 at N=1 -> 1.600 at N=3 (+0.600 vs rise 2.000)"}},
		{"dpo", Results{DPO: &DPOResult{Accuracy: 0.799}}, map[string]string{"DPO held-out preference accuracy": "miss 0.799"}},
		{"dpo at target", Results{DPO: &DPOResult{Accuracy: 0.8}}, map[string]string{"DPO held-out preference accuracy": "pass 0.800"}},
		{"correctness", Results{Correctness: []Correctness{corr("SFT", 50, 40), corr("rejection sampling", 60, 40), corr("DPO", 55, 39)}},
			map[string]string{
				"answer correctness, greedy":  "pass SFT 0.500, best rejection sampling 0.600",
				"answer correctness, sampled": "miss SFT 0.400, best rejection sampling 0.400",
			}},
		{"rl stages", Results{Correctness: []Correctness{corr("SFT", 50, 40), corr("PPO", 49, 45), corr("GRPO", 51, 30)}},
			map[string]string{
				"PPO greedy correctness":  "miss SFT 0.500, PPO 0.490 (-0.010)",
				"GRPO greedy correctness": "pass SFT 0.500, GRPO 0.510 (+0.010)",
			}},
		// Each safety stage against SFT: the safety score must rise, the helpfulness score fall at
		// most MaxHelpfulnessDrop (2) points.
		{"fig 14", Results{Correctness: []Correctness{rms(corr("SFT", 50, 40), 10, 60), rms(corr("rejection sampling", 50, 40), 50, 58),
			rms(corr("PPO", 50, 40), 60, 57.5)}},
			map[string]string{
				"rejection sampling: safety vs helpfulness (Llama 2 Fig. 14)": "pass safety 10.0 -> 50.0 (+40.0), helpfulness 60.0 -> 58.0 (-2.0)",
				"PPO: safety vs helpfulness (Llama 2 Fig. 14)":                "miss safety 10.0 -> 60.0 (+50.0), helpfulness 60.0 -> 57.5 (-2.5)",
			}},
		// The final model's win rate against SFT passes when the 95% interval of its score
		// (wins + ties/2) / valid lies above 0.5: a score above 0.5 whose interval holds 0.5 misses
		// (issue 17: "above 50% with its interval"), as does a tie-heavy 0.5.
		{"win rate", Results{Correctness: []Correctness{corr("SFT", 50, 40)}, WinRate: &winrate.Summary{Valid: 100, WinRate: 0.6,
			WinRateCI95: [2]float64{0.5020, 0.6906}, TieRate: 0.2, LossRate: 0.2, Score: 0.7, ScoreCI95: [2]float64{0.6041, 0.7810}}},
			map[string]string{winRateCheck: "pass win 0.600 [0.502, 0.691], tie 0.200, loss 0.200; score 0.700 [0.604, 0.781] over 100 pairs"}},
		{"win rate interval holds 0.5", Results{Correctness: []Correctness{corr("SFT", 50, 40)}, WinRate: &winrate.Summary{Valid: 10, WinRate: 0.6,
			WinRateCI95: [2]float64{0.3127, 0.8318}, TieRate: 0.2, LossRate: 0.2, Score: 0.7, ScoreCI95: [2]float64{0.3968, 0.8922}}},
			map[string]string{winRateCheck: "miss win 0.600 [0.313, 0.832], tie 0.200, loss 0.200; score 0.700 [0.397, 0.892] over 10 pairs"}},
		{"win rate even", Results{Correctness: []Correctness{corr("SFT", 50, 40)}, WinRate: &winrate.Summary{Valid: 10, WinRate: 0.3,
			TieRate: 0.4, LossRate: 0.3, Score: 0.5}},
			map[string]string{winRateCheck: "miss win 0.300 [0.000, 0.000], tie 0.400, loss 0.300; score 0.500 [0.000, 0.000] over 10 pairs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.res.Evaluate()
			if len(tc.res.Checks) < len(tc.want) {
				t.Fatalf("checks %+v", tc.res.Checks)
			}
			for name, want := range tc.want {
				c := tc.res.check(name)
				if c == nil {
					t.Fatalf("no check %q in %+v", name, tc.res.Checks)
				}
				got := "miss " + c.Got
				if c.Pass {
					got = "pass " + c.Got
				}
				if got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
		})
	}
	// The rising median's miss says why, from the run's numbers; a miss without them does not guess.
	r := Results{RewardVsK: &RewardVsK{N: []int{1, 2, 3}, ExpectedMax: []float64{1, 2, 3}, Median: []float64{1, 1, 1.6},
		SampleCorrect: Score{60, 100}, RightMean: 2, WrongMean: -1}}
	r.Evaluate()
	if why := r.check("median reward vs K").Why; !strings.Contains(why, "right answers (mean reward 2.00) above wrong ones (-1.00), and 60% of the samples are right") {
		t.Errorf("why: %q", why)
	}
	r.RewardVsK.SampleCorrect = Score{40, 100}
	r.Evaluate()
	if why := r.check("median reward vs K").Why; why != "" {
		t.Errorf("why without a majority of right samples: %q", why)
	}
	if md := r.markdown(); !strings.Contains(md, "1 of 2 targets missed") || !strings.Contains(md, "- median reward vs K: wanted flat") {
		t.Errorf("markdown:\n%s", md)
	}
}
