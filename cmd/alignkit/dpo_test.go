package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/dpo"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
)

// TestDPOShippedConfig runs configs/dpo/stories260k.yaml from the repository root as a user would,
// on its first 32 training pairs and 8 eval pairs for 4 steps: the truncation counts come first, the reference pass
// is cached, the first metrics line is the policy scored against itself (loss ln 2, rewards 0),
// evaluation reports TRL's eval_ names, and output_dir holds a finished model. A second run into
// another output_dir reads the cached reference log-probs instead of recomputing them.
func TestDPOShippedConfig(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/orca_dpo_pairs_validation_chat.parquet")
	cache := t.TempDir()
	args := func(out string) []string {
		return []string{"dpo", "--config", "configs/dpo/stories260k.yaml", "--set", "output_dir=" + out,
			"--set", "ref_cache_dir=" + cache, "--set", "max_train_samples=32", "--set", "max_eval_samples=8", "--set", "max_steps=4",
			"--set", "eval_steps=4", "--set", "save_steps=4", "--set", "logging_steps=1", "--set", "report_plots=false"}
	}
	out := t.TempDir()
	r := runCLI(t, args(out)...)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	lines := strings.Split(r.Stderr, "\n")
	want := []string{
		"dpo: train: 32 pairs (0 dropped: prompt fills max_length), 32 prompts truncated from the left (13560 tokens), 62 answers truncated (42729 tokens), 4 batches",
		"dpo: eval: 8 pairs (0 dropped: prompt fills max_length), 8 prompts truncated from the left (3770 tokens), 16 answers truncated (8035 tokens), 1 batches",
	}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Errorf("stderr line %d:\n got %q\nwant %q", i+1, lines[min(i, len(lines)-1)], w)
		}
	}
	if len(lines) < 3 || !strings.HasPrefix(lines[2], "dpo: reference log-probs of 40 pairs computed in ") || !strings.Contains(lines[2], "cached in "+cache) {
		t.Errorf("stderr line 3: %q, want the reference pass and its cache file", lines[min(2, len(lines)-1)])
	}
	if !strings.HasPrefix(r.Stdout, "dpo: 4 steps, train loss ") || !strings.HasSuffix(strings.TrimSpace(r.Stdout), "model in "+out) {
		t.Errorf("stdout %q", r.Stdout)
	}
	ms := testutil.ReadMetrics(t, out)
	if len(ms) != 4 {
		t.Fatalf("%d metrics lines, want 4", len(ms))
	}
	// warmup_ratio 0.1 of 4 steps is 1 warmup step, at learning rate 0: steps 1 and 2 both score the
	// initial weights against themselves. The reference log-probs were precomputed in batches of
	// another shape, and OpenBLAS's blocking depends on the shape, so the two agree to float32
	// rounding rather than bit for bit: margins are ~1e-6, and rewards/accuracies (a strict
	// chosen > rejected count) is decided by that noise, so it is not asserted here.
	for _, m := range ms[:2] {
		if math.Abs(m["loss"]-math.Ln2) > 1e-5 || math.Abs(m["rewards/margins"]) > 1e-4 {
			t.Errorf("step %v: loss %v, margins %v: want ln 2 and 0", m["step"], m["loss"], m["rewards/margins"])
		}
	}
	last := ms[3]
	for _, k := range []string{"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected",
		"logits/chosen", "logits/rejected", "eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "eval_logps/chosen", "eval_logits/rejected"} {
		if _, ok := last[k]; !ok {
			t.Errorf("last metrics line has no %s", k)
		}
	}
	if !(last["loss"] < math.Ln2) || !(last["rewards/margins"] > 0) {
		t.Errorf("step 4: loss %v, margins %v: want below ln 2 and positive after 2 updates", last["loss"], last["rewards/margins"])
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.model", "training_complete.json", "checkpoint-4"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("output_dir lacks %s", f)
		}
	}

	out2 := t.TempDir()
	r = runCLI(t, args(out2)...)
	if r.Code != 0 {
		t.Fatalf("second run: exit %d: %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "dpo: reference log-probs of 40 pairs read from "+cache) || strings.Contains(r.Stderr, "computed in") {
		t.Errorf("second run did not reuse the cache:\n%s", r.Stderr)
	}
	if got := testutil.ReadMetrics(t, out2); got[3]["loss"] != last["loss"] || got[3]["eval_loss"] != last["eval_loss"] {
		t.Errorf("second run: step 4 loss %v eval_loss %v, first run %v %v", got[3]["loss"], got[3]["eval_loss"], last["loss"], last["eval_loss"])
	}
}

