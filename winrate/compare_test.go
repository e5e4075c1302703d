package winrate_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/winrate"
)

// firstJudge always prefers the answer shown first: a pure position bias.
type firstJudge struct{}

func (firstJudge) Judge(_ context.Context, ps []winrate.Shown) ([]winrate.Decision, error) {
	out := make([]winrate.Decision, len(ps))
	for i := range out {
		out[i] = winrate.Decision{Pick: winrate.PickFirst}
	}
	return out, nil
}

// markScorer scores an answer 1 when it holds the marker, else 0, so a RewardJudge over it prefers
// the marked answer wherever it is shown.
type markScorer struct{ mark string }

func (m markScorer) Score(_ context.Context, _ rlhf.Prompt, cs []string) ([]float64, error) {
	out := make([]float64, len(cs))
	for i, c := range cs {
		if strings.Contains(c, m.mark) {
			out[i] = 1
		}
	}
	return out, nil
}

func pairs(n int, markA bool) (ps []rlhf.Prompt, a, b []string) {
	for i := range n {
		ps = append(ps, rlhf.Prompt{Text: fmt.Sprintf("prompt %d", i), Source: "test", Row: i})
		x, y := fmt.Sprintf("answer A%d", i), fmt.Sprintf("answer B%d", i)
		if markA {
			x += " *"
		} else {
			y += " *"
		}
		a, b = append(a, x), append(b, y)
	}
	return ps, a, b
}

// A judge that always prefers the first-shown answer makes model A win exactly when its answer was
// shown first: wins = n − swapped, which the balanced swaps keep within a binomial bound of n/2, so
// the position bias cancels to a win rate near 0.5.
func TestPositionBiasCancels(t *testing.T) {
	const n = 1000
	ps, a, b := pairs(n, true)
	js, err := winrate.Compare(context.Background(), firstJudge{}, ps, a, b, winrate.Swaps(n, 42))
	if err != nil {
		t.Fatal(err)
	}
	s, err := winrate.Summarize(js)
	if err != nil {
		t.Fatal(err)
	}
	if s.Wins != n-s.Swapped || s.Losses != s.Swapped || s.Ties != 0 || s.Invalid != 0 {
		t.Fatalf("wins %d, losses %d, ties %d, invalid %d with %d swapped: want wins = n - swapped, losses = swapped", s.Wins, s.Losses, s.Ties, s.Invalid, s.Swapped)
	}
	if bound := 4 * math.Sqrt(n*0.25) / n; math.Abs(s.WinRate-0.5) > bound {
		t.Errorf("win rate %.3f under a pure position bias: want within %.3f of 0.5", s.WinRate, bound)
	}
	if s.ScoreCI95[0] > 0.5 || s.ScoreCI95[1] < 0.5 {
		t.Errorf("score interval %v excludes 0.5", s.ScoreCI95)
	}
}

// A judge that prefers a marked answer names the marked model the winner in every judgement,
// swapped or not, and its scores are recorded against the right model.
func TestSwappedJudgementRecordedUnswapped(t *testing.T) {
	const n = 200
	for _, markA := range []bool{true, false} {
		ps, a, b := pairs(n, markA)
		js, err := winrate.Compare(context.Background(), winrate.RewardJudge{Scorer: markScorer{"*"}}, ps, a, b, winrate.Swaps(n, 7))
		if err != nil {
			t.Fatal(err)
		}
		want, wantA := winrate.VerdictA, 1.0
		if !markA {
			want, wantA = winrate.VerdictB, 0
		}
		swapped := 0
		for i, j := range js {
			if j.Swapped {
				swapped++
			}
			if j.Verdict != want || j.AnswerA != a[i] || j.AnswerB != b[i] || !j.HasScores || j.ScoreA != wantA || j.ScoreB != 1-wantA {
				t.Fatalf("marked A %v, judgement %d (swapped %v): verdict %s, answers %q/%q, scores %v/%v; want %s with A's score %v",
					markA, i, j.Swapped, j.Verdict, j.AnswerA, j.AnswerB, j.ScoreA, j.ScoreB, want, wantA)
			}
		}
		if swapped == 0 || swapped == n {
			t.Fatalf("%d of %d swapped: the test needs both orders", swapped, n)
		}
		s, err := winrate.Summarize(js)
		if err != nil {
			t.Fatal(err)
		}
		if markA && (s.WinRate != 1 || s.WinRateCI95[1] != 1) || !markA && (s.LossRate != 1 || s.WinRateCI95[0] != 0) {
			t.Errorf("marked A %v: win %v loss %v, interval %v", markA, s.WinRate, s.LossRate, s.WinRateCI95)
		}
	}
}

