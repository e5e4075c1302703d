package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// modelTemplate reads the chat_template and BOS/EOS of a real tokenizer_config.json in ../shared.
func modelTemplate(t *testing.T, family string) (src, bos, eos string) {
	t.Helper()
	path := sharedtest.Path(t, "tokenizers", family, "tokenizer_config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string          `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tok := func(raw json.RawMessage) string {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		var o struct{ Content string }
		_ = json.Unmarshal(raw, &o)
		return o.Content
	}
	return cfg.ChatTemplate, tok(cfg.BOS), tok(cfg.EOS)
}

type jinja2Case struct {
	Template string         `json:"template"`
	Vars     map[string]any `json:"vars"`
}

type jinja2Result struct {
	Output *string `json:"output"`
	Error  *string `json:"error"`
}

// renderJinja2 renders cases with Python's jinja2 configured as transformers configures it
// (testdata/jinja2_render.py). It skips the test when Debian's python3 or jinja2 is absent.
func renderJinja2(t *testing.T, cases []jinja2Case) []jinja2Result {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import jinja2").Run(); err != nil {
		t.Skipf("Python jinja2 is not available (%s -c 'import jinja2': %v)", py, err)
	}
	in, err := json.Marshal(map[string]any{"cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "jinja2_render.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("jinja2_render.py: %v\n%s", err, stderr.String())
	}
	var res []jinja2Result
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("jinja2_render.py: %d results for %d cases, %v", len(res), len(cases), err)
	}
	return res
}

// modelConversations are multi-turn conversations with a system turn, and the Qwen3 shapes that
// take its other branches: reasoning in an earlier and in the last assistant turn, a turn that
// ends with the assistant, no system turn, and contents with whitespace, quotes and non-ASCII.
var modelConversations = map[string][]Message{
	"system_multi": {
		{"system", "You are a helpful assistant."},
		{"user", "Hello"},
		{"assistant", "Hi there! How can I help?"},
		{"user", "What is 2+2?"},
		{"assistant", "  4, of course.  "},
		{"user", "Thanks"},
	},
	"system_ends_assistant": {
		{"system", "Be terse."},
		{"user", "Name a colour."},
		{"assistant", "Blue."},
		{"user", "Another?"},
		{"assistant", "Green."},
	},
	"thinking": {
		{"system", "Think first."},
		{"user", "Is 7 prime?"},
		{"assistant", "<think>\nIt has no divisors but 1 and 7.\n</think>\n\nYes."},
		{"user", "And 9?"},
		{"assistant", "<think>\n9 = 3*3.\n</think>\n\nNo, 9 = 3×3."},
	},
	"no_system": {
		{"user", "Ünïcödé \"quotes\" 'apostrophes' \\ backslash {{ braces }}"},
		{"assistant", "\nleading newline, trailing newline\n"},
		{"user", "<tool_response>not a tool</tool_response>"},
	},
}

