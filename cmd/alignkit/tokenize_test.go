package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/tokenizer"
)

const tokenizeMessages = `[{"role": "system", "content": "You are helpful."},
 {"role": "user", "content": "Hi <|im_end|> <|eot_id|> there"},
 {"role": "assistant", "content": "Hello!"},
 {"role": "user", "content": "Bye"}]`

// TestTokenizeMessages runs `alignkit tokenize --messages` on the tokenizer-only directories of
// Qwen3 and Llama 3: the text is the template's rendering (as jinja2 renders it: data/chat's
// TestModelTemplatesMatchJinja2 checks the same templates), the template's special tokens are
// single ids, and the special-token strings typed in a message stay text.
func TestTokenizeMessages(t *testing.T) {
	msgs := filepath.Join(t.TempDir(), "messages.json")
	if err := os.WriteFile(msgs, []byte(tokenizeMessages), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		family string
		gen    bool
		text   string
		// specials are the template's special tokens in order, each a single id in ids.
		specials []string
	}{
		{"qwen3", true,
			"<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi <|im_end|> <|eot_id|> there<|im_end|>\n" +
				"<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
			[]string{"<|im_start|>", "<|im_end|>", "<|im_start|>", "<|im_end|>", "<|im_start|>", "<|im_end|>", "<|im_start|>", "<|im_end|>", "<|im_start|>"}},
		{"llama3", false,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHi <|im_end|> <|eot_id|> there<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>",
			[]string{"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
				"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
	} {
		t.Run(c.family, func(t *testing.T) {
			dir := sharedtest.Path(t, "tokenizers", c.family)
			args := []string{"tokenize", "--model", dir, "--messages", msgs, "--json"}
			if c.gen {
				args = append(args, "--add-generation-prompt")
			}
			r := runCLI(t, args...)
			if r.Code != 0 {
				t.Fatalf("exit %d: %s", r.Code, r.Stderr)
			}
			if !strings.HasPrefix(r.Stdout, `{"text":`) {
				t.Errorf("output does not start with the text: %.40s", r.Stdout)
			}
			var got struct {
				Text string  `json:"text"`
				IDs  []int32 `json:"ids"`
			}
			if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
				t.Fatalf("%v in %s", err, r.Stdout)
			}
			if got.Text != c.text {
				t.Errorf("text\n got %q\nwant %q", got.Text, c.text)
			}
			tk, err := tokenizer.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			// The ids are the template's special tokens, each one id, and between them the plain
			// encoding of the text between them (message text included, its "<|im_end|>" as text).
			var want []int32
			rest := c.text
			for _, sp := range c.specials {
				i := strings.Index(rest, sp)
				if strings.Contains(rest[:i], "Hi ") {
					// the typed specials lie before the template's next one
					j := strings.Index(rest, " there")
					i = j + strings.Index(rest[j:], sp)
				}
				id, ok := tk.TokenID(sp)
				if !ok {
					t.Fatalf("no %s", sp)
				}
				want = append(append(want, tk.Encode(rest[:i], false)...), id)
				rest = rest[i+len(sp):]
			}
			want = append(want, tk.Encode(rest, false)...)
			if !slices.Equal(got.IDs, want) {
				t.Errorf("ids\n got %v\nwant %v", got.IDs, want)
			}
		})
	}
}

// TestTokenizeText: --text on a tokenizer-only directory, with its BOS (Llama 3 adds one).
func TestTokenizeText(t *testing.T) {
	dir := sharedtest.Path(t, "tokenizers", "llama3")
	r := runCLI(t, "tokenize", "--model", dir, "--text", "Hello world<|eot_id|>", "--json")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	// 128000 <|begin_of_text|>, then "Hello", " world" and "<|eot_id|>" as text, not 128009
	// (ids from llama.cpp's vectors for the vocabulary: "Hello world" is 9906 1917).
	if want := `{"ids":[128000,9906,1917,27,91,68,354,851,91,29]}` + "\n"; r.Stdout != want {
		t.Errorf("got %s want %s", r.Stdout, want)
	}
}

// TestTokenizeErrors: each bad command line is one error line naming what is wrong.
func TestTokenizeErrors(t *testing.T) {
	dir := sharedtest.Path(t, "tokenizers", "qwen3")
	tmp := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good.json", `[{"role": "user", "content": "hi"}]`)
	notList := file("obj.json", `{"role": "user", "content": "hi"}`)
	extra := file("extra.json", `[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": []}]`)
	noContent := file("nocontent.json", `[{"role": "user"}]`)
	badContent := file("badcontent.json", `[{"role": "user", "content": ["a"]}]`)
	empty := file("empty.json", `[]`)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--text", "x", "--messages", good}, "alignkit: tokenize: give --text or --messages, not both"},
		{nil, "alignkit: tokenize: give --text or --messages"},
		{[]string{"--messages", good, "--no-bos"}, "alignkit: tokenize: --no-bos applies to --text; with --messages the chat template decides where BOS goes"},
		{[]string{"--text", "x", "--add-generation-prompt"}, "alignkit: tokenize: --add-generation-prompt applies to --messages"},
		{[]string{"--messages", notList}, "alignkit: " + notList + ": want a JSON list of {\"role\", \"content\"} messages: json: cannot unmarshal object into Go value of type []map[string]json.RawMessage"},
		{[]string{"--messages", extra}, "alignkit: " + extra + ": messages[1]: key \"tool_calls\" is not supported (only role and content)"},
		{[]string{"--messages", noContent}, "alignkit: " + noContent + ": messages[0]: no \"content\""},
		{[]string{"--messages", badContent}, "alignkit: " + badContent + ": messages[0]: content: want a string"},
		{[]string{"--messages", empty}, "alignkit: " + empty + ": no messages"},
		{[]string{"--messages", filepath.Join(tmp, "missing.json")}, "alignkit: reading messages: open " + filepath.Join(tmp, "missing.json") + ": no such file or directory"},
	} {
		r := runCLI(t, append([]string{"tokenize", "--model", dir}, c.args...)...)
		if r.Code == 0 || r.ErrorLine() != c.want {
			t.Errorf("%v: exit %d\n got %s\nwant %s", c.args, r.Code, r.ErrorLine(), c.want)
		}
	}
}
