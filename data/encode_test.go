package data

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/sharedtest"
)

func mustTemplate(t *testing.T, spec, bos, eos string) *chat.Template {
	t.Helper()
	tmpl, err := chat.Resolve(spec, "", bos, eos)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func convRecord(msgs ...Message) *Record {
	return &Record{Source: "f.jsonl", Format: FormatConversation, Messages: msgs, TrainedTurn: -1}
}

// TestMasks checks masks by mode and template against expectations derived
// by hand from each template's rendering: the text is the template's output
// (see data/chat's golden tests), and [[ ]] marks the tokens that are loss
// targets. The rules: an assistant turn is trained from its first content
// token through the EOS that ends it; the turn's header (the generation
// prompt) and template text after that EOS are not; a trained turn without
// EOS gets one appended; the first token is never a target.
func TestMasks(t *testing.T) {
	sys := []Message{mm("system", "S"), mm("user", "Q1"), mm("assistant", "A1"), mm("user", "Q2"), mm("assistant", "A2")}
	noSys := sys[1:]
	tests := []struct {
		name     string
		template string
		eos      int32
		rec      *Record
		mode     MaskMode
		want     string
	}{
		{"chatml assistant_only", "chatml", fakeIMEnd, convRecord(sys...), MaskAssistantOnly,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n[[A1<|im_end|>]]\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n[[A2<|im_end|>]]\n"},
		{"chatml default is assistant_only", "chatml", fakeIMEnd, convRecord(sys...), "",
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n[[A1<|im_end|>]]\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n[[A2<|im_end|>]]\n"},
		{"chatml last_turn_only", "chatml", fakeIMEnd, convRecord(sys...), MaskLastTurnOnly,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n[[A2<|im_end|>]]\n"},
		{"chatml completion_only on a conversation", "chatml", fakeIMEnd, convRecord(sys...), MaskCompletionOnly,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n[[A2<|im_end|>]]\n"},
		{"chatml all", "chatml", fakeIMEnd, convRecord(sys...), MaskAll,
			"<|im_start|>[[system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\nA2<|im_end|>\n]]"},
		{"chatml trained_turn", "chatml", fakeIMEnd, &Record{Source: "f.jsonl", Format: FormatConversation, Messages: sys, TrainedTurn: 2}, MaskAssistantOnly,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n[[A1<|im_end|>]]\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\nA2<|im_end|>\n"},
		// A tokenizer whose EOS the template never writes: trained turns get
		// EOS appended after their tokens; the untrained turn does not.
		{"chatml with a foreign EOS", "chatml", fakeEOS, convRecord(sys...), MaskLastTurnOnly,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n[[A2<|im_end|>\n</s>]]"},
		// llama-2: the system prompt is folded into the first [INST]; the
		// answer is " A1 </s>" (leading space, then EOS).
		{"llama-2 assistant_only", "llama-2", fakeEOS, convRecord(sys...), MaskAssistantOnly,
			"<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ1 [/INST][[ A1 </s>]]<s>[INST] Q2 [/INST][[ A2 </s>]]"},
		{"llama-2 last_turn_only", "llama-2", fakeEOS, convRecord(sys...), MaskLastTurnOnly,
			"<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST][[ A2 </s>]]"},
		// mistral v0.1 writes " " after each answer's EOS: not trained.
		{"mistral assistant_only", "mistral", fakeEOS, convRecord(noSys...), MaskAssistantOnly,
			"<s>[INST] Q1 [/INST][[A1</s>]] [INST] Q2 [/INST][[A2</s>]] "},
		{"mistral all", "mistral", fakeEOS, convRecord(noSys...), MaskAll,
			"<s>[[[INST] Q1 [/INST]A1</s> [INST] Q2 [/INST]A2</s> ]]"},
		// zephyr ends user turns with EOS too; only the assistant's is trained.
		{"zephyr assistant_only", "zephyr", fakeEOS, convRecord(sys...), MaskAssistantOnly,
			"<|system|>\nS</s>\n<|user|>\nQ1</s>\n<|assistant|>\n[[A1</s>]]\n<|user|>\nQ2</s>\n<|assistant|>\n[[A2</s>]]\n"},
		{"llama-3 assistant_only", "llama-3", fakeEOT, convRecord(sys...), MaskAssistantOnly,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n[[A1<|eot_id|>]]<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n[[A2<|eot_id|>]]"},
		{"chatml prompt/completion", "chatml", fakeIMEnd, &Record{Source: "f.jsonl", Format: FormatPromptCompletion,
			PromptMessages: []Message{mm("system", "S"), mm("user", "Q")}, CompletionMessages: []Message{mm("assistant", "A")}, TrainedTurn: -1}, "",
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n[[A<|im_end|>]]\n"},
		{"chatml prompt/completion assistant_only trains few-shot turns", "chatml", fakeIMEnd, &Record{Source: "f.jsonl", Format: FormatPromptCompletion,
			PromptMessages: []Message{mm("user", "1"), mm("assistant", "2"), mm("user", "3")}, CompletionMessages: []Message{mm("assistant", "4")}, TrainedTurn: -1}, MaskAssistantOnly,
			"<|im_start|>user\n1<|im_end|>\n<|im_start|>assistant\n[[2<|im_end|>]]\n<|im_start|>user\n3<|im_end|>\n<|im_start|>assistant\n[[4<|im_end|>]]\n"},
		{"text prompt/completion", "", fakeEOS, &Record{Source: "f.jsonl", Format: FormatPromptCompletion, Prompt: "2+2=", Completion: "4", TrainedTurn: -1}, "",
			"<s>2+2=[[4</s>]]"},
		{"text prompt/completion all", "", fakeEOS, &Record{Source: "f.jsonl", Format: FormatPromptCompletion, Prompt: "2+2=", Completion: "4", TrainedTurn: -1}, MaskAll,
			"<s>[[2+2=4</s>]]"},
		{"text", "", fakeEOS, &Record{Source: "f.jsonl", Format: FormatText, Text: "hello", TrainedTurn: -1}, "",
			"<s>[[hello</s>]]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := newFake()
			enc.eos = tc.eos
			var tmpl *chat.Template
			if tc.template != "" {
				tmpl = mustTemplate(t, tc.template, "", "")
			}
			ex, err := NewTokenizer(enc, tmpl).Example(tc.rec, tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if got := show(ex.IDs, ex.Mask); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			if len(ex.Mask) != len(ex.IDs) || ex.Mask[0] {
				t.Fatal("mask must have one entry per id and Mask[0] false")
			}
		})
	}
}

// TestSpecialTextStaysText: special-token strings typed in a message are
// bytes, while the template's own become ids.
func TestSpecialTextStaysText(t *testing.T) {
	enc := newFake()
	enc.eos = fakeIMEnd
	tok := NewTokenizer(enc, mustTemplate(t, "chatml", "", ""))
	ex, err := tok.Example(convRecord(mm("user", "<|im_end|><s>"), mm("assistant", "</s>")), "")
	if err != nil {
		t.Fatal(err)
	}
	count := map[int32]int{}
	for _, id := range ex.IDs {
		count[id]++
	}
	// Template: two <|im_start|> and two <|im_end|>; the contents add none,
	// and no <s> or </s> id at all.
	if count[fakeIMStart] != 2 || count[fakeIMEnd] != 2 || count[fakeBOS] != 0 || count[fakeEOS] != 0 {
		t.Fatalf("special ids %v in %q", count, decode(ex.IDs))
	}
	if got := decode(ex.IDs); got != "<|im_start|>user\n<|im_end|><s><|im_end|>\n<|im_start|>assistant\n</s><|im_end|>\n" {
		t.Fatalf("decoded %q", got)
	}
}

func TestExampleErrors(t *testing.T) {
	breaking, err := chat.Compile("breaking", "{% for m in messages %}{% if loop.last %}LAST:{% endif %}{{ m.content }}|{% endfor %}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	merging := newFake()
	merging.merges = map[string]int32{"ab": 300}
	tests := []struct {
		name string
		enc  *fakeEncoder
		tmpl *chat.Template
		rec  *Record
		mode MaskMode
		want string
	}{
		{"no assistant turn", newFake(), mustTemplate(t, "chatml", "", ""), convRecord(mm("user", "q")), "",
			"f.jsonl: row 0: no token carries loss (mask assistant_only)"},
		{"prefix property broken", newFake(), breaking, convRecord(mm("user", "a"), mm("assistant", "b")), "",
			"f.jsonl: row 0: chat template breaking breaks the prefix property: the tokens of messages[:1] with the generation prompt are not a prefix of the tokens of messages[:2] (first difference at token 0)"},
		{"no template", newFake(), nil, convRecord(mm("user", "q"), mm("assistant", "a")), "",
			"f.jsonl: row 0: conversational data needs a chat template, and none is set (the tokenizer has none; set chat_template)"},
		{"template raises", newFake(), mustTemplate(t, "mistral", "", ""), convRecord(mm("system", "s"), mm("user", "q"), mm("assistant", "a")), "",
			"f.jsonl: row 0: chat template mistral: Conversation roles must alternate user/assistant/user/assistant/..."},
		{"assistant_only on strings", newFake(), nil, &Record{Source: "f.jsonl", Format: FormatPromptCompletion, Prompt: "p", Completion: "c", TrainedTurn: -1}, MaskAssistantOnly,
			"f.jsonl: row 0: mask mode assistant_only needs conversational data; this row's prompt and completion are strings"},
		{"text with a turn mode", newFake(), nil, &Record{Source: "f.jsonl", Format: FormatText, Text: "x", TrainedTurn: -1}, MaskLastTurnOnly,
			"f.jsonl: row 0: mask mode last_turn_only does not apply to text rows (only all)"},
		// BOS, x, a | BOS, x, {ab}: the tokenizer merges across the
		// prompt/completion boundary.
		{"merge across the boundary", merging, nil, &Record{Source: "f.jsonl", Format: FormatPromptCompletion, Prompt: "xa", Completion: "b", TrainedTurn: -1}, "",
			"f.jsonl: row 0: the tokens of the prompt are not a prefix of the tokens of prompt+completion (first difference at token 2): the tokenizer merges text across the boundary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTokenizer(tc.enc, tc.tmpl).Example(tc.rec, tc.mode)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestPairExamples(t *testing.T) {
	enc := newFake()
	enc.eos = fakeIMEnd
	tok := NewTokenizer(enc, mustTemplate(t, "chatml", "", ""))
	p := &Pair{Source: "f.jsonl", Row: 3, Conversational: true, PromptMessages: []Message{mm("user", "Q")},
		ChosenMessages: []Message{mm("assistant", "good")}, RejectedMessages: []Message{mm("assistant", "bad")}, Margin: 1.5, HasMargin: true}
	ex, err := tok.PairExample(p)
	if err != nil {
		t.Fatal(err)
	}
	// The answers end at their EOS (<|im_end|>); chatml's "\n" after it is
	// template glue and is dropped.
	if decode(ex.Prompt) != "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n" || decode(ex.Chosen) != "good<|im_end|>" ||
		decode(ex.Rejected) != "bad<|im_end|>" || ex.Margin != 1.5 || !ex.HasMargin || ex.Row != 3 {
		t.Fatalf("%q %q %q %+v", decode(ex.Prompt), decode(ex.Chosen), decode(ex.Rejected), ex)
	}
	s := &Pair{Source: "f.jsonl", Prompt: "Q:", Chosen: " yes", Rejected: " no"}
	ex, err = NewTokenizer(newFake(), nil).PairExample(s)
	if err != nil {
		t.Fatal(err)
	}
	if decode(ex.Prompt) != "<s>Q:" || decode(ex.Chosen) != " yes</s>" || decode(ex.Rejected) != " no</s>" {
		t.Fatalf("%q %q %q", decode(ex.Prompt), decode(ex.Chosen), decode(ex.Rejected))
	}
}

// TestSharedDataTokenizes runs every real SFT file through each built-in
// template: the prefix property holds on all rows, each example decodes to
// exactly the template's rendering, and exactly one EOS per assistant
// message is trained (assistant_only).
func TestSharedDataTokenizes(t *testing.T) {
	dir := filepath.Join(sharedtest.Dir(t), "data")
	eosOf := map[string]int32{"chatml": fakeIMEnd, "llama-2": fakeEOS, "zephyr": fakeEOS, "llama-3": fakeEOT}
	for _, file := range []string{"no_robots_test_sft.parquet", "capybara_test.parquet", "alpaca_en_demo.parquet"} {
		ds, err := Load(Source{Path: filepath.Join(dir, file)})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"chatml", "llama-2", "zephyr", "llama-3"} {
			if testing.Short() && name != "chatml" {
				continue
			}
			enc := newFake()
			enc.eos = eosOf[name]
			tmpl := mustTemplate(t, name, "", "")
			tok := NewTokenizer(enc, tmpl)
			for i := range ds.Records {
				rec := &ds.Records[i]
				ex, err := tok.Example(rec, MaskAssistantOnly)
				if err != nil {
					t.Fatalf("%s with %s: %v", file, name, err)
				}
				msgs := rec.Messages
				if msgs == nil {
					msgs = append(append([]Message{}, rec.PromptMessages...), rec.CompletionMessages...)
				}
				text, err := tmpl.Render(msgs, false)
				if err != nil {
					t.Fatal(err)
				}
				if decode(ex.IDs) != text {
					t.Fatalf("%s with %s, row %d: tokens decode to a different text", file, name, rec.Row)
				}
				assistants, trainedEOS := 0, 0
				for _, m := range msgs {
					if m.Role == "assistant" {
						assistants++
					}
				}
				for j, id := range ex.IDs {
					if id == enc.eos && ex.Mask[j] {
						trainedEOS++
					}
				}
				if trainedEOS != assistants {
					t.Fatalf("%s with %s, row %d: %d trained EOS for %d assistant messages", file, name, rec.Row, trainedEOS, assistants)
				}
			}
		}
	}
}

// TestSharedPairsTokenize tokenizes the real preference files.
func TestSharedPairsTokenize(t *testing.T) {
	dir := filepath.Join(sharedtest.Dir(t), "data")
	for _, file := range []string{"hh_rlhf_harmless_base_test.parquet", "orca_dpo_pairs_validation_chat.parquet"} {
		ds, err := Load(Source{Path: filepath.Join(dir, file)})
		if err != nil {
			t.Fatal(err)
		}
		enc := newFake()
		tok := NewTokenizer(enc, mustTemplate(t, "llama-2", "", ""))
		pairs, err := tok.PairExamples(context.Background(), ds.Pairs)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pairs {
			// llama-2 answers are " " + stripped content + " </s>".
			c, r := decode(p.Chosen), decode(p.Rejected)
			if !strings.HasPrefix(c, " ") || !strings.HasSuffix(c, " </s>") || !strings.HasSuffix(r, " </s>") ||
				!strings.HasSuffix(decode(p.Prompt), " [/INST]") {
				t.Fatalf("%s row %d: %q | %q | %q", file, p.Row, decode(p.Prompt), c, r)
			}
		}
	}
}

// TestOpeningAssistantTurn: a conversation may open with the assistant; its
// header comes from rendering the empty conversation with the generation
// prompt.
func TestOpeningAssistantTurn(t *testing.T) {
	enc := newFake()
	enc.eos = fakeIMEnd
	ex, err := NewTokenizer(enc, mustTemplate(t, "chatml", "", "")).Example(convRecord(mm("assistant", "Hi!"), mm("user", "Yo")), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := show(ex.IDs, ex.Mask), "<|im_start|>assistant\n[[Hi!<|im_end|>]]\n<|im_start|>user\nYo<|im_end|>\n"; got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// EncodeRendered turns special-token strings into ids only in the template's own text: the same
// "</s>" inside a message's content stays bytes.
func TestEncodeRendered(t *testing.T) {
	enc := newFake()
	cases := []struct {
		name string
		segs []chat.Segment
		want []int32
	}{
		{"template text", []chat.Segment{{Text: "</s>", Message: -1}}, []int32{fakeEOS}},
		{"message content", []chat.Segment{{Text: "</s>", Message: 0}},
			[]int32{'<' + byteOffset, '/' + byteOffset, 's' + byteOffset, '>' + byteOffset}},
		{"both, no BOS added", []chat.Segment{{Text: "<s>", Message: -1}, {Text: "<s>", Message: 0}},
			[]int32{fakeBOS, '<' + byteOffset, 's' + byteOffset, '>' + byteOffset}},
		// Template text that may also be message text (a tag a content holds) is encoded as text.
		{"plain template text", []chat.Segment{{Text: "</s>", Message: -1, Plain: true}},
			[]int32{'<' + byteOffset, '/' + byteOffset, 's' + byteOffset, '>' + byteOffset}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := EncodeRendered(enc, tc.segs); !slices.Equal(got, tc.want) {
				t.Fatalf("EncodeRendered = %v, want %v", got, tc.want)
			}
		})
	}
}

// cancelAfter is an encoder that ends its context, with a cause, on its n-th call: a signal that
// arrives while a dataset is being tokenized.
type cancelAfter struct {
	*fakeEncoder
	calls, n int
	cancel   context.CancelCauseFunc
}

func (c *cancelAfter) EncodeChat(parts []Span, addBOS bool) []int32 {
	if c.calls++; c.calls == c.n {
		c.cancel(errors.New("stopped by SIGINT"))
	}
	return c.fakeEncoder.EncodeChat(parts, addBOS)
}

// Examples and PairExamples stop at the first row checkpoint (every CheckEvery rows) after their
// context ends, with an error that names the file and the rows done, reads as the cause and is
// context.Canceled for errors.Is.
func TestExamplesStopWithContext(t *testing.T) {
	recs := make([]Record, 1000)
	pairs := make([]Pair, 1000)
	for i := range recs {
		recs[i] = Record{Source: "big.jsonl", Row: i, Format: FormatText, Text: "once upon a time"}
		pairs[i] = Pair{Source: "big.jsonl", Row: i, Prompt: "Q:", Chosen: " yes", Rejected: " no"}
	}
	for _, c := range []struct {
		name string
		run  func(context.Context, *Tokenizer) error
	}{
		{"Examples", func(ctx context.Context, tok *Tokenizer) error {
			_, err := tok.Examples(ctx, recs, MaskAll)
			return err
		}},
		{"PairExamples", func(ctx context.Context, tok *Tokenizer) error { _, err := tok.PairExamples(ctx, pairs); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The encoder calls a row takes, counted over a whole run with a live context.
			all := &cancelAfter{fakeEncoder: newFake()}
			if err := c.run(context.Background(), NewTokenizer(all, nil)); err != nil {
				t.Fatal(err)
			}
			perRow := all.calls / 1000
			// Cancelled during row 299: the check before row 512 sees it, and no row after it is
			// tokenized.
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			enc := &cancelAfter{fakeEncoder: newFake(), n: 299*perRow + 1, cancel: cancel}
			err := c.run(ctx, NewTokenizer(enc, nil))
			want := "tokenizing big.jsonl: stopped by SIGINT after 512 of 1000 rows"
			if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v (errors.Is Canceled: %v), want %s", err, errors.Is(err, context.Canceled), want)
			}
			if enc.calls != 512*perRow {
				t.Errorf("%d encoder calls, want the %d of 512 rows", enc.calls, 512*perRow)
			}
		})
	}
}
