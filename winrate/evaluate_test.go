package winrate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/winrate"
)

// writeJSONL writes rows as a JSON Lines file in dir.
func writeJSONL(t *testing.T, dir, name string, rows []map[string]any) string {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(j, '\n'))
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeJudge is an OpenAI-compatible server whose model prefers the answer that contains "GOOD",
// replies "tie" when both do, and rambles ("I think A") when an answer contains "???". It records
// the answer it saw first for each question.
type fakeJudge struct {
	mu     sync.Mutex
	first  map[string]string // question -> the answer shown as A
	system []string
}

const (
	startA = "[The Start of Assistant A's Answer]\n"
	endA   = "\n[The End of Assistant A's Answer]"
	startB = "[The Start of Assistant B's Answer]\n"
	endB   = "\n[The End of Assistant B's Answer]"
)

func between(s, start, end string) string {
	i := strings.Index(s, start)
	j := strings.Index(s, end)
	if i < 0 || j < i {
		return ""
	}
	return s[i+len(start) : j]
}

func (f *fakeJudge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/v1/models" {
		fmt.Fprint(w, `{"object":"list","data":[{"id":"judge-model","object":"model","created":0,"owned_by":"test"}]}`)
		return
	}
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	var q struct {
		Messages []struct{ Role, Content string }
	}
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.Messages) != 2 {
		http.Error(w, "bad request", 400)
		return
	}
	user := q.Messages[1].Content
	a, b := between(user, startA, endA), between(user, startB, endB)
	question := between(user, "[User Question]\n", "\n\n"+startA)
	f.mu.Lock()
	f.first[question] = a
	f.system = append(f.system, q.Messages[0].Content)
	f.mu.Unlock()
	reply := "tie"
	switch {
	case strings.Contains(a, "???") || strings.Contains(b, "???"):
		reply = "I think A"
	case strings.Contains(a, "GOOD") && !strings.Contains(b, "GOOD"):
		reply = "A"
	case strings.Contains(b, "GOOD") && !strings.Contains(a, "GOOD"):
		reply = " B\n"
	}
	out, _ := json.Marshal(map[string]any{
		"id": "x", "object": "chat.completion", "created": 0, "model": "judge-model",
		"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant", "content": reply}}},
	})
	w.Write(out)
}

