package dpo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/train"
)

func msgs(roleContent ...string) []map[string]any {
	var out []map[string]any
	for i := 0; i+1 < len(roleContent); i += 2 {
		out = append(out, map[string]any{"role": roleContent[i], "content": roleContent[i+1]})
	}
	return out
}

// runErr runs DPO on rows and returns the error; a failed run must leave no output_dir behind.
func runErr(t *testing.T, c Config) error {
	t.Helper()
	err := runHooked(c, io.Discard)
	if err == nil {
		t.Fatal("run succeeded, want an error")
	}
	if _, serr := os.Stat(c.OutputDir); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("failed run left %s behind (%v)", c.OutputDir, serr)
	}
	return err
}

// TestBadRows: rows DPO cannot train on fail the run with one line naming the file, the row and
// the column, before anything is written.
func TestBadRows(t *testing.T) {
	sharedDir(t)
	long := "Once upon a time there was a little girl named Lily who loved to play outside in the park with her friends every single day."
	convLast := []map[string]any{
		{"prompt": msgs("user", "Tell me a story."), "chosen": msgs("assistant", "Once upon a time.", "user", "More!"), "rejected": msgs("assistant", "No.")},
		{"prompt": msgs("user", "Tell me a joke."), "chosen": msgs("assistant", "A cat sat."), "rejected": msgs("assistant", "No.")},
	}
	cases := []struct {
		name    string
		rows    []map[string]any
		columns map[string]string
		want    string // %s is the file
	}{
		{"identical text answers", []map[string]any{
			{"prompt": "Tell me a story.", "chosen": " A cat sat.", "rejected": " A cat sat."},
			{"prompt": "Tell me a joke.", "chosen": " A dog ran.", "rejected": " A dog ran."},
		}, nil, `%s: row 0: columns "chosen" and "rejected" are identical: DPO needs two different answers to prefer one over the other`},
		{"identical message answers", []map[string]any{
			{"prompt": msgs("user", "Hi"), "chosen": msgs("assistant", "Hello."), "rejected": msgs("assistant", "Hello.")},
		}, nil, `%s: row 0: columns "chosen" and "rejected" are identical: DPO needs two different answers to prefer one over the other`},
		{"identical implicit-prompt conversations", []map[string]any{
			{"chosen": msgs("user", "Hi", "assistant", "Hello."), "rejected": msgs("user", "Hi", "assistant", "Hello.")},
		}, nil, `%s: row 0: columns "chosen" and "rejected" are identical`},
		{"identical answers after a good row", []map[string]any{
			{"prompt": "Tell me a story.", "chosen": " A cat sat.", "rejected": " No."},
			{"prompt": "Tell me a joke.", "chosen": " A dog ran.", "rejected": " A dog ran."},
		}, nil, `%s: row 1: columns "chosen" and "rejected" are identical: DPO needs two different answers to prefer one over the other`},
		{"last message from the user", convLast, nil,
			`%s: row 0: column "chosen": the last message is from the user, want assistant: the compared answer must end the conversation`},
		{"last message from the user, mapped column", []map[string]any{
			{"prompt": msgs("user", "Hi"), "good": msgs("assistant", "Hello."), "rejected": msgs("assistant", "Go.", "user", "Why?")},
		}, map[string]string{"chosen": "good"},
			`%s: row 0: column "rejected": the last message is from the user, want assistant: the compared answer must end the conversation`},
		{"answer that starts with a user turn", []map[string]any{
			{"prompt": msgs("user", "Hi"), "chosen": msgs("user", "Hello."), "rejected": msgs("assistant", "Go.")},
		}, nil, `%s: row 0: column "chosen": completion starts with a user message, want assistant`},
		{"preference file expected", []map[string]any{{"messages": msgs("user", "Hi", "assistant", "Hello.")}}, nil,
			`%s: format conversation: DPO needs preference rows (chosen and rejected columns, with or without prompt)`},
		{"every prompt too long", []map[string]any{
			{"prompt": long, "chosen": " Yes.", "rejected": " No."},
			{"prompt": long + " Again.", "chosen": " Yes.", "rejected": " No."},
		}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := storiesConfig(t, "orca_dpo_pairs_validation_chat.parquet")
			c.Data.DatasetName = testutil.WriteJSONL(t, "bad.jsonl", tc.rows...)
			c.Data.Columns = tc.columns
			want := fmt.Sprintf(tc.want, c.Data.DatasetName)
			if tc.want == "" {
				// The prompt's length is what the tokenizer makes of it: BOS plus its pieces.
				c.Data.MaxLength, c.MaxPromptLength = 16, DefaultMaxPromptLength
				ck, err := checkpoint.Open(c.ModelNameOrPath)
				if err != nil {
					t.Fatal(err)
				}
				n := len(lm.Encoder(ck.Tok).EncodeChat([]data.Span{{Text: long}}, true))
				want = fmt.Sprintf("%s: row 0: the prompt is %d tokens, which leaves no room for the answers in max_length 16, and so does every other row's: raise max_length or lower max_prompt_length", c.Data.DatasetName, n)
			}
			if err := runErr(t, c); err.Error() != want {
				t.Errorf("error\n%v\nwant\n%s", err, want)
			}
		})
	}
}

