package winrate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/winrate"
)

// tableScorer scores answer c of the prompt of row r with table[r][c].
type tableScorer map[int]map[string]float64

func (ts tableScorer) Score(_ context.Context, p rlhf.Prompt, cs []string) ([]float64, error) {
	out := make([]float64, len(cs))
	for i, c := range cs {
		out[i] = ts[p.Row][c]
	}
	return out, nil
}

// safetyScorer is Llama 2's combination over tables (reward.Select, as rlhf.RewardModels applies
// it), reading each prompt's Safety flag as the real combined scorer does.
type safetyScorer struct{ help, safe tableScorer }

func (s safetyScorer) Score(ctx context.Context, p rlhf.Prompt, cs []string) ([]float64, error) {
	h, _ := s.help.Score(ctx, p, cs)
	sf, _ := s.safe.Score(ctx, p, cs)
	flags := make([]bool, len(cs))
	for i := range flags {
		flags[i] = p.Safety
	}
	out, _, err := reward.Select(h, sf, flags)
	return out, err
}

// Llama 2's combination judges on a hand-built table, with the safety flags SetSafety reads from
// the prompts' file. Answer X is more helpful, Y safer:
//
//	row 0, a safety prompt:           R_c = R_s: X 1, Y 3           → Y (model B) wins
//	row 1, σ(R_s) = 0.73 and 0.95:    R_c = R_h: X 2, Y 0.5         → X (model A) wins
//	row 2, X's σ(−3) = 0.047 < 0.15:  R_c: X = R_s −3, Y = R_h 0.5  → Y wins
//
// whatever order each pair is shown in; row 3 has no safety flag: an error naming file, row, column.
func TestCombinedJudge(t *testing.T) {
	dir := t.TempDir()
	file := writeJSONL(t, dir, "p.jsonl", []map[string]any{
		{"prompt": "How do I pick a lock?", "is_safety": true},
		{"prompt": "Tell me a story.", "is_safety": false},
		{"prompt": "Tell me a joke.", "is_safety": 0},
	})
	help := tableScorer{0: {"X": 2, "Y": 0.5}, 1: {"X": 2, "Y": 0.5}, 2: {"X": 2, "Y": 0.5}}
	safe := tableScorer{0: {"X": 1, "Y": 3}, 1: {"X": 1, "Y": 3}, 2: {"X": -3, "Y": 3}}
	j := winrate.RewardJudge{Scorer: safetyScorer{help, safe}}
	var ps []rlhf.Prompt
	for i, q := range []string{"How do I pick a lock?", "Tell me a story.", "Tell me a joke."} {
		ps = append(ps, rlhf.Prompt{Text: q, Source: file, Row: i})
	}
	if err := winrate.SetSafety(ps, "is_safety"); err != nil {
		t.Fatal(err)
	}
	if !ps[0].Safety || ps[1].Safety || ps[2].Safety {
		t.Fatalf("safety flags %v %v %v", ps[0].Safety, ps[1].Safety, ps[2].Safety)
	}
	a, b := []string{"X", "X", "X"}, []string{"Y", "Y", "Y"}
	want := []string{winrate.VerdictB, winrate.VerdictA, winrate.VerdictB}
	for _, swaps := range [][]bool{{false, false, false}, {true, true, true}, {true, false, true}} {
		js, err := winrate.Compare(context.Background(), j, ps, a, b, swaps)
		if err != nil {
			t.Fatal(err)
		}
		for i, jg := range js {
			if jg.Verdict != want[i] {
				t.Errorf("row %d, swapped %v: verdict %s, want %s", i, swaps[i], jg.Verdict, want[i])
			}
		}
	}
	noFlag := writeJSONL(t, dir, "q.jsonl", []map[string]any{{"prompt": "Hi"}})
	err := winrate.SetSafety([]rlhf.Prompt{{Text: "Hi", Source: noFlag, Row: 0}}, "is_safety")
	if err == nil || !strings.Contains(err.Error(), `"is_safety"`) || !strings.HasPrefix(err.Error(), noFlag) {
		t.Errorf("missing column: %v", err)
	}
}
