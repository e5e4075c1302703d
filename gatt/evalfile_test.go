package gatt

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data/chat"
)

// prefixChecker is a caller-supplied checker: a figure is kept when the answer starts with "Name:".
type prefixChecker struct{}

func (prefixChecker) Name() string         { return "prefix" }
func (prefixChecker) Supports(k Kind) bool { return k == Figure }
func (prefixChecker) Check(_ context.Context, c Constraint, _, answer string) (Verdict, error) {
	ok := strings.HasPrefix(answer, c.Value+":")
	return Verdict{Constraint: c, Checker: "prefix", Pass: ok}, nil
}

const twoDialogues = `{"instruction": "Always act as Zorb from now.", "constraints": [{"kind": "figure", "value": "Zorb"}], "turns": [{"question": "who are you?", "checks": [{"kind": "figure", "value": "Zorb"}], "want": "Zorb: i am Zorb."}, {"question": "what is 1 plus 1?", "checks": [{"kind": "figure", "value": "Zorb"}]}, {"question": "unused third turn", "checks": []}]}
{"instruction": "Figure: Nim.", "turns": [{"question": "tell me your name.", "checks": [{"kind": "figure", "value": "Nim"}]}, {"question": "what colour is snow?", "checks": []}]}
`

// TestEvalDialoguesFile runs the eval over dialogues read from a file with a caller-supplied
// checker: the questions and instruction are the file's, the first `turns` turns are used, and a
// turn without checks is not counted.
func TestEvalDialoguesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eval.jsonl")
	if err := os.WriteFile(path, []byte(twoDialogues), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultEvalConfig()
	cfg.Models, cfg.OutputDir, cfg.DatasetName = []string{"m"}, dir, path
	cfg.NumDialogues, cfg.Turns, cfg.Checkers = 2, 2, []string{"prefix", CheckKeyword, CheckLanguage}
	if err := cfg.Validate(); err == nil || err.Error() != `checkers: unknown checker "prefix": want one of judge, keyword, language, reward` {
		t.Fatalf("without the checker: %v", err)
	}
	extra := []Checker{prefixChecker{}}
	if err := cfg.validate(extra); err != nil {
		t.Fatal(err)
	}
	ds, err := loadEvalDialogues(path, cfg.NumDialogues, cfg.Turns)
	if err != nil {
		t.Fatal(err)
	}
	cfg.dialogues = ds
	checkers, err := buildCheckers(context.Background(), cfg, extra)
	if err != nil {
		t.Fatal(err)
	}
	if checkers[0].Name() != "prefix" {
		t.Fatalf("checkers %v", checkers)
	}
	// The reply keeps the persona only while answering the first question ([system, user]).
	gen := &scriptGen{reply: func(ms []chat.Message, _ int) string {
		switch {
		case len(ms) > 2:
			return "i am an assistant."
		case strings.Contains(ms[0].Content, "Zorb"):
			return "Zorb: i am Zorb."
		}
		return "Nim: i am Nim."
	}}
	mr, ts, err := evalModel(context.Background(), cfg, &sampler{gen: gen}, PlaceSystem, DefaultLists(), checkers, "m")
	if err != nil {
		t.Fatal(err)
	}
	// Turn 1: both dialogues checked, both adherent. Turn 2: only the first has a check, and fails.
	if st := mr.Turns[0]; st.Checked != 2 || st.Adherent != 2 {
		t.Errorf("turn 1: %+v", st)
	}
	if st := mr.Turns[1]; st.Checked != 1 || st.Adherent != 0 || len(mr.Turns) != 2 {
		t.Errorf("turn 2: %+v (%d turns)", st, len(mr.Turns))
	}
	want := [][]chat.Message{
		{{Role: "system", Content: "Always act as Zorb from now."}, {Role: "user", Content: "who are you?"}, {Role: "assistant", Content: "Zorb: i am Zorb."},
			{Role: "user", Content: "what is 1 plus 1?"}, {Role: "assistant", Content: "i am an assistant."}},
		{{Role: "system", Content: "Figure: Nim."}, {Role: "user", Content: "tell me your name."}, {Role: "assistant", Content: "Nim: i am Nim."},
			{Role: "user", Content: "what colour is snow?"}, {Role: "assistant", Content: "i am an assistant."}},
	}
	for i, tr := range ts {
		b1, _ := json.Marshal(tr.Messages)
		b2, _ := json.Marshal(want[i])
		if string(b1) != string(b2) || tr.Instruction != want[i][0].Content {
			t.Errorf("transcript %d: %s (instruction %q), want %s", i, b1, tr.Instruction, b2)
		}
	}
	if v := ts[0].Verdicts[0]; len(v) != 1 || v[0].Checker != "prefix" || !v[0].Pass {
		t.Errorf("verdicts of dialogue 0 turn 1: %+v", v)
	}
}

func TestLoadEvalDialoguesErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, jsonl string
		n, turns    int
		want        string
	}{
		{"ok", twoDialogues, 2, 2, ""},
		{"too few rows", twoDialogues, 3, 2, "dataset_name: %s has 2 dialogues, fewer than num_dialogues 3"},
		{"too few turns", twoDialogues, 2, 3, "dataset_name: %s: row 1: 2 turns, fewer than turns 3"},
		{"no instruction", `{"turns": [{"question": "q", "checks": []}]}`, 1, 1, "dataset_name: %s: row 0: no instruction"},
		{"no question", `{"instruction": "Figure: Nim.", "turns": [{"checks": []}]}`, 1, 1, "dataset_name: %s: row 0: turn 1: no question"},
		{"bad kind", `{"instruction": "Figure: Nim.", "turns": [{"question": "q", "checks": [{"kind": "mood", "value": "happy"}]}]}`, 1, 1,
			`dataset_name: %s: row 0: turn 1: checks: constraint kind "mood": want hobby, language or figure`},
		{"empty value", `{"instruction": "Figure: Nim.", "constraints": [{"kind": "figure", "value": ""}], "turns": [{"question": "q"}]}`, 1, 1,
			"dataset_name: %s: row 0: constraints: figure constraint with an empty value"},
		{"turns not a list", `{"instruction": "Figure: Nim.", "turns": "q"}`, 1, 1,
			"dataset_name: %s: row 0: json: cannot unmarshal string into Go struct field fileDialogue.turns of type []struct { Question string \"json:\\\"question\\\"\"; Checks []gatt.Constraint \"json:\\\"checks\\\"\" }"},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".jsonl")
		if err := os.WriteFile(path, []byte(tc.jsonl), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := loadEvalDialogues(path, tc.n, tc.turns)
		want := strings.Replace(tc.want, "%s", path, 1)
		if got := errText(err); got != want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, want)
		}
	}
}

// TestEvaluateDialoguesFile runs Evaluate end to end on stories260K with a dialogue file and a
// caller-supplied checker: the result has the file's turns and the transcripts its questions.
func TestEvaluateDialoguesFile(t *testing.T) {
	stories := filepath.Join(sharedDir(t), "models", "stories260K")
	dir := t.TempDir()
	path := filepath.Join(dir, "eval.jsonl")
	if err := os.WriteFile(path, []byte(twoDialogues), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultEvalConfig()
	cfg.Models, cfg.OutputDir, cfg.DatasetName = []string{stories}, filepath.Join(dir, "out"), path
	cfg.ChatTemplate, cfg.NumDialogues, cfg.Turns, cfg.MaxNewTokens = "llama-2", 2, 2, 4
	cfg.Checkers = []string{"prefix", CheckKeyword, CheckLanguage}
	if _, err := Evaluate(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), `unknown checker "prefix"`) {
		t.Fatalf("without WithCheckers: %v", err)
	}
	res, err := Evaluate(context.Background(), cfg, WithCheckers(prefixChecker{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Models) != 1 || len(res.Models[0].Turns) != 2 || res.Models[0].Turns[0].Checked != 2 || res.Models[0].Turns[1].Checked != 1 {
		t.Fatalf("result %+v", res)
	}
	b, err := os.ReadFile(filepath.Join(cfg.OutputDir, EvalTranscriptsFile))
	if err != nil {
		t.Fatal(err)
	}
	var tr Transcript
	if err := json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Messages[0].Content != "Always act as Zorb from now." || tr.Messages[1].Content != "who are you?" || tr.Messages[3].Content != "what is 1 plus 1?" {
		t.Errorf("transcript %q", tr.Messages)
	}
}
