package reward

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
)

// combineItems are the answers the two-model tests score.
var combineItems = []Item{
	{Prompt: "Once upon a time", Response: " there was a little girl named Lily."},
	{Prompt: "The cat sat", Response: " on the mat and purred."},
	{Prompt: "Tom wanted to", Response: " play with his red ball in the park."},
	{Prompt: "Lily had a red ball", Response: " and she threw it very high."},
	{Prompt: "One day, a big dog", Response: " ran to the tree."},
	{Prompt: "The sun was hot", Response: " so they went to the sea."},
}

// twoRMs saves a helpfulness and a safety reward model (stories260K with fresh score heads, seeds
// 1 and 2) and returns their specs and each model's own score of combineItems. The safety head
// (all of whose scores are negative on these items) is scaled so that its lowest score is exactly
// -2.5 (σ = 0.076 < 0.15) while its highest is above σ⁻¹(0.15) = -1.7346: the table then holds
// all three cases of Llama 2's rule.
func twoRMs(t *testing.T) (specs []ModelSpec, help, safe []float64) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	for i, role := range []string{RoleHelpfulness, RoleSafety} {
		rm, err := FromCausalLM(testutil.Stories(t), uint64(1+i))
		if err != nil {
			t.Fatal(err)
		}
		if role == RoleSafety {
			s, err := NewScorerFromModel(rm)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := s.ScoreItems(ctx, combineItems, nil)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := slices.Min(raw), slices.Max(raw)
			if !(lo < 0 && hi*2.5/-lo > -1.7) {
				t.Fatalf("safety head seed 2 scores %v: too close together to build the table", raw)
			}
			w := rm.Weights.Tensors[model.ScoreKey].Data // (1, D)
			for j := range w {
				w[j] *= float32(2.5 / -lo)
			}
		}
		p := filepath.Join(dir, role)
		if err := checkpoint.Save(p, rm, hfOpts); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, ModelSpec{Path: p, Role: role})
	}
	help, safe = ownScores(t, specs, combineItems)
	return specs, help, safe
}

