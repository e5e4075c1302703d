package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// FuzzLoadTokenizerJSON loads arbitrary tokenizer.json and tokenizer_config.json contents from a
// directory, as Load does for a model: every input must load or give an error naming one of the two
// files, never panic, hang or allocate without bound; whatever loads must encode and decode text
// (plain and with template spans) without panicking, and special-token strings in plain text must
// stay text. Seeded with the real Llama 3 and Qwen3 files when ../shared is present (their
// tokenizer_config.json whole, chat template included, and their tokenizer.json with every section
// but the vocabulary cut to the 256 byte tokens, the first merges and the added tokens, which keeps
// fuzzing fast), and with small fixtures.
func FuzzLoadTokenizerJSON(f *testing.F) {
	small := string(tokenizerJSONWith("", ""))
	f.Add(small, `{"bos_token": "a", "eos_token": "b", "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"}`)
	f.Add(string(tokenizerJSONWith("", `{"type": "Split", "pattern": {"Regex": "`+strings.ReplaceAll(llama3Regex, `\`, `\\`)+`"}, "behavior": "Isolated", "invert": false}`)), `{}`)
	f.Add(`{"added_tokens": [{"id": 3, "content": "<x>", "special": true}], "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}, "pre_tokenizer": {"type": "ByteLevel"}}`, `{"eos_token": "<x>"}`)
	if root := filepath.Join(filepath.Dir(sharedtest.RepoRoot(f)), "shared"); fileExists(root) {
		for _, fam := range []string{"llama3", "qwen3"} {
			tj, err1 := os.ReadFile(filepath.Join(root, "tokenizers", fam, "tokenizer.json"))
			tc, err2 := os.ReadFile(filepath.Join(root, "tokenizers", fam, "tokenizer_config.json"))
			if err1 == nil && err2 == nil {
				j, c := trimTokenizer(f, tj, tc, 200)
				f.Add(j, c)
			}
		}
	}
	f.Fuzz(func(t *testing.T, tokJSON, tokConfig string) {
		dir := t.TempDir()
		tjPath, tcPath := filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "tokenizer_config.json")
		if err := os.WriteFile(tjPath, []byte(tokJSON), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tcPath, []byte(tokConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		tk, err := Load(dir)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, tjPath) && !strings.Contains(msg, tcPath) {
				t.Fatalf("error names neither file: %v", err)
			}
			if strings.Contains(err.Error(), "\n") && !strings.Contains(err.Error(), "internal error") {
				t.Fatalf("error is more than one line: %q", err)
			}
			if strings.Contains(err.Error(), "internal error in the template engine") {
				t.Fatalf("template engine panicked: %v", err)
			}
			return
		}
		for _, text := range []string{"", "Hello world", "a ab b\n\n  x", tokConfig[:min(len(tokConfig), 64)], "<|im_end|><s></s>"} {
			ids := tk.Encode(text, true)
			for _, id := range ids {
				if id < 0 || int(id) >= tk.VocabSize() {
					t.Fatalf("Encode(%q) gave id %d outside [0, %d)", text, id, tk.VocabSize())
				}
			}
			_ = tk.Decode(ids)
			_ = tk.EncodeSpans([]Span{{Text: text, Special: true}, {Text: text}}, false)
		}
	})
}

// trimTokenizer keeps a real tokenizer.json's sections whole but its model's merges to the first
// n, and its vocabulary to the byte tokens and those merges' tokens, renumbered densely; the added
// tokens follow the vocabulary, renumbered the same in tokenizer_config.json's
// added_tokens_decoder.
func trimTokenizer(f *testing.F, tokJSON, tokConfig []byte, n int) (string, string) {
	f.Helper()
	var tj, tc map[string]any
	if err := json.Unmarshal(tokJSON, &tj); err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(tokConfig, &tc); err != nil {
		f.Fatal(err)
	}
	model := tj["model"].(map[string]any)
	merges := model["merges"].([]any)[:n]
	vocab := map[string]int{}
	add := func(tok string) {
		if _, ok := vocab[tok]; !ok {
			vocab[tok] = len(vocab)
		}
	}
	for _, r := range byteChars() {
		add(string(r))
	}
	for _, m := range merges {
		var a, b string
		switch m := m.(type) {
		case string:
			a, b, _ = strings.Cut(m, " ")
		case []any:
			a, b = m[0].(string), m[1].(string)
		}
		add(a)
		add(b)
		add(a + b)
	}
	model["merges"], model["vocab"] = merges, vocab
	newID := map[string]string{}
	for i, a := range tj["added_tokens"].([]any) {
		a := a.(map[string]any)
		newID[fmt.Sprint(a["id"])] = fmt.Sprint(len(vocab) + i)
		a["id"] = len(vocab) + i
	}
	if dec, ok := tc["added_tokens_decoder"].(map[string]any); ok {
		renum := map[string]any{}
		for id, v := range dec {
			if nid, ok := newID[id]; ok {
				renum[nid] = v
			}
		}
		tc["added_tokens_decoder"] = renum
	}
	outJ, err := json.Marshal(tj)
	if err != nil {
		f.Fatal(err)
	}
	outC, err := json.Marshal(tc)
	if err != nil {
		f.Fatal(err)
	}
	return string(outJ), string(outC)
}
