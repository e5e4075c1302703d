package gatt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/reward"
)

// oneOfEach lists make every constraint's value known in advance.
var oneOfEach = Lists{Hobbies: []string{"Tennis"}, Languages: []string{"French"}, Figures: []string{"Napoleon"}}

// perfect always answers in French, as Napoleon, about tennis: every check passes.
func perfect([]chat.Message, int) string {
	return "Je suis Napoleon et j'aime le tennis, c'est mon passe-temps préféré."
}

// forgetful keeps the instruction only while answering the first question (a prompt of at most
// [system, user]); later it answers in English as nobody in particular.
func forgetful(ms []chat.Message, j int) string {
	if len(ms) <= 2 {
		return perfect(ms, j)
	}
	return "I like golf and I am a robot."
}

func evalCfg(out string) EvalConfig {
	c := DefaultEvalConfig()
	c.Models, c.OutputDir = []string{"m"}, out
	c.NumDialogues, c.Turns = 6, 5
	c.Constraints = oneOfEach
	return c
}

// TestEvalModel checks the per-turn table against what the questions make checkable: a reply is
// checked when its question has constraints, and counts as adherent when all of them pass.
func TestEvalModel(t *testing.T) {
	cfg := evalCfg(t.TempDir())
	kw, _ := NewChecker(CheckKeyword, Deps{})
	lang, _ := NewChecker(CheckLanguage, Deps{})
	checkers := []Checker{kw, lang}
	// Expected checked counts, from the same (seed, dialogue) questions.
	wantChecked := make([]int, cfg.Turns)
	for i := range cfg.NumDialogues {
		_, qs, err := EvalQuestions(cfg.Seed, i, cfg.Turns, oneOfEach)
		if err != nil {
			t.Fatal(err)
		}
		for k, q := range qs {
			if len(q.Checks) > 0 {
				wantChecked[k]++
			}
		}
	}
	for _, tc := range []struct {
		name  string
		reply func([]chat.Message, int) string
		pct   func(turn int) float64
	}{
		{"perfect", perfect, func(int) float64 { return 100 }},
		{"forgetful", forgetful, func(turn int) float64 {
			if turn == 1 {
				return 100
			}
			return 0
		}},
	} {
		gen := &scriptGen{reply: tc.reply}
		mr, ts, err := evalModel(context.Background(), cfg, &sampler{gen: gen}, PlaceSystem, oneOfEach, checkers, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		for k, st := range mr.Turns {
			if st.Turn != k+1 || st.Checked != wantChecked[k] {
				t.Errorf("%s turn %d: %+v, want %d checked", tc.name, k+1, st, wantChecked[k])
			}
			if st.Checked > 0 && st.Percent != tc.pct(k+1) {
				t.Errorf("%s turn %d: %.1f%%, want %.1f%%", tc.name, k+1, st.Percent, tc.pct(k+1))
			}
			if st.Checked == 0 && !math.IsNaN(st.Percent) {
				t.Errorf("%s turn %d: nothing checked but percent %v", tc.name, k+1, st.Percent)
			}
			n := 0
			for _, ks := range st.ByKind {
				n += ks.Checked
			}
			if n < st.Checked {
				t.Errorf("%s turn %d: %d verdicts for %d checked replies", tc.name, k+1, n, st.Checked)
			}
		}
		// The dialogues: the instruction only in the system message, the questions in order, one
		// batched generation call per turn.
		if len(gen.prompts) != cfg.NumDialogues*cfg.Turns {
			t.Errorf("%d prompts", len(gen.prompts))
		}
		for _, tr := range ts {
			inst, qs, _ := EvalQuestions(cfg.Seed, tr.Dialogue, cfg.Turns, oneOfEach)
			if len(tr.Messages) != 1+2*cfg.Turns || tr.Messages[0] != (chat.Message{Role: "system", Content: inst.Text()}) {
				t.Fatalf("transcript %d: %q", tr.Dialogue, tr.Messages)
			}
			for k, q := range qs {
				if m := tr.Messages[1+2*k]; m.Role != "user" || m.Content != q.Text {
					t.Errorf("transcript %d turn %d: %+v, want %q", tr.Dialogue, k+1, m, q.Text)
				}
			}
		}
	}

	// first_user: the instruction rides on the first question only.
	gen := &scriptGen{reply: perfect}
	_, ts, err := evalModel(context.Background(), cfg, &sampler{gen: gen}, PlaceFirstUser, oneOfEach, checkers, "fu")
	if err != nil {
		t.Fatal(err)
	}
	inst, qs, _ := EvalQuestions(cfg.Seed, 0, cfg.Turns, oneOfEach)
	if ts[0].Messages[0].Content != WithInstruction(qs[0].Text, inst.Text()) || ts[0].Messages[2].Content != qs[1].Text {
		t.Errorf("first_user transcript: %q", ts[0].Messages)
	}
}

func TestEvalPromptDropsOldTurns(t *testing.T) {
	count := func(ms []chat.Message) (int, error) { return 10 * len(ms), nil }
	d := &evalDialogue{
		first:   msgs("system", "I", "user", "u1", "assistant", "a1"),
		history: msgs("user", "u2", "assistant", "a2", "user", "u3", "assistant", "a3", "user", "u4"),
	}
	got, dropped, err := d.prompt(count, 70)
	want := msgs("system", "I", "user", "u1", "assistant", "a1", "user", "u3", "assistant", "a3", "user", "u4")
	if err != nil || !dropped || !reflect.DeepEqual(got, want) {
		t.Errorf("limit 70: %q %v %v", got, dropped, err)
	}
	got, dropped, err = d.prompt(count, 1000)
	if err != nil || dropped || len(got) != 8 {
		t.Errorf("limit 1000: %q %v %v", got, dropped, err)
	}
	if _, _, err := d.prompt(count, 30); err == nil || err.Error() != "the first exchange and the current question take 40 tokens: no room for a reply of max_new_tokens within 30" {
		t.Errorf("limit 30: %v", err)
	}
}

func TestWriteEval(t *testing.T) {
	dir := t.TempDir()
	r := EvalResult{Turns: 3, NumDialogues: 2, Checkers: []string{"keyword", "language"}, Placement: PlaceSystem, Models: []ModelResult{
		{Label: "base", Model: "a", Turns: []TurnStat{{Turn: 1, Checked: 2, Adherent: 1, Percent: 50}, {Turn: 2, Percent: math.NaN()}, {Turn: 3, Checked: 2, Percent: 0}}},
		{Label: "gatt", Model: "b", Turns: []TurnStat{{Turn: 1, Checked: 2, Adherent: 2, Percent: 100}, {Turn: 2, Percent: math.NaN()}, {Turn: 3, Checked: 2, Adherent: 2, Percent: 100}}},
	}}
	if err := WriteEval(dir, r, []Transcript{{Label: "base"}}); err != nil {
		t.Fatal(err)
	}
	wantTable := "| Turn | base | gatt |\n|---:|---:|---:|\n| 1 | 50.0% (1/2) | 100.0% (2/2) |\n| 2 | n/a | n/a |\n| 3 | 0.0% (0/2) | 100.0% (2/2) |\n"
	if got := r.Markdown(); got != wantTable {
		t.Errorf("table:\n%s\nwant\n%s", got, wantTable)
	}
	md, _ := os.ReadFile(filepath.Join(dir, EvalMarkdownFile))
	if !strings.HasSuffix(string(md), wantTable) {
		t.Errorf("markdown file:\n%s", md)
	}
	var back struct {
		Models []struct {
			Label string
			Turns []struct {
				Turn    int
				Percent *float64
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, EvalJSONFile))
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Models[1].Label != "gatt" || *back.Models[0].Turns[0].Percent != 50 || back.Models[0].Turns[1].Percent != nil {
		t.Errorf("json: %s", b)
	}
	f, _ := os.ReadFile(filepath.Join(dir, EvalPlotFile))
	img, err := png.Decode(bytes.NewReader(f))
	if err != nil || img.Bounds().Dx() < 500 {
		t.Errorf("plot: %v", err)
	}
	tr, _ := os.ReadFile(filepath.Join(dir, EvalTranscriptsFile))
	if strings.Count(string(tr), "\n") != 1 {
		t.Errorf("transcripts: %q", tr)
	}
}

// TestEvalConfigErrors loads YAML as the command does and checks each bad input's one error line.
func TestEvalConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, yaml, want string
	}{
		{"ok", "models: [m]\noutput_dir: o\n", ""},
		{"empty hobbies", "models: [m]\noutput_dir: o\nconstraints: {hobbies: []}\n",
			"%s: constraints: gatt hobbies list is empty: cannot sample a hobby constraint"},
		{"unknown checker", "models: [m]\noutput_dir: o\ncheckers: [keyword, regex]\n",
			`%s: checkers: unknown checker "regex": want one of judge, keyword, language, reward`},
		{"no checker", "models: [m]\noutput_dir: o\ncheckers: []\n", "%s: checkers: empty: want at least one of keyword, language, judge, reward"},
		{"uncovered kind", "models: [m]\noutput_dir: o\ncheckers: [keyword]\n",
			"%s: checkers [keyword]: none checks language constraints: add one that does (judge and reward check any kind)"},
		{"unknown language", "models: [m]\noutput_dir: o\nconstraints: {languages: [Klingon]}\n",
			`%s: constraints: languages[0]: language "Klingon" has no stop-word list: want one of english, french, german, italian, spanish`},
		{"judge without url", "models: [m]\noutput_dir: o\ncheckers: [judge]\n", "%s: checkers: judge needs judge_base_url (an OpenAI-compatible server)"},
		{"reward without model", "models: [m]\noutput_dir: o\ncheckers: [keyword, reward]\n", "%s: checkers: reward needs reward_model_name_or_path"},
		{"labels", "models: [a, b]\nlabels: [x]\noutput_dir: o\n", "%s: labels: 1 labels for 2 models: give one per model or none"},
		{"same labels", "models: [a/m, b/m]\noutput_dir: o\n", `%s: labels: "m" appears twice: give each model its own label`},
		{"no models", "output_dir: o\n", "%s: models: must list at least one model"},
		{"placement", "models: [m]\noutput_dir: o\ninstruction_placement: middle\n", `%s: instruction_placement "middle": want auto, system or first_user`},
		{"no output_dir", "models: [m]\n", "%s: output_dir: must be set"},
		{"max_length", "models: [m]\noutput_dir: o\nmax_length: -1\n", "%s: max_length: must be >= 0 (0: the model's context), got -1"},
		{"num_dialogues", "models: [m]\noutput_dir: o\nnum_dialogues: 0\n", "%s: num_dialogues: must be >= 1, got 0"},
		{"turns", "models: [m]\noutput_dir: o\nturns: 0\n", "%s: turns: must be >= 1, got 0"},
		{"max_new_tokens", "models: [m]\noutput_dir: o\nmax_new_tokens: 0\n", "%s: max_new_tokens: must be >= 1, got 0"},
		{"temperature", "models: [m]\noutput_dir: o\ntemperature: -1\n", "%s: temperature: must be >= 0, got -1"},
		{"top_p", "models: [m]\noutput_dir: o\ntop_p: 0\n", "%s: top_p: must be in (0, 1], got 0"},
		{"blank label", "models: [m]\nlabels: [' ']\noutput_dir: o\n", "%s: labels[0]: empty label"},
		{"concurrency", "models: [m]\noutput_dir: o\nconcurrency: -1\n", "%s: concurrency: must be >= 1, got -1"},
		{"max_retries", "models: [m]\noutput_dir: o\nmax_retries: -1\n", "%s: max_retries: must be >= 0, got -1"},
		{"request_timeout", "models: [m]\noutput_dir: o\nrequest_timeout: -1s\n", "%s: request_timeout: must be >= 0, got -1s"},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o644)
		cfg := DefaultEvalConfig()
		err := conf.Load(path, nil, &cfg)
		want := tc.want
		if want != "" {
			want = strings.Replace(want, "%s", path, 1)
		}
		if got := errText(err); got != want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, want)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestSynthConfigErrors(t *testing.T) {
	dir := t.TempDir()
	base := "dataset_name: d.jsonl\noutput_dir: o\nmodel_name_or_path: m\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"ok", base, ""},
		{"ok extend", base + "constraints: {hobbies: [Juggling]}\nextend_constraints: true\n", ""},
		{"empty figures", base + "constraints: {figures: []}\n", "%s: constraints: gatt figures list is empty: cannot sample a figure constraint"},
		{"samples", base + "samples: all\n", `%s: samples "all": want last_turn or every_turn`},
		{"k without rm", base + "num_samples_per_prompt: 4\n", "%s: num_samples_per_prompt 4: best-of-K needs reward_model_name_or_path"},
		{"k greedy", base + "num_samples_per_prompt: 4\nreward_model_name_or_path: rm\ntemperature: 0\n",
			"%s: num_samples_per_prompt 4: greedy decoding (temperature 0) gives K identical replies: set temperature > 0"},
		{"max_turns 1", base + "max_turns: 1\n", "%s: max_turns: must be 0 (all) or >= 2, got 1"},
		{"training key", base + "packing: true\n", "%s: packing, loss_mask: training keys, not used by gatt synth: set them in the sft config"},
		{"backend", base + "backend: vllm\n", `%s: backend "vllm": want local or openai`},
		{"openai without url", base + "backend: openai\n", "%s: base_url: must be set for backend openai (the server's OpenAI root, e.g. http://127.0.0.1:8080/v1)"},
		{"local without model", "dataset_name: d.jsonl\noutput_dir: o\n", "%s: model_name_or_path: must be set for backend local (an HF model directory or a .gguf file)"},
		{"no data", "output_dir: o\nmodel_name_or_path: m\n", "%s: dataset_name: must be set (a .parquet or .jsonl file with a messages column)"},
		{"eval split", base + "eval_split: 0.1\n", "%s: eval_dataset_name, eval_split: not used by gatt synth: remove them"},
		{"sample caps", base + "max_train_samples: 5\n", "%s: max_train_samples, max_eval_samples: not used by gatt synth: use max_dialogues"},
		{"max_length", base + "max_length: 1\n", "%s: max_length: must be >= 2, got 1"},
		{"no output_dir", "dataset_name: d.jsonl\nmodel_name_or_path: m\n", "%s: output_dir: must be set"},
		{"max_dialogues", base + "max_dialogues: -1\n", "%s: max_dialogues: must be >= 0 (0: all), got -1"},
		{"max_new_tokens", base + "max_new_tokens: 0\n", "%s: max_new_tokens: must be >= 1, got 0"},
		{"temperature", base + "temperature: -1\n", "%s: temperature: must be >= 0, got -1"},
		{"top_p", base + "top_p: 1.5\n", "%s: top_p: must be in (0, 1], got 1.5"},
		{"K", base + "num_samples_per_prompt: 0\n", "%s: num_samples_per_prompt: must be >= 1, got 0"},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o644)
		cfg := DefaultSynthConfig()
		err := conf.Load(path, nil, &cfg)
		want := tc.want
		if want != "" {
			want = strings.Replace(want, "%s", path, 1)
		}
		if got := errText(err); got != want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, want)
		}
	}
	// extend_constraints adds to the defaults; without it the given list replaces them.
	path := filepath.Join(dir, "ok_extend.yaml")
	cfg := DefaultSynthConfig()
	if err := conf.Load(path, nil, &cfg); err != nil {
		t.Fatal(err)
	}
	l, _ := ResolveLists(cfg.Constraints, cfg.ExtendConstraints)
	if len(l.Hobbies) != len(DefaultLists().Hobbies)+1 || cfg.Constraints.Figures != nil {
		t.Errorf("extend: %+v", l)
	}
}