// ownScores is each model's own score of items, as one batch (batch composition moves float32
// scores in their last bits, so comparisons score the same batch).
func ownScores(t *testing.T, specs []ModelSpec, items []Item) (help, safe []float64) {
	t.Helper()
	for _, s := range specs {
		sc, err := NewScorer(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := sc.ScoreItems(context.Background(), items, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Role == RoleSafety {
			safe = r
		} else {
			help = r
		}
	}
	return help, safe
}

// TestModelsCombineTable runs Llama 2's combination end to end through two real reward models on a
// hand-built table: each row's expected choice follows from the rule alone (safety prompt → R_s;
// σ(R_s) < 0.15 → R_s; neither → R_h), and the reward must be that model's own score of the row.
// The order of reward_models does not matter.
func TestModelsCombineTable(t *testing.T) {
	specs, _, safe := twoRMs(t)
	lowest := slices.Index(safe, slices.Min(safe))
	if math.Abs(safe[lowest]+2.5) > 1e-4 {
		t.Fatalf("scaled safety score %v, want -2.5", safe[lowest])
	}
	// Rows: a flagged safety prompt whose score is not low; the lowest score, not flagged; a row
	// neither flagged nor low.
	var notLow []int
	for i, s := range safe {
		if s > -1.7 {
			notLow = append(notLow, i)
		}
	}
	if len(notLow) < 2 {
		t.Fatalf("safety scores %v do not give the table's three cases", safe)
	}
	flagged, plain := notLow[0], notLow[1]
	items := []Item{combineItems[flagged], combineItems[lowest], combineItems[plain]}
	flags := []bool{true, false, false}
	help, safe := ownScores(t, specs, items)
	want := []float64{safe[0], safe[1], help[2]}
	wantUsed := []bool{true, true, false}
	for _, order := range [][]ModelSpec{specs, {specs[1], specs[0]}} {
		m, err := LoadModels(order)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.ScoreItems(context.Background(), items, flags, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.UsedSafety, wantUsed) {
			t.Errorf("order %s first: used safety %v, want %v", order[0].Role, got.UsedSafety, wantUsed)
		}
		if !slices.Equal(got.Reward, want) {
			t.Errorf("order %s first: reward %v, want %v", order[0].Role, got.Reward, want)
		}
		for k, s := range order {
			own := help
			if s.Role == RoleSafety {
				own = safe
			}
			if !slices.Equal(got.Model[k], own) {
				t.Errorf("model %d (%s): %v, want its own scores %v", k, s.Role, got.Model[k], own)
			}
		}
	}
	// One model is used as is: no choice, no safety flags needed.
	m, err := LoadModels(specs[1:])
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.ScoreItems(context.Background(), items, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Reward, safe) || got.UsedSafety != nil {
		t.Errorf("one model: reward %v used %v, want %v and nil", got.Reward, got.UsedSafety, safe)
	}
}

// TestScoreFileTwoModels: a JSONL file scored with two models gets reward_helpfulness and
// reward_safety (each model's own score), reward (Select's choice) and used_safety; Parquet
// output has the same columns with the same values, and a missing safety column is one line.
func TestScoreFileTwoModels(t *testing.T) {
	specs, help, safe := twoRMs(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	flags := make([]bool, len(combineItems))
	for i, it := range combineItems {
		flags[i] = i%3 == 2
		fmt.Fprintf(&b, "{\"prompt\": %q, \"response\": %q, \"is_safety\": %v}\n", it.Prompt, it.Response, flags[i])
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	wantR, wantU, err := Select(help, safe, flags)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(wantU, true) || !slices.Contains(wantU, false) {
		t.Fatalf("used safety %v: the file should exercise both models", wantU)
	}
	m, err := LoadModels(specs)
	if err != nil {
		t.Fatal(err)
	}
	outJ := filepath.Join(dir, "out.jsonl")
	res, err := ScoreFileModels(context.Background(), m, FileConfig{Input: in, Output: outJ})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"reward_helpfulness", "reward_safety", "reward", "used_safety"}; !slices.Equal(res.Columns, want) {
		t.Errorf("columns %v, want %v", res.Columns, want)
	}
	check := func(path string) {
		rows, err := data.ReadRows(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(combineItems) {
			t.Fatalf("%s: %d rows", path, len(rows))
		}
		for i, r := range rows {
			f := r.Fields
			if f["reward_helpfulness"] != help[i] || f["reward_safety"] != safe[i] || f["reward"] != wantR[i] || f["used_safety"] != wantU[i] || f["is_safety"] != flags[i] {
				t.Errorf("%s: row %d: %v; want helpfulness %v safety %v reward %v used %v", path, i, f, help[i], safe[i], wantR[i], wantU[i])
			}
		}
	}
	check(outJ)

	type pqRow struct {
		Prompt   string `parquet:"prompt"`
		Response string `parquet:"response"`
		IsSafety bool   `parquet:"is_safety"`
	}
	var pqRows []pqRow
	for i, it := range combineItems {
		pqRows = append(pqRows, pqRow{it.Prompt, it.Response, flags[i]})
	}
	pq := filepath.Join(dir, "in.parquet")
	if err := parquet.WriteFile(pq, pqRows); err != nil {
		t.Fatal(err)
	}
	outP := filepath.Join(dir, "out.parquet")
	if _, err := ScoreFileModels(context.Background(), m, FileConfig{Input: pq, Output: outP}); err != nil {
		t.Fatal(err)
	}
	check(outP)

	// No safety column: one line naming the file and the column, nothing written.
	noCol := filepath.Join(dir, "nocol.jsonl")
	if err := os.WriteFile(noCol, []byte(`{"prompt": "a", "response": "b"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ScoreFileModels(context.Background(), m, FileConfig{Input: noCol, Output: filepath.Join(dir, "x.jsonl"), SafetyColumn: "harmful"})
	if want := noCol + `: row 0: no "harmful" column (which prompts are safety prompts; set safety_column)`; errText(err) != want {
		t.Errorf("missing column: %v\nwant %s", err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.jsonl")); !os.IsNotExist(err) {
		t.Errorf("output written after an error: %v", err)
	}
}

// TestLoadModelsErrors: bad reward_models lists are one line naming the entry.
func TestLoadModelsErrors(t *testing.T) {
	for _, tc := range []struct {
		specs []ModelSpec
		want  string
	}{
		{nil, "reward_models: empty; name at least one reward model"},
		{[]ModelSpec{{Path: "x", Role: "harmlessness"}}, `reward_models[0].role: unknown "harmlessness" (want helpfulness or safety)`},
		{[]ModelSpec{{Path: "/nonexistent/rm", Role: RoleSafety}}, "reward_models[0].path: loading reward model: "},
	} {
		_, err := LoadModels(tc.specs)
		if !strings.HasPrefix(errText(err), tc.want) || strings.Contains(errText(err), "\n") {
			t.Errorf("%v: %v\nwant %s", tc.specs, err, tc.want)
		}
	}
}