// TestPromptTooLongRealData: on orca every prompt (system message and question, in the llama-2
// template) is longer than 32 tokens, so max_length 32 with TRL's max_prompt_length 512 leaves no row
// to train on; the error names the first row and its real prompt length. Left at its default,
// max_prompt_length is 16 here and the run trains.
func TestPromptTooLongRealData(t *testing.T) {
	c := storiesConfig(t, "orca_dpo_pairs_validation_chat.parquet")
	c.Data.MaxLength, c.MaxPromptLength = 32, DefaultMaxPromptLength
	ck, err := checkpoint.Open(c.ModelNameOrPath)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := lm.ChatTokenizer(ck.Tok, "llama-2")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Load(data.Source{Path: c.Data.DatasetName})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := tok.PairExample(&ds.Pairs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s: row 0: the prompt is %d tokens, which leaves no room for the answers in max_length 32, and so does every other row's: raise max_length or lower max_prompt_length", c.Data.DatasetName, len(ex.Prompt))
	if err := runErr(t, c); err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
	c.MaxPromptLength = 0
	c.Data.MaxTrainSamples = 4
	c.MaxSteps = 1
	if err := runHooked(c, io.Discard); err != nil {
		t.Errorf("max_prompt_length left at its default: %v", err)
	}
}

// TestTruncationReport: a row whose prompt fills max_length is dropped and counted, prompts longer
// than max_prompt_length are cut from the left and answers that do not fit are cut, and the log
// reports each count; the run goes on with the remaining pairs.
func TestTruncationReport(t *testing.T) {
	c := storiesConfig(t, "orca_dpo_pairs_validation_chat.parquet")
	long := strings.Repeat("Once upon a time there was a cat. ", 8)
	rows := []map[string]any{
		{"prompt": "A story.", "chosen": " The cat sat on the mat and was happy all day long.", "rejected": " No."},
		{"prompt": long, "chosen": " Yes.", "rejected": " No."},
		{"prompt": "Once upon a time there was a big dog.", "chosen": " It ran.", "rejected": " It slept."},
	}
	c.Data.DatasetName = testutil.WriteJSONL(t, "mixed.jsonl", rows...)
	c.Data.MaxLength, c.MaxPromptLength = 20, 100
	c.MaxSteps = 1
	var log bytes.Buffer
	var n counter
	task, err := newTestTask(c, &log, n.option())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := task.Stats()
	// Row 1's prompt is far over 20 tokens: dropped. Row 2's prompt fits, its answers too. Row 0's
	// chosen answer does not fit in 20 tokens with its prompt: cut.
	if task.NumExamples() != 2 || st.AnswerTruncated != 1 || st.PromptTruncated != 0 {
		t.Errorf("%d pairs, stats %+v: want 2 pairs, 1 answer truncated", task.NumExamples(), st)
	}
	want := fmt.Sprintf("dpo: train: 2 pairs (1 dropped: prompt fills max_length), 0 prompts truncated from the left (0 tokens), 1 answers truncated (%d tokens), 1 batches", st.AnswerTruncatedTokens)
	if !strings.Contains(log.String(), want) {
		t.Errorf("log\n%s\nwant a line\n%s", log.String(), want)
	}

	// With max_prompt_length 8 the long prompt is cut from the left instead and kept.
	c.MaxPromptLength = 8
	log.Reset()
	if task, err = newTestTask(c, &log); err != nil {
		t.Fatal(err)
	}
	st, _ = task.Stats()
	if task.NumExamples() != 3 || st.PromptTruncated < 2 {
		t.Errorf("max_prompt_length 8: %d pairs, stats %+v: want 3 pairs, at least 2 prompts cut", task.NumExamples(), st)
	}
	if !strings.Contains(log.String(), "dpo: train: 3 pairs (0 dropped: prompt fills max_length), "+fmt.Sprint(st.PromptTruncated)+" prompts truncated from the left") {
		t.Errorf("log %q", log.String())
	}
}

// TestConfigErrors: keys that cannot work together are refused with one line naming the key.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"no model", func(c *Config) { c.ModelNameOrPath = "" }, "model_name_or_path: must be set (an HF model directory or a .gguf file)"},
		{"packing", func(c *Config) { c.Data.Packing = true }, "packing: DPO does not pack pairs (each pair is a chosen row and a rejected row); remove the key"},
		{"loss_mask", func(c *Config) { c.Data.LossMask = "all" }, `loss_mask "all": DPO scores the answers only; remove the key`},
		{"loss type", func(c *Config) { c.LossType = "kto" }, `loss_type "kto": want one of sigmoid, robust, ipo, hinge`},
		{"smoothing ipo", func(c *Config) { c.LossType, c.LabelSmoothing = IPO, 0.1 }, `label_smoothing 0.1: loss_type "ipo" does not use it (only sigmoid and robust do)`},
		{"negative beta", func(c *Config) { c.Beta = -1 }, "beta -1: want a finite value > 0"},
		{"negative prompt length", func(c *Config) { c.MaxPromptLength = -1 }, "max_prompt_length: must be >= 0 (0: the default, min(512, max_length/2)), got -1"},
		{"reference free with ref", func(c *Config) { c.ReferenceFree, c.RefModelNameOrPath = true, "ref" },
			"ref_model_name_or_path ref: reference_free uses no reference model; set one or the other"},
		{"reference free precompute", func(c *Config) { c.ReferenceFree, c.PrecomputeRefLogProbs = true, true },
			"precompute_ref_log_probs: reference_free has no reference log-probs to precompute; set one or the other"},
		{"no dataset", func(c *Config) { c.Data.DatasetName = "" }, "dataset_name: must be set (a .parquet, .jsonl or .json file)"},
	}
	for _, tc := range cases {
		c := Config{ModelNameOrPath: "m", Data: data.Args{DatasetName: "d.jsonl"}}
		c.OutputDir = "out"
		tc.mod(&c)
		if err := c.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestBadReference: a reference that is not there, or that scores another vocabulary, is refused.
func TestBadReference(t *testing.T) {
	c := storiesConfig(t, "orca_dpo_pairs_validation_chat.parquet")
	c.RefModelNameOrPath = filepath.Join(t.TempDir(), "missing")
	err := runErr(t, c)
	if !strings.HasPrefix(err.Error(), "ref_model_name_or_path: ") || !strings.Contains(err.Error(), c.RefModelNameOrPath) {
		t.Errorf("error %v, want one naming ref_model_name_or_path and the path", err)
	}

	// A tiny random Llama with Llama 2's 32000-token vocabulary.
	other := filepath.Join(t.TempDir(), "llama2-vocab")
	spec := checkpoint.InitSpec{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", HiddenSize: 8, IntermediateSize: 16,
		NumHiddenLayers: 1, NumAttentionHeads: 1, RMSNormEps: 1e-5, MaxPositionEmbeddings: 64, TieWordEmbeddings: true,
		Seed: 1, Tokenizer: filepath.Join(sharedDir(t), "tokenizers", "llama2", "tokenizer.model"),
	}
	if _, err := checkpoint.Init(spec, other); err != nil {
		t.Fatal(err)
	}
	c.RefModelNameOrPath = other
	want := fmt.Sprintf("ref_model_name_or_path %s: a vocabulary of 32000 tokens, the policy %s has 512: the reference must score the same token ids", other, c.ModelNameOrPath)
	if err := runErr(t, c); err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
}

// TestRefCacheDirUnset: without ref_cache_dir the user's cache directory holds the cache; with no
// user cache directory either, the error names the key to set.
func TestRefCacheDirUnset(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	_, err := Config{}.refCacheDir()
	want := "ref_cache_dir: not set and no user cache directory (neither $XDG_CACHE_HOME nor $HOME are defined); set ref_cache_dir"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	t.Setenv("XDG_CACHE_HOME", "/cache")
	if dir, err := (Config{}).refCacheDir(); err != nil || dir != "/cache/alignkit/ref_logps" {
		t.Errorf("refCacheDir() = %q, %v; want /cache/alignkit/ref_logps", dir, err)
	}
}

// TestRefCacheFileErrors: a key that is not a SHA-256 is refused before anything is written, and
// a cache path that cannot be read is an error, not a miss.
func TestRefCacheFileErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "x.bin")
	err := writeCache(path, "abc", nil, nil)
	if want := `reference cache key "abc": want 64 hex digits`; err == nil || err.Error() != want {
		t.Errorf("writeCache: error %v, want %q", err, want)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("writeCache with a bad key created %s", filepath.Dir(path))
	}
	_, _, err = readCache(dir, strings.Repeat("0", 64), 1, 0)
	if want := "reading reference cache " + dir + ": read " + dir + ": is a directory"; err == nil || err.Error() != want {
		t.Errorf("readCache: error %v, want %q", err, want)
	}
}

func TestEvalWithoutData(t *testing.T) {
	_, err := (&Task{}).Eval(context.Background(), train.Batch{Examples: []int{0}})
	if want := "dpo: no evaluation data"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}