// The LLM judge path end to end: precomputed answers, a fake OpenAI-compatible judge, the order
// swapped per judgement; the judge sees the swapped order, the files record the models' order, an
// unparseable reply is counted invalid, never guessed.
func TestEvaluateLLMJudge(t *testing.T) {
	dir := t.TempDir()
	const n = 40
	var prompts, ansA, ansB []map[string]any
	for i := range n {
		p := fmt.Sprintf("Question %d?", i)
		a, b := fmt.Sprintf("GOOD answer %d", i), fmt.Sprintf("poor answer %d", i)
		switch {
		case i%10 == 3: // B better
			a, b = b+" (A)", a+" (B)"
		case i%10 == 5: // both good: tie
			b = a + " too"
		case i == 7: // the judge rambles
			a += " ???"
		}
		prompts = append(prompts, map[string]any{"prompt": p})
		ansA = append(ansA, map[string]any{"prompt": p, "completion": a})
		ansB = append(ansB, map[string]any{"completion": b})
	}
	fj := &fakeJudge{first: map[string]string{}}
	srv := httptest.NewServer(fj)
	defer srv.Close()
	cfg := winrate.DefaultConfig()
	cfg.Data.DatasetName = writeJSONL(t, dir, "prompts.jsonl", prompts)
	cfg.AnswersA = writeJSONL(t, dir, "a.jsonl", ansA)
	cfg.AnswersB = writeJSONL(t, dir, "b.jsonl", ansB)
	cfg.LabelA, cfg.LabelB = "new", "old"
	cfg.JudgeBaseURL = srv.URL + "/v1"
	cfg.OutputDir = filepath.Join(dir, "out") // created by Evaluate
	s, err := winrate.Evaluate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 4 rows with i%10 == 3 lose, 4 with i%10 == 5 tie, row 7 is invalid, 31 win.
	if s.Judgements != n || s.Wins != 31 || s.Losses != 4 || s.Ties != 4 || s.Invalid != 1 || s.Valid != 39 ||
		s.Judge != "llm judge judge-model" || s.ModelA != "new" || s.ModelB != "old" || s.Seed != 42 {
		t.Fatalf("summary %+v", s)
	}
	lo, hi, _ := winrate.Wilson(31, 39, winrate.Z95)
	if s.WinRateCI95 != [2]float64{lo, hi} || s.Score != (31+2)/39.0 {
		t.Errorf("win interval %v, score %v", s.WinRateCI95, s.Score)
	}
	for _, sys := range fj.system {
		if sys != winrate.JudgeSystemPrompt {
			t.Fatalf("system prompt %q", sys)
		}
	}

	rows, err := data.ReadRows(filepath.Join(cfg.OutputDir, winrate.JudgementsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Fatalf("%d judgement rows, want %d", len(rows), n)
	}
	swapped := 0
	for i, r := range rows {
		f := r.Fields
		sw := f["swapped"].(bool)
		if sw {
			swapped++
		}
		a, b := ansA[i]["completion"], ansB[i]["completion"]
		if f["prompt"] != prompts[i]["prompt"] || f["answer_a"] != a || f["answer_b"] != b {
			t.Fatalf("row %d: %v", i, f)
		}
		// The judge saw B's answer first exactly when the row says swapped.
		shownFirst := fj.first[prompts[i]["prompt"].(string)]
		if want := map[bool]any{false: a, true: b}[sw]; shownFirst != want {
			t.Errorf("row %d swapped %v: the judge saw %q first", i, sw, shownFirst)
		}
		want := winrate.VerdictA
		switch {
		case i == 7:
			want = winrate.VerdictInvalid
		case i%10 == 3:
			want = winrate.VerdictB
		case i%10 == 5:
			want = winrate.VerdictTie
		}
		if f["verdict"] != want {
			t.Errorf("row %d (swapped %v): verdict %v, want %s (reply %q)", i, sw, f["verdict"], want, f["judge_reply"])
		}
		if sc, ok := f["scores"].([]any); !ok || len(sc) != 0 {
			t.Errorf("row %d: scores %v, want an empty list from an LLM judge", i, f["scores"])
		}
		if i == 7 && f["judge_reply"] != "I think A" {
			t.Errorf("row 7: judge_reply %q", f["judge_reply"])
		}
	}
	if swapped != s.Swapped || swapped == 0 || swapped == n {
		t.Errorf("%d rows swapped, summary says %d", swapped, s.Swapped)
	}
	var back map[string]any
	b, err := os.ReadFile(filepath.Join(cfg.OutputDir, winrate.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"win_rate", "tie_rate", "loss_rate", "win_rate_ci95", "score", "score_ci95", "ci_method", "invalid"} {
		if _, ok := back[k]; !ok {
			t.Errorf("%s has no %s", winrate.SummaryFile, k)
		}
	}
	png, err := os.ReadFile(filepath.Join(cfg.OutputDir, winrate.PlotFile))
	if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Errorf("%s: not a PNG (%v)", winrate.PlotFile, err)
	}
}

// Bad configs and inputs fail with one line naming the key or file.
func TestEvaluateBadInput(t *testing.T) {
	dir := t.TempDir()
	prompts := writeJSONL(t, dir, "p.jsonl", []map[string]any{{"prompt": "Hi"}, {"prompt": "Bye"}})
	ans := writeJSONL(t, dir, "a.jsonl", []map[string]any{{"completion": "x"}, {"completion": "y"}})
	short := writeJSONL(t, dir, "short.jsonl", []map[string]any{{"completion": "x"}})
	other := writeJSONL(t, dir, "other.jsonl", []map[string]any{{"prompt": "Hi", "completion": "x"}, {"prompt": "Hello", "completion": "y"}})
	noCol := writeJSONL(t, dir, "nocol.jsonl", []map[string]any{{"answer": "x"}, {"answer": "y"}})
	missing := filepath.Join(dir, "nope.jsonl")
	base := func() winrate.Config {
		c := winrate.DefaultConfig()
		c.Data.DatasetName, c.AnswersA, c.AnswersB, c.OutputDir = prompts, ans, ans, dir
		c.RewardModelNameOrPath = filepath.Join(dir, "rm")
		return c
	}
	for _, c := range []struct {
		name string
		edit func(*winrate.Config)
		want string
	}{
		{"missing prompts", func(c *winrate.Config) { c.Data.DatasetName = missing },
			"dataset_name: reading " + missing + ": open " + missing + ": no such file or directory"},
		{"no judge", func(c *winrate.Config) { c.RewardModelNameOrPath = "" },
			"judge: none configured: set reward_model_name_or_path (or reward_models) for a reward-model judge, or judge_base_url for an LLM judge"},
		{"two judges", func(c *winrate.Config) { c.JudgeBaseURL = "http://127.0.0.1:1/v1" },
			"judge: both a reward model and judge_base_url are set: choose one judge"},
		{"two reward keys", func(c *winrate.Config) {
			c.RewardModels = []reward.ModelSpec{{Path: "x", Role: "safety"}}
		}, "reward_models: set it or reward_model_name_or_path, not both"},
		{"no model A", func(c *winrate.Config) { c.AnswersA = "" },
			"model_a_name_or_path: must be set (or answers_a, a file of model A's answers)"},
		{"model and answers", func(c *winrate.Config) { c.ModelB = "m" },
			"answers_b: set it or model_b_name_or_path, not both"},
		{"no prompts", func(c *winrate.Config) { c.Data.DatasetName = "" }, "dataset_name: must be set (the prompts)"},
		{"negative margin", func(c *winrate.Config) { c.RewardTieMargin = -1 }, "reward_tie_margin: must be a finite number >= 0, got -1"},
		{"short answers", func(c *winrate.Config) { c.AnswersB = short },
			"answers_b: " + short + ": 1 rows, but the prompt of row 1 of " + prompts + " needs row 1"},
		{"answers to other prompts", func(c *winrate.Config) { c.AnswersA = other },
			"answers_a: " + other + ": row 1: prompt \"Hello\" differs from row 1 of " + prompts + ": the answers are to other prompts"},
		{"no completion column", func(c *winrate.Config) { c.AnswersA = noCol },
			"answers_a: " + noCol + ": row 0: no completion column (the answer)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			c.edit(&cfg)
			// The reward model is loaded after the answers are read; every case here fails first.
			_, err := winrate.Evaluate(context.Background(), cfg)
			if err == nil || err.Error() != c.want {
				t.Errorf("error:\n got %v\nwant %s", err, c.want)
			}
		})
	}
}