// TestDPOMistralConfig checks that the 7B config is a valid dpo config with Zephyr-7B-β's numbers:
// 128 pairs per step, beta 0.01, lr 5e-7 cosine with 10% warmup, 1 epoch, 1024/512 tokens.
func TestDPOMistralConfig(t *testing.T) {
	var cfg dpo.Config
	if err := conf.Load(filepath.Join(sharedtest.RepoRoot(t), "configs", "dpo", "mistral-7b.yaml"), nil, &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Defaults()
	got := []any{c.PerDeviceTrainBatchSize * c.GradientAccumulationSteps, c.Beta, c.LossType, c.LearningRate, c.LRSchedulerType,
		c.WarmupRatio, c.NumTrainEpochs, c.Data.MaxLength, c.MaxPromptLength, c.Data.ChatTemplate, c.PrecomputeRefLogProbs, c.RefModelNameOrPath}
	want := []any{128, 0.01, "sigmoid", 5e-7, "cosine", 0.1, 1.0, 1024, 512, "zephyr", true, ""}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

// TestDPOBadInput: bad configs and bad rows fail with exit status 1 and one error line naming the
// key, or the file and row, and leave no output_dir.
func TestDPOBadInput(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/orca_dpo_pairs_validation_chat.parquet")
	dir := t.TempDir()
	same := filepath.Join(dir, "same.jsonl")
	userLast := filepath.Join(dir, "user_last.jsonl")
	if err := os.WriteFile(same, []byte(`{"prompt": "Tell me a story.", "chosen": " A cat sat.", "rejected": " A cat sat."}
{"prompt": "Tell me a joke.", "chosen": " A dog ran.", "rejected": " A dog ran."}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(userLast, []byte(`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye."}], "rejected": [{"role": "assistant", "content": "Go."}]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		sets []string
		want string
	}{
		{"identical answers", []string{"dataset_name=" + same, "eval_split=0"},
			fmt.Sprintf(`alignkit: %s: row 0: columns "chosen" and "rejected" are identical: DPO needs two different answers to prefer one over the other`, same)},
		{"last message from the user", []string{"dataset_name=" + userLast, "eval_split=0"},
			fmt.Sprintf(`alignkit: %s: row 0: column "chosen": the last message is from the user, want assistant: the compared answer must end the conversation`, userLast)},
		{"every prompt too long", []string{"max_length=32", "max_prompt_length=512"},
			// Row 0's system turn and question in the llama-2 template (dpo's tests derive the count).
			"alignkit: ../shared/data/orca_dpo_pairs_validation_chat.parquet: row 0: the prompt is 251 tokens, which leaves no room for the answers in max_length 32, and so does every other row's: raise max_length or lower max_prompt_length"},
		{"unknown loss", []string{"loss_type=kto"}, `alignkit: configs/dpo/stories260k.yaml: loss_type "kto": want one of sigmoid, robust, ipo, hinge`},
		{"packing", []string{"packing=true"}, "alignkit: --set packing: packing: DPO does not pack pairs (each pair is a chosen row and a rejected row); remove the key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := []string{"dpo", "--config", "configs/dpo/stories260k.yaml", "--set", "output_dir=" + out, "--set", "ref_cache_dir=" + t.TempDir()}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			r := runCLI(t, args...)
			if r.Code != 1 || r.ErrorLine() != tc.want {
				t.Errorf("exit %d, error line\n%s\nwant\n%s", r.Code, r.ErrorLine(), tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("failed run left %s", out)
			}
		})
	}
}