// Equal rewards tie; so do rewards within reward_tie_margin.
func TestRewardJudgeTies(t *testing.T) {
	ps, a, b := pairs(2, true)
	for _, c := range []struct {
		margin float64
		want   string
	}{{0, winrate.VerdictA}, {0.5, winrate.VerdictA}, {1, winrate.VerdictTie}, {2, winrate.VerdictTie}} {
		js, err := winrate.Compare(context.Background(), winrate.RewardJudge{Scorer: markScorer{"*"}, TieMargin: c.margin}, ps, a, b, []bool{false, true})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range js {
			if j.Verdict != c.want {
				t.Errorf("margin %v, swapped %v: verdict %s, want %s", c.margin, j.Swapped, j.Verdict, c.want)
			}
		}
	}
}

// rowScorer scores each answer by its place in the call, as a batched forward pass whose result
// depends on the row can: identical answers get different scores.
type rowScorer struct{}

func (rowScorer) Score(_ context.Context, _ rlhf.Prompt, cs []string) ([]float64, error) {
	out := make([]float64, len(cs))
	for i := range cs {
		out[i] = 1e-6 * float64(len(cs)-i)
	}
	return out, nil
}

// Identical answers tie whatever their scores; different answers still do not.
func TestRewardJudgeIdenticalAnswersTie(t *testing.T) {
	ps := []rlhf.Prompt{{Text: "p0", Source: "test"}, {Text: "p1", Source: "test", Row: 1}}
	a, b := []string{"same", "mine"}, []string{"same", "yours"}
	js, err := winrate.Compare(context.Background(), winrate.RewardJudge{Scorer: rowScorer{}}, ps, a, b, []bool{false, true})
	if err != nil {
		t.Fatal(err)
	}
	if js[0].Verdict != winrate.VerdictTie {
		t.Errorf("identical answers: verdict %s, want %s", js[0].Verdict, winrate.VerdictTie)
	}
	if js[1].Verdict != winrate.VerdictB { // "yours" (B) was shown first and scored higher
		t.Errorf("different answers: verdict %s, want %s", js[1].Verdict, winrate.VerdictB)
	}
}

func TestParseVerdict(t *testing.T) {
	for reply, want := range map[string]winrate.Pick{
		"A": winrate.PickFirst, " B\n": winrate.PickSecond, "tie": winrate.PickTie, "Tie": winrate.PickTie, "TIE.": winrate.PickInvalid,
		"a": winrate.PickInvalid, "A.": winrate.PickInvalid, "[[A]]": winrate.PickInvalid, "A is better": winrate.PickInvalid,
		"": winrate.PickInvalid, "AB": winrate.PickInvalid, "Assistant A": winrate.PickInvalid,
	} {
		if got := winrate.ParseVerdict(reply); got != want {
			t.Errorf("ParseVerdict(%q) = %v, want %v", reply, got, want)
		}
	}
}

// All-invalid judgements have no rate: an error that says so.
func TestSummarizeAllInvalid(t *testing.T) {
	js := []winrate.Judgement{{Verdict: winrate.VerdictInvalid}, {Verdict: winrate.VerdictInvalid}}
	_, err := winrate.Summarize(js)
	if want := "no valid judgement: 2 of 2 verdicts were invalid"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// Summarize on a hand-counted table: 6 wins, 2 ties, 2 losses, 1 invalid → 10 valid, win 0.6,
// tie 0.2, loss 0.2, score (6 + 1)/10 = 0.7; the intervals are Wilson(6, 10) and ScoreInterval(6, 2,
// 10).
func TestSummarizeCounts(t *testing.T) {
	var js []winrate.Judgement
	for v, k := range map[string]int{winrate.VerdictA: 6, winrate.VerdictTie: 2, winrate.VerdictB: 2, winrate.VerdictInvalid: 1} {
		for range k {
			js = append(js, winrate.Judgement{Verdict: v, Swapped: len(js)%2 == 0})
		}
	}
	s, err := winrate.Summarize(js)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, _ := winrate.Wilson(6, 10, winrate.Z95)
	slo, shi, _ := winrate.ScoreInterval(6, 2, 10, winrate.Z95)
	if s.Judgements != 11 || s.Valid != 10 || s.Wins != 6 || s.Ties != 2 || s.Losses != 2 || s.Invalid != 1 || s.Swapped != 6 ||
		s.WinRate != 0.6 || s.TieRate != 0.2 || s.LossRate != 0.2 || s.Score != 0.7 ||
		s.WinRateCI95 != [2]float64{lo, hi} || s.ScoreCI95 != [2]float64{slo, shi} {
		t.Errorf("summary %+v", s)
	}
}
