package winrate_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/winrate"
)

// storiesSetup writes n story prompts (and one too long to answer) and a reward model (stories260K with a seeded fresh score
// head, as the reward trainer starts) into dir.
func storiesSetup(t *testing.T, dir string, n int) (prompts, rm string) {
	t.Helper()
	names := []string{"Lily", "Tom", "Sue", "Ben", "Max", "Mia"}
	things := []string{"a red ball", "a big dog", "a little bird", "a shiny box", "a tall tree"}
	var rows []map[string]any
	for i := range n {
		rows = append(rows, map[string]any{"prompt": fmt.Sprintf("Once upon a time, %s found %s.", names[i%len(names)], things[(i/len(names))%len(things)])})
	}
	// One prompt too long for stories260K's 512-token context with room for an answer: skipped.
	rows = append(rows, map[string]any{"prompt": strings.Repeat("The dog ran to the park. ", 120)})
	prompts = writeJSONL(t, dir, "stories.jsonl", rows)
	r, err := reward.FromCausalLM(testutil.Stories(t), 11)
	if err != nil {
		t.Fatal(err)
	}
	rm = filepath.Join(dir, "rm")
	if err := checkpoint.Save(rm, r, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return prompts, rm
}

// stories260K against itself, judged by a reward model, end to end through Evaluate. Sampled
// (temperature 1), model A and model B draw from disjoint seeds, so the answers differ and the
// reward model prefers one or the other: the score must hold 0.5 within its 95% interval (with
// this fixed seed; a fair comparison leaves it out 5% of the time over seeds). Greedy, the answers
// are identical, every judgement ties and the score is exactly 0.5. The recorded scores are the
// reward model's scores of the recorded answers, whichever order they were shown in.
func TestStoriesAgainstItself(t *testing.T) {
	dir := t.TempDir()
	const n = 60
	prompts, rm := storiesSetup(t, dir, n)
	cfg := winrate.DefaultConfig()
	cfg.ModelA, cfg.ModelB = testutil.StoriesDir(t), testutil.StoriesDir(t)
	cfg.Data.DatasetName, cfg.RewardModelNameOrPath = prompts, rm
	cfg.MaxNewTokens, cfg.Temperature, cfg.Seed = 20, 1, 5

	cfg.OutputDir = t.TempDir()
	s, err := winrate.Evaluate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Judgements != n || s.Valid != n || s.Invalid != 0 || s.Ties == n || s.Skipped != 1 {
		t.Fatalf("sampled: summary %+v", s)
	}
	if s.ScoreCI95[0] > 0.5 || s.ScoreCI95[1] < 0.5 {
		t.Errorf("sampled: score %.3f, interval %v excludes 0.5", s.Score, s.ScoreCI95)
	}
	t.Logf("sampled: %d wins, %d ties, %d losses; score %.3f %v", s.Wins, s.Ties, s.Losses, s.Score, s.ScoreCI95)

	rows, err := data.ReadRows(filepath.Join(cfg.OutputDir, winrate.JudgementsFile))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(rm)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := rlhf.NewScorer(ck, "")
	if err != nil {
		t.Fatal(err)
	}
	checked := map[bool]bool{}
	for _, r := range rows[:8] {
		f := r.Fields
		p := rlhf.Prompt{Text: f["prompt"].(string), Source: prompts, Row: int(f["row"].(int64))}
		got, err := sc.Score(context.Background(), p, []string{f["answer_a"].(string), f["answer_b"].(string)})
		if err != nil {
			t.Fatal(err)
		}
		rec := f["scores"].([]any)
		if math.Abs(rec[0].(float64)-got[0]) > 1e-9 || math.Abs(rec[1].(float64)-got[1]) > 1e-9 {
			t.Errorf("row %v (swapped %v): recorded scores %v, the reward model gives %v", f["row"], f["swapped"], rec, got)
		}
		checked[f["swapped"].(bool)] = true
	}
	if !checked[true] || !checked[false] {
		t.Errorf("the checked rows are all of one order: %v", checked)
	}

	cfg.Temperature, cfg.OutputDir = 0, t.TempDir()
	g, err := winrate.Evaluate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if g.Ties != n || g.Score != 0.5 || g.WinRate != 0 || g.ScoreCI95[0] > 0.5 || g.ScoreCI95[1] < 0.5 {
		t.Errorf("greedy: summary %+v, want all ties and score 0.5", g)
	}
}