func messagesAny(msgs []Message) []any {
	out := make([]any, len(msgs))
	for i, m := range msgs {
		out[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	return out
}

// TestModelTemplatesMatchJinja2 renders Llama 3's and Qwen3's real chat templates over every prefix
// of each conversation, with and without the generation prompt, and compares byte for byte with
// Python jinja2.
func TestModelTemplatesMatchJinja2(t *testing.T) {
	type run struct {
		family, conv string
		k            int
		gen          bool
		tmpl         *Template
	}
	var runs []run
	var cases []jinja2Case
	for _, family := range []string{"llama3", "qwen3"} {
		src, bos, eos := modelTemplate(t, family)
		tmpl, err := Compile(family, src, bos, eos)
		if err != nil {
			t.Fatal(err)
		}
		for name, conv := range modelConversations {
			for k := 1; k <= len(conv); k++ {
				for _, gen := range []bool{false, true} {
					runs = append(runs, run{family, name, k, gen, tmpl})
					cases = append(cases, jinja2Case{Template: src, Vars: map[string]any{
						"messages": messagesAny(conv[:k]), "add_generation_prompt": gen,
						"bos_token": bos, "eos_token": eos,
					}})
				}
			}
		}
	}
	// The features the two templates rely on, each exercised on its own: slicing with a negative
	// step, namespace, loop variables, string methods, tojson without ASCII escaping, tests.
	features := `{%- set ns = namespace(n=0, last='') %}
{%- for m in messages[::-1] %}{% set ns.n = ns.n + 1 %}{% set ns.last = m.role %}{% endfor %}
{{- ns.n }} {{ ns.last }}
{% for m in messages %}
{{ loop.index }}/{{ loop.length }} {{ loop.index0 }} {{ loop.revindex }} {{ loop.first }} {{ loop.last }} {{ m.role | upper }}
  {{ m.content.startswith('<think>') }} {{ m.content.endswith('.') }} {{ m.content.split('</think>')[-1].lstrip('\n') | tojson }}
  {{ m.content.strip() | tojson }} {{ m.content.rstrip('.') }} {{ m.content | length }} {{ m.content[:3] }} {{ m.content[::-1][:2] }}
  {%- if m.reasoning is defined %}R{% elif m.content is string and m.content is not none %} S{% endif %}
{% endfor %}
{{ messages | map(attribute='role') | join(',') }} {{ (messages | selectattr('role', 'equalto', 'user') | list | length) }}`
	for name, conv := range modelConversations {
		for _, gen := range []bool{false, true} {
			tmpl, err := Compile("features", features, "", "")
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, run{"features", name, len(conv), gen, tmpl})
			cases = append(cases, jinja2Case{Template: features, Vars: map[string]any{
				"messages": messagesAny(conv), "add_generation_prompt": gen, "bos_token": "", "eos_token": "",
			}})
		}
	}
	want := renderJinja2(t, cases)
	for i, r := range runs {
		got, err := r.tmpl.Render(modelConversations[r.conv][:r.k], r.gen)
		id := r.family + "/" + r.conv
		if want[i].Error != nil {
			t.Errorf("%s[:%d] gen=%v: jinja2 raised %q", id, r.k, r.gen, *want[i].Error)
			continue
		}
		if err != nil {
			t.Errorf("%s[:%d] gen=%v: %v", id, r.k, r.gen, err)
			continue
		}
		if got != *want[i].Output {
			t.Errorf("%s[:%d] gen=%v:\n got %q\nwant %q", id, r.k, r.gen, got, *want[i].Output)
		}
	}
}

// describeSegments writes template text as is, message text as «i:text» and Plain template text
// as ⟨text⟩.
func describeSegments(segs []Segment) string {
	var b strings.Builder
	for _, s := range segs {
		switch {
		case s.Message >= 0:
			fmt.Fprintf(&b, "«%d:%s»", s.Message, s.Text)
		case s.Plain:
			fmt.Fprintf(&b, "⟨%s⟩", s.Text)
		default:
			b.WriteString(s.Text)
		}
	}
	return b.String()
}

// TestQwen3ThinkingSegments: Qwen3's template splits an assistant content at "</think>" and prints
// its reasoning and its answer apart (dropping the reasoning of turns before the last user
// message), so one sentinel per content cannot show where contents go. RenderSegments then keeps
// each content's tags and whitespace and gives each other run its own sentinel: the words are
// message text, the template's own text is template text, and the tags some content holds are
// Plain wherever they appear (here the template's own <think>, which Qwen3's vocabulary has as a
// non-special added token, matched in any text anyway).
func TestQwen3ThinkingSegments(t *testing.T) {
	src, bos, eos := modelTemplate(t, "qwen3")
	tmpl, err := Compile("qwen3", src, bos, eos)
	if err != nil {
		t.Fatal(err)
	}
	msgs := modelConversations["thinking"]
	segs, err := tmpl.RenderSegments(msgs, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\n«0:Think» «0:first.»<|im_end|>\n<|im_start|>user\n«1:Is» «1:7» «1:prime?»<|im_end|>\n" +
		"<|im_start|>assistant\n«2:Yes.»<|im_end|>\n<|im_start|>user\n«3:And» «3:9?»<|im_end|>\n" +
		"<|im_start|>assistant\n⟨<think>⟩\n«4:9» «4:=» «4:3*3.»\n⟨</think>⟩\n\n«4:No,» «4:9» «4:=» «4:3×3.»<|im_end|>\n"
	if got := describeSegments(segs); got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
	// A content that is no tag-split of the template's reading still fails: here the template
	// compares the whole content, and the word sentinels cannot equal it.
	cmp, err := Compile("cmp", `{% for m in messages %}{% if m.content == '<x> a' %}A{% endif %}{{ m.content }}{% endfor %}`, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cmp.RenderSegments([]Message{{"user", "<x> a"}}, false)
	if wantErr := "chat template cmp: the template rewrites message contents beyond stripping whitespace, so template text and message text cannot be told apart"; err == nil || err.Error() != wantErr {
		t.Fatalf("got %v, want %q", err, wantErr)
	}
	// Without reasoning in the contents, the segments tile the rendering.
	plain := modelConversations["system_multi"]
	segs, err = tmpl.RenderSegments(plain, true)
	if err != nil {
		t.Fatal(err)
	}
	out, err := tmpl.Render(plain, true)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.Text)
		if s.Message >= 0 && !strings.Contains(plain[s.Message].Content, s.Text) {
			t.Errorf("segment %q is not from message %d", s.Text, s.Message)
		}
	}
	if b.String() != out {
		t.Errorf("segments tile %q, Render gives %q", b.String(), out)
	}
}
