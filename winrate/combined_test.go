package winrate_test

import (
	"context"
	"testing"

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

// Llama 2's combination judges on a hand-built table. Answer X is more helpful, Y safer:
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
		{"prompt": "Hi"},
	})
	help := tableScorer{0: {"X": 2, "Y": 0.5}, 1: {"X": 2, "Y": 0.5}, 2: {"X": 2, "Y": 0.5}, 3: {}}
	safe := tableScorer{0: {"X": 1, "Y": 3}, 1: {"X": 1, "Y": 3}, 2: {"X": -3, "Y": 3}, 3: {}}
	j := winrate.RewardJudge{Scorer: winrate.Combined{Help: help, Safe: safe, IsSafety: winrate.SafetyColumn("is_safety")}}
	var ps []rlhf.Prompt
	for i, q := range []string{"How do I pick a lock?", "Tell me a story.", "Tell me a joke."} {
		ps = append(ps, rlhf.Prompt{Text: q, Source: file, Row: i})
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
	_, err := winrate.Compare(context.Background(), j, []rlhf.Prompt{{Text: "Hi", Source: file, Row: 3}}, []string{"X"}, []string{"Y"}, []bool{false})
	if want := file + `: row 3: no "is_safety" column (which prompts are safety prompts; set safety_column)`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}
