package data

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// sharedTemplate compiles the chat template of a real tokenizer_config.json in ../shared.
func sharedTemplate(t *testing.T, family, bos, eos string) *chat.Template {
	t.Helper()
	path := sharedtest.Path(t, "tokenizers", family, "tokenizer_config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.Compile(path, cfg.ChatTemplate, bos, eos)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// TestModelTemplateMasks checks assistant masks with Llama 3's and Qwen3's real templates, derived by
// hand from their renderings ([[ ]] marks loss targets). Qwen3 writes an empty <think></think>
// block only into assistant turns after the last user message, so rendering the conversation turn
// by turn breaks the prefix property; the tokens are then those of the whole conversation as
// rendered once, and each assistant turn is trained from after its header through the EOS that
// closes it.
func TestModelTemplateMasks(t *testing.T) {
	sys := []Message{mm("system", "S"), mm("user", "Q1"), mm("assistant", "A1"), mm("user", "Q2"), mm("assistant", "A2")}
	qwen := sharedTemplate(t, "qwen3", "", "<|im_end|>")
	llama := sharedTemplate(t, "llama3", "<|begin_of_text|>", "<|eot_id|>")
	for _, tc := range []struct {
		name string
		tmpl *chat.Template
		eos  int32
		msgs []Message
		mode MaskMode
		want string
	}{
		{"llama3 assistant_only", llama, fakeEOT, sys, MaskAssistantOnly,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n[[A1<|eot_id|>]]<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n[[A2<|eot_id|>]]"},
		{"qwen3 assistant_only", qwen, fakeIMEnd, sys, MaskAssistantOnly,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n[[A1<|im_end|>]]\n" +
				"<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n[[<think>\n\n</think>\n\nA2<|im_end|>]]\n"},
		{"qwen3 last_turn_only", qwen, fakeIMEnd, sys, MaskLastTurnOnly,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n" +
				"<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n[[<think>\n\n</think>\n\nA2<|im_end|>]]\n"},
		{"qwen3 ending with a user turn", qwen, fakeIMEnd, sys[:4], MaskAssistantOnly,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n[[A1<|im_end|>]]\n" +
				"<|im_start|>user\nQ2<|im_end|>\n"},
		// Reasoning in the contents: the earlier turn's is dropped by the template, the last turn's
		// is trained with its answer.
		{"qwen3 thinking", qwen, fakeIMEnd, []Message{mm("system", "S"), mm("user", "Q1"), mm("assistant", "<think>\nR1\n</think>\n\nA1"),
			mm("user", "Q2"), mm("assistant", "<think>\nR2 r2\n</think>\n\nA2 a2")}, MaskAssistantOnly,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n[[A1<|im_end|>]]\n" +
				"<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n[[<think>\nR2 r2\n</think>\n\nA2 a2<|im_end|>]]\n"},
		{"qwen3 all", qwen, fakeIMEnd, sys, MaskAll,
			"<|im_start|>[[system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n" +
				"<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA2<|im_end|>\n]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := newFake()
			enc.eos = tc.eos
			ex, err := NewTokenizer(enc, tc.tmpl).Example(convRecord(tc.msgs...), tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if got := show(ex.IDs, ex.Mask); got != tc.want {
				t.Errorf("\n got %q\nwant %q", got, tc.want)
			}
			// The tokens are the whole conversation as the template renders it.
			text, err := tc.tmpl.Render(tc.msgs, false)
			if err != nil {
				t.Fatal(err)
			}
			if decode(ex.IDs) != text {
				t.Errorf("tokens decode to %q, the template renders %q", decode(ex.IDs), text)
			}
		})
	}
}

// realEncoder adapts a model/tokenizer Tokenizer to Encoder, as lm.Encoder does.
type realEncoder struct{ tok *tokenizer.Tokenizer }

func (e realEncoder) EncodeChat(parts []Span, addBOS bool) []int32 {
	spans := make([]tokenizer.Span, len(parts))
	for i, p := range parts {
		spans[i] = tokenizer.Span{Text: p.Text, Special: p.Special}
	}
	return e.tok.EncodeSpans(spans, addBOS)
}
func (e realEncoder) BOS() int32           { return e.tok.BOS() }
func (e realEncoder) EOS() int32           { return e.tok.EOS() }
func (e realEncoder) AddBOS() bool         { return e.tok.AddBOS() }
func (e realEncoder) ChatTemplate() string { return e.tok.ChatTemplate() }

// TestRealTokenizerMasks runs the real Llama 3 and Qwen3 tokenizers and templates over
// multi-turn conversations from ../shared's no_robots and capybara: the trained tokens of each row
// decode to exactly its assistant messages' contents (Qwen3's last one after its empty think
// block), each followed by the turn's EOS.
func TestRealTokenizerMasks(t *testing.T) {
	if testing.Short() {
		t.Skip("loads two 150k-token vocabularies")
	}
	ds, err := Load(Source{Path: sharedtest.Path(t, "data", "capybara_test.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range []string{"llama3", "qwen3"} {
		tok, err := tokenizer.Load(sharedtest.Path(t, "tokenizers", family))
		if err != nil {
			t.Fatal(err)
		}
		pieces, _, _ := tok.Pieces()
		eosText := pieces[tok.EOS()]
		tmpl := sharedTemplate(t, family, pieces[max(tok.BOS(), 0)], eosText)
		dt := NewTokenizer(realEncoder{tok}, tmpl)
		for i := range ds.Records[:40] {
			rec := &ds.Records[i]
			ex, err := dt.Example(rec, MaskAssistantOnly)
			if err != nil {
				t.Fatalf("%s: %v", family, err)
			}
			var got, want strings.Builder
			for j, id := range ex.IDs {
				if !ex.Mask[j] {
					continue
				}
				if id == tok.EOS() {
					got.WriteString("<EOS>")
				} else {
					got.WriteString(tok.DecodeToken(id))
				}
			}
			assistants := 0
			for _, m := range rec.Messages {
				if m.Role == "assistant" {
					assistants++
				}
			}
			seen := 0
			for k, m := range rec.Messages {
				if m.Role != "assistant" {
					continue
				}
				seen++
				c := m.Content
				if family == "llama3" {
					c = strings.TrimSpace(c) // its template trims contents
				}
				if family == "qwen3" && seen == assistants && k == len(rec.Messages)-1 {
					c = "<think>\n\n</think>\n\n" + strings.TrimLeft(c, "\n")
				}
				want.WriteString(c + "<EOS>")
			}
			if got.String() != want.String() {
				t.Fatalf("%s row %d: trained text\n got %q\nwant %q", family, rec.Row, got.String(), want.String())
			}
		}
	}
}
