package rlhf_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

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
