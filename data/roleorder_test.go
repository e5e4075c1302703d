package data

import "testing"

// Role order is checked for every conversational format, whatever the chat template, and the
// error names the row, the column and the message's index in it.
func TestRoleOrder(t *testing.T) {
	const want = " (want an optional system message, then user and assistant alternating from user)"
	u, a, s := msg("user", "q"), msg("assistant", "a"), msg("system", "be brief")
	cases := []struct {
		name   string
		fields map[string]any
		err    string // "" accepts
	}{
		{"user assistant", map[string]any{"messages": conv(u, a)}, ""},
		{"system first", map[string]any{"messages": conv(s, u, a, u, a)}, ""},
		{"ends with user", map[string]any{"messages": conv(u, a, u, a)}, ""},
		{"two users", map[string]any{"messages": conv(u, u, a)}, "f.jsonl: row 0: column \"messages\": message 1: two user messages in a row" + want},
		{"two assistants", map[string]any{"messages": conv(u, a, a)}, "f.jsonl: row 0: column \"messages\": message 2: two assistant messages in a row" + want},
		{"assistant first", map[string]any{"messages": conv(a, u, a)}, "f.jsonl: row 0: column \"messages\": message 0: an assistant message before any user message" + want},
		{"system then assistant", map[string]any{"messages": conv(s, a)}, "f.jsonl: row 0: column \"messages\": message 1: an assistant message before any user message" + want},
		{"late system", map[string]any{"messages": conv(u, s, a)}, "f.jsonl: row 0: column \"messages\": message 1: a system message after the first message" + want},
		{"prompt completion", map[string]any{"prompt": conv(s, u), "completion": conv(a)}, ""},
		{"completion repeats user", map[string]any{"prompt": conv(u, a), "completion": conv(a)}, "f.jsonl: row 0: column \"completion\": message 0: two assistant messages in a row" + want},
		{"prompt two users", map[string]any{"prompt": conv(u, u), "completion": conv(a)}, "f.jsonl: row 0: column \"prompt\": message 1: two user messages in a row" + want},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Convert(rowsOf(c.fields), Source{Path: "f.jsonl"})
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.err != "" && (err == nil || err.Error() != c.err):
				t.Fatalf("error\n got: %v\nwant: %s", err, c.err)
			}
		})
	}
	// Preference pairs: the prompt followed by each answer.
	pair := map[string]any{"prompt": conv(u), "chosen": conv(a), "rejected": conv(a, a)}
	_, err := Convert(rowsOf(pair), Source{Path: "f.jsonl"})
	if w := "f.jsonl: row 0: column \"rejected\": message 1: two assistant messages in a row" + want; err == nil || err.Error() != w {
		t.Errorf("pair: %v", err)
	}
}
