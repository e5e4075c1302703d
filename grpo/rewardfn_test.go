package grpo

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func completions() []Completion {
	return []Completion{
		{Prompt: "2+2?", Text: " 4\n", Tokens: 2, Row: 3, Fields: map[string]any{"answer": "4"}},
		{Prompt: "2+2?", Text: "five", Tokens: 10, Row: 3, Fields: map[string]any{"answer": "4"}},
		{Prompt: "1+1?", Text: "2", Tokens: 13, Row: 7, Fields: map[string]any{"answer": int64(2)}},
	}
}

func rewards(t *testing.T, spec FuncSpec, cs []Completion) ([]float64, error) {
	t.Helper()
	f, err := NewFunc(spec, 1, 12)
	if err != nil {
		t.Fatal(err)
	}
	return f.Rewards(context.Background(), cs)
}

func TestBuiltinRewardFuncs(t *testing.T) {
	for _, tc := range []struct {
		spec FuncSpec
		want []float64
	}{
		// " 4\n" trims to the answer "4"; an int64 column compares as its decimal text.
		{FuncSpec{Name: FuncExactMatch, Column: "answer"}, []float64{1, 0, 1}},
		{FuncSpec{Name: FuncRegex, Pattern: `^\s*\d+\s*$`}, []float64{1, 0, 1}},
		// TRL's soft overlong punishment with max 12, cache 4: free up to 8 tokens; 10 tokens →
		// (8−10)/4 = −0.5; 13 > 12 → −1.
		{FuncSpec{Name: FuncLengthPenalty, SoftPunishCache: 4}, []float64{0, -0.5, -1}},
		// A command sees the rows as JSON Lines (dataset columns, prompt, completion): this one
		// writes len(completion) + 100·(prompt == "2+2?").
		{FuncSpec{Name: FuncCommand, Command: []string{"python3", "-c",
			"import sys, json\nfor l in sys.stdin:\n r = json.loads(l)\n print(len(r['completion']) + 100*(r['prompt'] == '2+2?'))"}},
			[]float64{103, 104, 1}},
	} {
		if tc.spec.Name == FuncCommand {
			if _, err := exec.LookPath("python3"); err != nil {
				t.Log("no python3: the command case is skipped")
				continue
			}
		}
		got, err := rewards(t, tc.spec, completions())
		if err != nil {
			t.Fatalf("%s: %v", tc.spec.Name, err)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: rewards %v, want %v", tc.spec.Name, got, tc.want)
				break
			}
		}
	}
}

// Every failure names the function, the command and (where there is one) the dataset row.
func TestRewardFuncErrors(t *testing.T) {
	cs := completions()
	for _, tc := range []struct {
		name string
		spec FuncSpec
		cs   []Completion
		want string
	}{
		{"missing column", FuncSpec{Name: FuncExactMatch, Column: "solution"}, cs,
			`reward_funcs[1] (exact_match): dataset row 3 has no "solution" column`},
		{"failing command", FuncSpec{Name: FuncCommand, Command: []string{"sh", "-c", "echo broken scorer >&2; exit 3"}}, cs,
			`reward_funcs[1] (command) "sh -c echo broken scorer >&2; exit 3": exit status 3: broken scorer`},
		{"timeout", FuncSpec{Name: FuncCommand, Command: []string{"sleep", "5"}, Timeout: 200 * time.Millisecond}, cs,
			`reward_funcs[1] (command) "sleep 5": no answer within 200ms for 3 completions (rows 3..7); raise timeout`},
		{"not a number", FuncSpec{Name: FuncCommand, Command: []string{"printf", `1\n0.5\nyes\n`}}, cs,
			`reward_funcs[1] (command) "printf 1\\n0.5\\nyes\\n": line 3 (dataset row 7): "yes" is not a finite number`},
		{"NaN", FuncSpec{Name: FuncCommand, Command: []string{"printf", `1\nNaN\n2\n`}}, cs,
			`reward_funcs[1] (command) "printf 1\\nNaN\\n2\\n": line 2 (dataset row 3): "NaN" is not a finite number`},
		{"too few lines", FuncSpec{Name: FuncCommand, Command: []string{"echo", "1"}}, cs,
			`reward_funcs[1] (command) "echo 1": 1 lines of output for 3 completions; want one number per line`},
		{"no such program", FuncSpec{Name: FuncCommand, Command: []string{"/nonexistent/scorer"}}, cs,
			`reward_funcs[1] (command) "/nonexistent/scorer": fork/exec /nonexistent/scorer: no such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := rewards(t, tc.spec, tc.cs)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			if time.Since(start) > 3*time.Second {
				t.Fatalf("took %s", time.Since(start))
			}
		})
	}
}

func TestFuncSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		spec FuncSpec
		want string
	}{
		{FuncSpec{}, "reward_funcs[1].name: must be set (exact_match, regex, length_penalty or command)"},
		{FuncSpec{Name: "bleu"}, `reward_funcs[1].name: unknown "bleu" (want exact_match, regex, length_penalty or command)`},
		{FuncSpec{Name: FuncExactMatch}, "reward_funcs[1].column: exact_match needs the column holding the expected answer"},
		{FuncSpec{Name: FuncRegex, Pattern: "("}, "reward_funcs[1].pattern: error parsing regexp: missing closing ): `(`"},
		{FuncSpec{Name: FuncLengthPenalty}, "reward_funcs[1].soft_punish_cache: 0, want >= 1 token"},
		{FuncSpec{Name: FuncLengthPenalty, SoftPunishCache: 20}, "reward_funcs[1].soft_punish_cache: 20 is longer than max_completion_len 12"},
		{FuncSpec{Name: FuncCommand}, "reward_funcs[1].command: the argv of the scoring program, e.g. [python3, score.py]"},
	} {
		if _, err := NewFunc(tc.spec, 1, 12); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.spec, err, tc.want)
		}
	}
}