// TestEvaluateRewardChecker runs Evaluate on stories260K with the reward checker alone: every
// verdict is the reward model's score of (instruction + question, reply) against the threshold,
// re-derived here with the same scorer. The second run puts the threshold at the median score, so
// that both outcomes occur.
func TestEvaluateRewardChecker(t *testing.T) {
	shared := sharedDir(t)
	stories := filepath.Join(shared, "models", "stories260K")
	rmDir := rewardModelDir(t, stories)
	scorer, err := reward.NewScorer(rmDir, reward.WithChatTemplate("llama-2"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(threshold float64) (scores []float64, passes int) {
		cfg := DefaultEvalConfig()
		cfg.Models, cfg.Labels, cfg.OutputDir = []string{stories}, []string{"base"}, t.TempDir()
		cfg.ChatTemplate, cfg.NumDialogues, cfg.Turns, cfg.MaxNewTokens = "llama-2", 2, 3, 6
		cfg.Checkers, cfg.RewardModelNameOrPath, cfg.RewardThreshold = []string{CheckReward}, rmDir, threshold
		res, err := Evaluate(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Models) != 1 || res.Placement != PlaceSystem {
			t.Fatalf("result %+v", res)
		}
		b, _ := os.ReadFile(filepath.Join(cfg.OutputDir, EvalTranscriptsFile))
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var tr Transcript
			if err := json.Unmarshal([]byte(line), &tr); err != nil {
				t.Fatal(err)
			}
			for turn, vs := range tr.Verdicts {
				q, reply := tr.Messages[1+2*turn].Content, tr.Messages[2+2*turn].Content
				for _, v := range vs {
					s, err := scorer.Score(context.Background(), [][]data.Message{{{Role: "user", Content: RewardPrompt(v.Constraint, q)}, {Role: "assistant", Content: reply}}})
					if err != nil {
						t.Fatal(err)
					}
					if v.Checker != CheckReward || v.Pass != (s[0] >= threshold) || v.Detail != fmt.Sprintf("score %.4g, threshold %.4g", s[0], threshold) {
						t.Errorf("dialogue %d turn %d: %+v, rescored %v", tr.Dialogue, turn+1, v, s[0])
					}
					scores = append(scores, s[0])
					if v.Pass {
						passes++
					}
				}
			}
		}
		return scores, passes
	}
	scores, _ := run(0)
	if len(scores) < 2 {
		t.Fatalf("%d verdicts", len(scores))
	}
	sorted := append([]float64(nil), scores...)
	sort.Float64s(sorted)
	median := sorted[len(sorted)/2]
	_, passes := run(median)
	if passes == 0 || passes == len(scores) {
		t.Errorf("threshold at the median %v: %d of %d pass, want some of each", median, passes, len(scores))
	}
}