// When every reply is invalid there is no rate to report: the judgements are still written (to see
// what the judge said) and the error says why, with no summary.
func TestEvaluateAllInvalid(t *testing.T) {
	dir := t.TempDir()
	prompts := writeJSONL(t, dir, "p.jsonl", []map[string]any{{"prompt": "Hi"}, {"prompt": "Bye"}})
	ans := writeJSONL(t, dir, "a.jsonl", []map[string]any{{"completion": "x ???"}, {"completion": "y ???"}})
	srv := httptest.NewServer(&fakeJudge{first: map[string]string{}})
	defer srv.Close()
	cfg := winrate.DefaultConfig()
	cfg.Data.DatasetName, cfg.AnswersA, cfg.AnswersB = prompts, ans, ans
	cfg.JudgeBaseURL, cfg.OutputDir = srv.URL, filepath.Join(dir, "out")
	_, err := winrate.Evaluate(context.Background(), cfg)
	judgements := filepath.Join(cfg.OutputDir, winrate.JudgementsFile)
	if want := judgements + ": no valid judgement: 2 of 2 verdicts were invalid"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	rows, err := data.ReadRows(judgements)
	if err != nil || len(rows) != 2 || rows[0].Fields["verdict"] != winrate.VerdictInvalid || rows[1].Fields["judge_reply"] != "I think A" {
		t.Errorf("judgements %v (%v)", rows, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.OutputDir, winrate.SummaryFile)); !os.IsNotExist(err) {
		t.Errorf("%s written: %v", winrate.SummaryFile, err)
	}
}
