package rlhf_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/rlhf"
)

// Prompts come from every kind of file the other stages use, each checked against the file's own
// row 0 read independently.
func TestLoadPrompts(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "data")
	row0 := func(name string) map[string]any {
		rows, err := data.ReadParquet(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return rows[0].Fields
	}
	msgs := func(v any) []chat.Message {
		var out []chat.Message
		for _, m := range v.([]any) {
			mm := m.(map[string]any)
			out = append(out, chat.Message{Role: mm["role"].(string), Content: mm["content"].(string)})
		}
		return out
	}
	noRobots, alpaca, orca, capy := row0("no_robots_test_sft.parquet"), row0("alpaca_en_demo.parquet"), row0("orca_dpo_pairs_validation_chat.parquet"), row0("capybara_test.parquet")
	capyMsgs := msgs(capy["messages"])
	lastAssistant := len(capyMsgs) - 1
	for capyMsgs[lastAssistant].Role != "assistant" {
		lastAssistant--
	}
	cases := []struct {
		file    string
		columns map[string]string
		rows    int
		want    rlhf.Prompt
	}{
		// no_robots has a prompt string and a messages conversation: the prompt column by default,
		// the conversation (without its final answer) when columns names messages.
		{"no_robots_test_sft.parquet", nil, 500, rlhf.Prompt{Text: noRobots["prompt"].(string)}},
		{"no_robots_test_sft.parquet", map[string]string{"messages": "messages"}, 500, rlhf.Prompt{Messages: msgs(noRobots["messages"])[:len(msgs(noRobots["messages"]))-1]}},
		// alpaca: the instruction (this row has no input) as a user turn.
		{"alpaca_en_demo.parquet", nil, 999, rlhf.Prompt{Messages: []chat.Message{{Role: "user", Content: alpaca["instruction"].(string)}}}},
		// orca (ultrafeedback_binarized shape): a prompt string beside conversational answers, whose
		// shared turns (all but the answer) are the prompt.
		{"orca_dpo_pairs_validation_chat.parquet", nil, 284, rlhf.Prompt{Messages: msgs(orca["chosen"])[:len(msgs(orca["chosen"]))-1]}},
		// ... or its prompt string, when columns names it.
		{"orca_dpo_pairs_validation_chat.parquet", map[string]string{"prompt": "prompt"}, 284, rlhf.Prompt{Text: orca["prompt"].(string)}},
		// capybara: a multi-turn conversation up to its last answer.
		{"capybara_test.parquet", nil, 200, rlhf.Prompt{Messages: capyMsgs[:lastAssistant]}},
		// hh-rlhf: the transcript both answers share, parsed into turns (the prompt ends with the user).
		{"hh_rlhf_harmless_base_test.parquet", nil, 2312, rlhf.Prompt{}},
	}
	for _, tc := range cases {
		ps, err := rlhf.LoadPrompts(filepath.Join(dir, tc.file), tc.columns)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		got := ps[0]
		got.Source, got.Row = "", 0
		if len(ps) != tc.rows {
			t.Errorf("%s: %d prompts, want %d", tc.file, len(ps), tc.rows)
		}
		if tc.file == "hh_rlhf_harmless_base_test.parquet" {
			chosen := row0(tc.file)["chosen"].(string)
			last := got.Messages[len(got.Messages)-1]
			if last.Role != "user" || !strings.Contains(chosen, "Human: "+last.Content) || got.Messages[0].Role != "user" {
				t.Errorf("hh prompt %+v from %q", got.Messages, chosen)
			}
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %v: %+v\nwant %+v", tc.file, tc.columns, got, tc.want)
		}
	}
}

// Prompts the local engine has no room to answer are skipped and counted, not fatal.
func TestLongPromptsSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prompts.jsonl")
	long := strings.Repeat("the dog ran to the big red ball and ", 120)
	content := `{"prompt": "Once upon a time"}` + "\n" + `{"prompt": "` + long + `"}` + "\n" + `{"prompt": "Tom was happy"}` + "\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := sampleConfig(t)
	cfg.Data.DatasetName = path
	var log bytes.Buffer
	res, err := rlhf.RunSample(context.Background(), cfg, &log)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Prompts) != 2 || res.Prompts[1].Text != "Tom was happy" ||
		!strings.Contains(log.String(), "skipped 1 of 3 prompts longer than 500 tokens (max_position_embeddings 512 - max_new_tokens 12)") {
		t.Errorf("prompts %d, log:\n%s", len(res.Prompts), log.String())
	}
}

// Bad prompt files fail on the first bad row with one line naming the file, the row and the column.
func TestLoadPromptsErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		jsonl   string
		columns map[string]string
		want    string // %s is the file
	}{
		{"empty mapping", `{"prompt": "x"}`, map[string]string{"prompt": ""}, `%s: columns: "prompt" maps to an empty column name`},
		{"blank prompt", `{"prompt": "  "}`, nil, `%s: row 0: column "prompt": empty prompt`},
		{"number prompt", `{"prompt": 3}`, nil, `%s: row 0: column "prompt": want a string or a list of messages, got int64`},
		{"null prompt", `{"prompt": "x"}` + "\n" + `{"prompt": null}`, nil, `%s: row 1: column "prompt" is null`},
		{"empty conversation", `{"prompt": []}`, nil, `%s: row 0: column "prompt": empty conversation`},
		{"message not a struct", `{"prompt": [1]}`, nil, `%s: row 0: column "prompt": message 0: want a {role, content} struct, got int64`},
		{"bad role", `{"prompt": [{"role": "bot", "content": "x"}]}`, nil, `%s: row 0: column "prompt": message 0: role bot: want system, user or assistant`},
		{"bad content", `{"prompt": [{"role": "user", "content": 1}]}`, nil, `%s: row 0: column "prompt": message 0: content: want a string, got int64`},
		{"mixed kinds", `{"prompt": "x"}` + "\n" + `{"prompt": [{"role": "user", "content": "y"}]}`, nil,
			`%s: row 1: a conversational prompt, but row 0's is text: a file's prompts are all text or all conversations`},
	}
	for i, tc := range cases {
		path := filepath.Join(dir, fmt.Sprintf("p%d.jsonl", i))
		if err := os.WriteFile(path, []byte(tc.jsonl+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := rlhf.LoadPrompts(path, tc.columns)
		if want := strings.Replace(tc.want, "%s", path, 1); err == nil || err.Error() != want {
			t.Errorf("%s: error %v\nwant %s", tc.name, err, want)
		}
	}
}
