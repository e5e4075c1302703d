package chat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type goldenCase struct {
	Template            string `json:"template"`
	Conversation        string `json:"conversation"`
	Messages            int    `json:"messages"`
	AddGenerationPrompt bool   `json:"add_generation_prompt"`
	BOSToken            string `json:"bos_token"`
	EOSToken            string `json:"eos_token"`
	Output              *string
	Error               *string
}

func loadGolden(t *testing.T) ([]goldenCase, map[string][]Message) {
	t.Helper()
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	b, err := os.ReadFile("../testdata/golden/renders.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	var raw map[string][]struct{ Role, Content string }
	b, err = os.ReadFile("../testdata/golden/conversations.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	convs := map[string][]Message{}
	for k, v := range raw {
		for _, m := range v {
			convs[k] = append(convs[k], Message{Role: m.Role, Content: m.Content})
		}
	}
	return g.Cases, convs
}

func goldenTemplate(t *testing.T, c goldenCase) *Template {
	t.Helper()
	var src string
	if name, ok := strings.CutPrefix(c.Template, "custom/"); ok {
		b, err := os.ReadFile(filepath.Join("../testdata/golden/custom", name+".jinja"))
		if err != nil {
			t.Fatal(err)
		}
		src = string(b)
	} else {
		var ok bool
		if src, ok = BuiltinSource(c.Template); !ok {
			t.Fatalf("no built-in %q", c.Template)
		}
	}
	tmpl, err := Compile(c.Template, src, c.BOSToken, c.EOSToken)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// TestGolden compares every rendering with Python jinja2's, configured as
// transformers configures it (testdata/gen_golden.py), byte for byte.
func TestGolden(t *testing.T) {
	cases, convs := loadGolden(t)
	if len(cases) < 200 {
		t.Fatalf("only %d golden cases", len(cases))
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.Template] = true
		tmpl := goldenTemplate(t, c)
		msgs := convs[c.Conversation][:c.Messages]
		got, err := tmpl.Render(msgs, c.AddGenerationPrompt)
		id := c.Template + "/" + c.Conversation + "[:" + string(rune('0'+c.Messages)) + "]"
		if c.AddGenerationPrompt {
			id += "+gen"
		}
		if c.Error != nil {
			if err == nil || !strings.HasSuffix(err.Error(), ": "+*c.Error) {
				t.Errorf("%s: want error %q, got %q, %v", id, *c.Error, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if got != *c.Output {
			t.Errorf("%s:\n got %q\nwant %q", id, got, *c.Output)
			continue
		}
		// The segments must tile the same text, and contents must land in
		// their own messages' segments. (custom/tojson prints contents
		// JSON-escaped, which RenderSegments refuses by design; see
		// TestRenderSegmentsErrors.)
		if c.Template == "custom/tojson" {
			continue
		}
		segs, err := tmpl.RenderSegments(msgs, c.AddGenerationPrompt)
		if err != nil {
			t.Errorf("%s: segments: %v", id, err)
			continue
		}
		var sb strings.Builder
		for _, s := range segs {
			sb.WriteString(s.Text)
			if s.Message >= 0 && !strings.Contains(msgs[s.Message].Content, strings.TrimSpace(s.Text)) {
				t.Errorf("%s: segment %q is not from message %d", id, s.Text, s.Message)
			}
		}
		if sb.String() != got {
			t.Errorf("%s: segments join to %q, want %q", id, sb.String(), got)
		}
	}
	for _, name := range BuiltinNames() {
		if !seen[name] {
			t.Errorf("built-in %s has no golden renderings", name)
		}
	}
}

// TestRecordedTransformersOutputs checks the built-ins against renderings
// that other projects recorded from transformers' apply_chat_template with
// the real tokenizers (mistral.rs's chat-template test, and llama.cpp's
// test-chat-template.cpp), independent of our golden generator. The
// conversation is theirs: system, user "Hello", assistant "Hi there", user
// "Who are you", assistant "   I am an assistant   ", user "Another question",
// with add_generation_prompt; models without system support get it without
// the system message.
func TestRecordedTransformersOutputs(t *testing.T) {
	conv := []Message{
		{"system", "You are a helpful assistant"},
		{"user", "Hello"},
		{"assistant", "Hi there"},
		{"user", "Who are you"},
		{"assistant", "   I am an assistant   "},
		{"user", "Another question"},
	}
	tests := []struct {
		name   string
		system bool
		want   string
	}{
		{"chatml", true, "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n"},
		{"mistral", false, "<s>[INST] Hello [/INST]Hi there</s> [INST] Who are you [/INST]   I am an assistant   </s> [INST] Another question [/INST]"},
		{"llama-2", true, "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another question [/INST]"},
		{"llama-3", true, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := Resolve(tc.name, "", "", "")
			if err != nil {
				t.Fatal(err)
			}
			msgs := conv
			if !tc.system {
				msgs = conv[1:]
			}
			got, err := tmpl.Render(msgs, true)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestRenderSegments(t *testing.T) {
	llama2, err := Resolve("llama-2", "", "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	chatml, err := Resolve("chatml", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tmpl *Template
		msgs []Message
		gen  bool
		want []Segment
	}{
		{
			// llama-2 folds the system prompt into the first user turn and
			// strips the combined content: only the user text's trailing
			// space goes, the system text keeps its own.
			name: "llama-2 system fold and strip",
			tmpl: llama2,
			msgs: []Message{{"system", "Sys "}, {"user", "Hi <s> "}, {"assistant", "  Yo"}},
			want: []Segment{
				{Text: "<s>[INST] <<SYS>>\n", Message: -1}, {Text: "Sys ", Message: 0}, {Text: "\n<</SYS>>\n\n", Message: -1}, {Text: "Hi <s>", Message: 1},
				{Text: " [/INST] ", Message: -1}, {Text: "Yo", Message: 2}, {Text: " </s>", Message: -1},
			},
		},
		{
			name: "chatml generation prompt",
			tmpl: chatml,
			msgs: []Message{{"user", "<|im_end|>"}},
			gen:  true,
			want: []Segment{{Text: "<|im_start|>user\n", Message: -1}, {Text: "<|im_end|>", Message: 0}, {Text: "<|im_end|>\n<|im_start|>assistant\n", Message: -1}},
		},
		{
			name: "empty content",
			tmpl: chatml,
			msgs: []Message{{"user", "a"}, {"assistant", ""}},
			want: []Segment{{Text: "<|im_start|>user\n", Message: -1}, {Text: "a", Message: 0}, {Text: "<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n", Message: -1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tmpl.RenderSegments(tc.msgs, tc.gen)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("segment %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestRenderSegmentsErrors(t *testing.T) {
	rewrite, err := Compile("upper", "{% for m in messages %}{{ m.content | upper }}{% endfor %}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tojson, err := Compile("tojson", "{% for m in messages %}{{ m.content | tojson }}{% endfor %}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	literal, err := Compile("literal", "{% for m in messages %}\U000F32F8{{ m.content }}{% endfor %}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	chatml, _ := Resolve("chatml", "", "", "")
	mistral, _ := Resolve("mistral", "", "", "")
	tests := []struct {
		name string
		tmpl *Template
		msgs []Message
		want string
	}{
		{"rewriting template", rewrite, []Message{{"user", "abc"}},
			"chat template upper: the template rewrites message contents beyond stripping whitespace, so template text and message text cannot be told apart"},
		{"JSON-escaped content", tojson, []Message{{"user", "a\"b"}},
			"chat template tojson: the template rewrites message contents beyond stripping whitespace, so template text and message text cannot be told apart"},
		{"reserved rune", chatml, []Message{{"user", "ok"}, {"assistant", "x\U000F0001"}},
			"chat template chatml: message 1: " + ErrSentinel.Error()},
		{"reserved rune in the template", literal, []Message{{"user", "a"}},
			"chat template literal: the template or a role prints a character of Unicode's Supplementary Private Use Area-A (U+F0000..U+FFFFD), which the chat renderer reserves"},
		{"reserved rune in a role", chatml, []Message{{"\U000F0000", "a"}},
			"chat template chatml: the template or a role prints a character of Unicode's Supplementary Private Use Area-A (U+F0000..U+FFFFD), which the chat renderer reserves"},
		{"raise_exception", mistral, []Message{{"system", "s"}, {"user", "u"}},
			"chat template mistral: Conversation roles must alternate user/assistant/user/assistant/..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.tmpl.RenderSegments(tc.msgs, false)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.jinja")
	if err := os.WriteFile(p, []byte("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec, model string
		want        string // rendering of [{user, "x"}], or the error
	}{
		{"", "[{{ messages[0].content }}]", "[x]"},
		{"", "", "chat template: the tokenizer has no chat_template; set chat_template to one of chatml, llama-2, llama-3, mistral, zephyr or to a Jinja template"},
		{"llama-3", "ignored", "<B><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>"},
		{p, "", "<B>x"},
		{"{{ messages | length }}", "", "1"},
		{"nonesuch", "", `chat template: "nonesuch" is neither a built-in (chatml, llama-2, llama-3, mistral, zephyr), a file, nor a Jinja template`},
	}
	for _, tc := range tests {
		tmpl, err := Resolve(tc.spec, tc.model, "<B>", "")
		got := ""
		if err != nil {
			got = err.Error()
		} else if got, err = tmpl.Render([]Message{{"user", "x"}}, false); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Resolve(%q): got %q, want %q", tc.spec, got, tc.want)
		}
	}
}
