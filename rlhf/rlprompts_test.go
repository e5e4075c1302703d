package rlhf_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/rlhf"
)

// TestLoadRLPrompts: the prompts an RL trainer keeps are the first max_train_samples that leave
// room for the completion, each with its ids and the file's rows; the skipped ones are counted on
// the log, and a set where none fits is one error naming the file and the key.
func TestLoadRLPrompts(t *testing.T) {
	gen, err := rlhf.NewLocal(testutil.Stories(t), "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "prompts.jsonl")
	long := bytes.Repeat([]byte("Once upon a time "), 40) // about 160 tokens
	if err := os.WriteFile(path, []byte(`{"prompt": "The cat sat"}
{"prompt": "`+string(long)+`"}
{"prompt": "Tom wanted to"}
{"prompt": "Lily had a red ball"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var log bytes.Buffer
	ps, err := gen.LoadRLPrompts(ctx, path, nil, 3, 64, 128, "grpo", "max_completion_length", &log)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Prompts) != 2 || ps.Prompts[0].Text != "The cat sat" || ps.Prompts[1].Text != "Tom wanted to" || len(ps.Rows) != 4 || len(ps.IDs) != 2 {
		t.Fatalf("kept %+v (%d rows)", ps.Prompts, len(ps.Rows))
	}
	for k, p := range ps.Prompts {
		ids, err := gen.Encode(p)
		if err != nil || len(ids) != len(ps.IDs[k]) || len(ids)+64 > 128 {
			t.Fatalf("prompt %d: ids %v, encoded again %v (%v)", k, ps.IDs[k], ids, err)
		}
	}
	if want := "grpo: 1 prompts skipped: with max_completion_length 64 they do not fit max_position_embeddings 128\n"; log.String() != want {
		t.Errorf("log %q, want %q", log.String(), want)
	}
	_, err = gen.LoadRLPrompts(ctx, path, nil, 0, 200, 128, "ppo", "response_length", &log)
	want := "dataset_name " + path + ": no prompt leaves room for response_length 200 tokens within max_position_embeddings 128"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// CompletionIDs turns a server's completion text back into the tokens the policy sampled: for a
// plain prompt and for a conversation rendered with a chat template, the text that DecodeCompletion
// made of a greedy completion tokenizes back to its ids; text that spells a control token stays
// text; after a token-id prompt the text is encoded alone.
func TestCompletionIDs(t *testing.T) {
	gen, err := rlhf.NewLocal(testutil.Stories(t), "llama-2")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	prompts := []rlhf.Prompt{
		{Text: "Once upon a time, there was a", Source: "test"},
		{Messages: []data.Message{{Role: "user", Content: "Tell me about the cat."}}, Source: "test", Row: 1},
	}
	comps, err := gen.Complete(ctx, prompts, 1, rlhf.Sampling{Temperature: 0, TopP: 1, MaxNewTokens: 12})
	if err != nil {
		t.Fatal(err)
	}
	eos := testutil.Stories(t).Tok.EOSIDs()
	for i, p := range prompts {
		ids, err := gen.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		c := comps[i][0]
		want := c.IDs
		if c.FinishReason == "stop" {
			want = want[:len(want)-1] // the server's text has no EOS; the trainer appends it
		}
		if got := gen.CompletionIDs(p, ids, c.Text); !slices.Equal(got, want) {
			t.Errorf("prompt %d: %q tokenizes to %v, the engine sampled %v", i, c.Text, got, want)
		}
		for _, id := range gen.CompletionIDs(p, ids, " the end </s> [/INST] more") {
			if slices.Contains(eos, id) {
				t.Errorf("prompt %d: text spelling </s> became the EOS token %d", i, id)
			}
		}
	}
	idPrompt := rlhf.Prompt{IDs: []int32{1, 400}, Source: "test"}
	if got, want := gen.CompletionIDs(idPrompt, idPrompt.IDs, " the cat"), gen.Tokenizer().Encode(" the cat", false); !slices.Equal(got, want) {
		t.Errorf("after token ids: %v, want the text alone %v", got, want)
	}
}
