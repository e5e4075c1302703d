package data

import (
	"reflect"
	"testing"
)

func rowsOf(fields ...map[string]any) []Row {
	rows := make([]Row, len(fields))
	for i, f := range fields {
		rows[i] = Row{Source: "f.jsonl", Index: i, Fields: f}
	}
	return rows
}

func msg(role, content string) map[string]any {
	return map[string]any{"role": role, "content": content}
}

func conv(ms ...map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

func TestConvertErrors(t *testing.T) {
	good := map[string]any{"messages": conv(msg("user", "q"), msg("assistant", "a"))}
	tests := []struct {
		name string
		src  Source
		rows []Row
		want string
	}{
		{"missing mapped column", Source{Path: "f.jsonl", Columns: map[string]string{"messages": "conv"}},
			rowsOf(good), `f.jsonl: row 0: missing column "conv" (mapped from "messages")`},
		{"missing column in a later row", Source{Path: "f.jsonl"},
			rowsOf(good, map[string]any{"other": "x"}), `f.jsonl: row 1: missing column "messages"`},
		{"null column", Source{Path: "f.jsonl"},
			rowsOf(good, map[string]any{"messages": nil}), `f.jsonl: row 1: column "messages" is null`},
		{"wrong type", Source{Path: "f.jsonl"},
			rowsOf(good, good, map[string]any{"messages": "hello"}), `f.jsonl: row 2: column "messages": want a list of messages, got string`},
		{"wrong type mapped", Source{Path: "f.jsonl", Columns: map[string]string{"messages": "conv"}},
			rowsOf(map[string]any{"conv": int64(3)}), `f.jsonl: row 0: column "conv" (mapped from "messages"): want a list of messages, got int`},
		{"empty conversation", Source{Path: "f.jsonl"},
			rowsOf(good, map[string]any{"messages": []any{}}), `f.jsonl: row 1: column "messages": empty conversation`},
		{"unknown role", Source{Path: "f.jsonl"},
			rowsOf(good, good, good, map[string]any{"messages": conv(msg("user", "q"), msg("tool", "x"))}),
			`f.jsonl: row 3: column "messages": message 1: unknown role "tool" (want system, user or assistant)`},
		{"missing content", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"messages": []any{map[string]any{"role": "user"}}}), `f.jsonl: row 0: column "messages": message 0: missing content`},
		{"content not a string", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"messages": []any{map[string]any{"role": "user", "content": []any{}}}}), `f.jsonl: row 0: column "messages": message 0: content: want string, got list`},
		{"message not a struct", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"messages": []any{"hi"}}), `f.jsonl: row 0: column "messages": message 0: want a {role, content} struct, got string`},
		{"text wrong type", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"text": 1.5}), `f.jsonl: row 0: column "text": want string, got float`},
		{"empty text", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"text": ""}), `f.jsonl: row 0: column "text": empty text`},
		{"mixed prompt completion", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"prompt": conv(msg("user", "q")), "completion": "a"}),
			`f.jsonl: row 0: column "completion": want a list of messages like column "prompt", got string`},
		{"unknown format", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"question": "q", "answer": "a"}),
			`f.jsonl: row 0: cannot tell the data format from columns [answer question]: want text, messages, prompt+completion, instruction+output or chosen+rejected (rename with columns:)`},
		{"unknown canonical name", Source{Path: "f.jsonl", Columns: map[string]string{"msgs": "conv"}},
			rowsOf(good), `f.jsonl: columns: unknown column name "msgs" (want one of text, messages, prompt, completion, instruction, input, output, chosen, rejected, margin, score_chosen, score_rejected, rating, trained_turn)`},
		{"rejected kind differs", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"chosen": conv(msg("user", "q"), msg("assistant", "a")), "rejected": "b"}),
			`f.jsonl: row 0: column "rejected": want a list of messages like column "chosen", got string`},
		{"identical pair", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"chosen": conv(msg("user", "q"), msg("assistant", "a")), "rejected": conv(msg("user", "q"), msg("assistant", "a"))}),
			`f.jsonl: row 0: columns "chosen" and "rejected" are identical`},
		{"no shared prompt", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"chosen": conv(msg("user", "q"), msg("assistant", "a")), "rejected": conv(msg("user", "r"), msg("assistant", "a"))}),
			`f.jsonl: row 0: columns "chosen" and "rejected" share no prompt: they differ from message 0`},
		{"answer starts with user", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"chosen": conv(msg("user", "q"), msg("assistant", "a"), msg("user", "x")), "rejected": conv(msg("user", "q"), msg("assistant", "a"), msg("user", "y"))}),
			`f.jsonl: row 0: column "chosen": completion starts with a user message, want assistant`},
		{"answer is all prompt", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"chosen": conv(msg("user", "q")), "rejected": conv(msg("user", "q"), msg("assistant", "b"))}),
			`f.jsonl: row 0: column "chosen": no completion after the shared prompt`},
		{"explicit prompt, answer starts with user", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"prompt": conv(msg("user", "q")), "chosen": conv(msg("user", "q")), "rejected": conv(msg("assistant", "b"))}),
			`f.jsonl: row 0: column "chosen": completion starts with a user message, want assistant`},
		{"hh transcript answer starts with user", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"chosen": "\n\nHuman: q\n\nAssistant: a\n\nHuman: x", "rejected": "\n\nHuman: q\n\nAssistant: a\n\nHuman: y"}),
			`f.jsonl: row 0: column "chosen": completion starts with a user message, want assistant`},
		{"margin wrong type", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"}),
			`f.jsonl: row 0: column "margin": want number, got string`},
		{"trained_turn not assistant", Source{Path: "f.jsonl"},
			rowsOf(map[string]any{"messages": conv(msg("user", "q"), msg("assistant", "a")), "trained_turn": int64(0)}),
			`f.jsonl: row 0: column "trained_turn": 0 is not the index of an assistant message`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Convert(tc.rows, tc.src)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestConvertFormats(t *testing.T) {
	tests := []struct {
		name   string
		src    Source
		fields map[string]any
		format Format
		rec    *Record
		pair   *Pair
	}{
		{
			name: "text", fields: map[string]any{"text": "hello"}, format: FormatText,
			rec: &Record{Format: FormatText, Text: "hello", TrainedTurn: -1},
		},
		{
			name: "mapped conversation with trained turn", format: FormatConversation,
			src:    Source{Columns: map[string]string{"messages": "dialog", "trained_turn": "tt"}},
			fields: map[string]any{"dialog": conv(msg("system", "s"), msg("user", "q"), msg("assistant", "a")), "tt": int64(2)},
			rec:    &Record{Format: FormatConversation, Messages: []Message{mm("system", "s"), mm("user", "q"), mm("assistant", "a")}, TrainedTurn: 2},
		},
		{
			name: "string prompt/completion", format: FormatPromptCompletion,
			fields: map[string]any{"prompt": "2+2=", "completion": "4"},
			rec:    &Record{Format: FormatPromptCompletion, Prompt: "2+2=", Completion: "4", TrainedTurn: -1},
		},
		{
			name: "conversational prompt/completion", format: FormatPromptCompletion,
			fields: map[string]any{"prompt": conv(msg("user", "q")), "completion": conv(msg("assistant", "a"))},
			rec: &Record{Format: FormatPromptCompletion, PromptMessages: []Message{mm("user", "q")},
				CompletionMessages: []Message{mm("assistant", "a")}, TrainedTurn: -1},
		},
		{
			// LLaMA-Factory's alpaca rule: instruction, newline, input.
			name: "alpaca with input", format: FormatAlpaca,
			fields: map[string]any{"instruction": "Translate", "input": "chat", "output": "cat"},
			rec: &Record{Format: FormatPromptCompletion, PromptMessages: []Message{mm("user", "Translate\nchat")},
				CompletionMessages: []Message{mm("assistant", "cat")}, TrainedTurn: -1},
		},
		{
			name: "alpaca without input", format: FormatAlpaca,
			fields: map[string]any{"instruction": "Say hi", "input": "", "output": "hi"},
			rec: &Record{Format: FormatPromptCompletion, PromptMessages: []Message{mm("user", "Say hi")},
				CompletionMessages: []Message{mm("assistant", "hi")}, TrainedTurn: -1},
		},
		{
			name: "explicit string preference with scores", format: FormatPreference,
			fields: map[string]any{"prompt": "Q:", "chosen": " yes", "rejected": " no", "margin": int64(2),
				"score_chosen": 8.5, "score_rejected": 3.0, "rating": int64(4), "id": "x1"},
			pair: &Pair{Prompt: "Q:", Chosen: " yes", Rejected: " no", Margin: 2, HasMargin: true,
				ScoreChosen: 8.5, ScoreRejected: 3, HasScores: true, Ratings: map[string]float64{"rating": 4}},
		},
		{
			// TRL's extract_prompt on strings: the common prefix, moved back
			// by one so the answers keep their leading space.
			name: "implicit string preference", format: FormatPreference,
			fields: map[string]any{"chosen": "The sky is blue.", "rejected": "The sky is green."},
			pair:   &Pair{Prompt: "The sky is", Chosen: " blue.", Rejected: " green."},
		},
		{
			name: "hh-rlhf transcripts", format: FormatPreference,
			fields: map[string]any{
				"chosen":   "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Joke?\n\nAssistant: No.\n\nSecond paragraph.",
				"rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Joke?\n\nAssistant: Sure:\n\nAssistant: a pun.",
			},
			pair: &Pair{Conversational: true,
				PromptMessages:   []Message{mm("user", "Hi"), mm("assistant", "Hello!"), mm("user", "Joke?")},
				ChosenMessages:   []Message{mm("assistant", "No.\n\nSecond paragraph.")},
				RejectedMessages: []Message{mm("assistant", "Sure:\n\na pun.")}},
		},
		{
			// ultrafeedback_binarized shape: a string prompt beside full
			// conversations; the shared messages become the prompt.
			name: "string prompt with conversational answers", format: FormatPreference,
			fields: map[string]any{"prompt": "q",
				"chosen":   conv(msg("system", "s"), msg("user", "q"), msg("assistant", "good")),
				"rejected": conv(msg("system", "s"), msg("user", "q"), msg("assistant", "bad"))},
			pair: &Pair{Conversational: true, PromptMessages: []Message{mm("system", "s"), mm("user", "q")},
				ChosenMessages: []Message{mm("assistant", "good")}, RejectedMessages: []Message{mm("assistant", "bad")}},
		},
		{
			name: "explicit conversational preference", format: FormatPreference,
			fields: map[string]any{"prompt": conv(msg("user", "q")),
				"chosen": conv(msg("assistant", "good")), "rejected": conv(msg("assistant", "bad"))},
			pair: &Pair{Conversational: true, PromptMessages: []Message{mm("user", "q")},
				ChosenMessages: []Message{mm("assistant", "good")}, RejectedMessages: []Message{mm("assistant", "bad")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.src.Path = "f.jsonl"
			ds, err := Convert(rowsOf(tc.fields), tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if ds.Format != tc.format {
				t.Fatalf("format %s, want %s", ds.Format, tc.format)
			}
			if tc.rec != nil {
				tc.rec.Source = "f.jsonl"
				if !reflect.DeepEqual(&ds.Records[0], tc.rec) {
					t.Fatalf("got  %+v\nwant %+v", ds.Records[0], *tc.rec)
				}
			}
			if tc.pair != nil {
				tc.pair.Source = "f.jsonl"
				if !reflect.DeepEqual(&ds.Pairs[0], tc.pair) {
					t.Fatalf("got  %+v\nwant %+v", ds.Pairs[0], *tc.pair)
				}
			}
		})
	}
}

func TestParseHHTranscript(t *testing.T) {
	got := parseHHTranscript("\n\nHuman: a\n\nHuman: b\n\nAssistant:  c \n\nAssistant:")
	want := []Message{mm("user", "a\n\nb"), mm("assistant", "c")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
