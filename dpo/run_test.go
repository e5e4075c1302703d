package dpo

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// At step 0 the policy is the reference, so every implicit reward β·(log πθ − log πref) is 0, h = 0
// and each loss takes its h = 0 value (see loss_test.go): sigmoid −log σ(0) = ln 2, ipo
// (0 − 1/(2β))² = 25 at β = 0.1, hinge max(0, 1 − 0) = 1, and RPO adds α times the chosen per-token
// NLL. The first metrics line (logging_steps 1) is that forward pass, before any update, whether the
// reference is the copied initial weights scored per batch, precomputed, or the same checkpoint
// loaded from ref_model_name_or_path.
func TestTrainerStepZero(t *testing.T) {
	cases := []struct {
		name string
		mod  func(c *Config)
		want func(m map[string]float64) float64
	}{
		{"sigmoid per batch", func(c *Config) {}, func(map[string]float64) float64 { return math.Ln2 }},
		{"sigmoid precomputed", func(c *Config) { c.PrecomputeRefLogProbs = true }, func(map[string]float64) float64 { return math.Ln2 }},
		{"sigmoid ref path", func(c *Config) { c.RefModelNameOrPath = c.ModelNameOrPath }, func(map[string]float64) float64 { return math.Ln2 }},
		{"ipo", func(c *Config) { c.LossType = IPO }, func(map[string]float64) float64 { return 25 }},
		{"hinge", func(c *Config) { c.LossType = Hinge }, func(map[string]float64) float64 { return 1 }},
		{"rpo", func(c *Config) { c.RPOAlpha = 0.5 }, func(m map[string]float64) float64 { return math.Ln2 + 0.5*m["nll_loss"] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := storiesConfig(t, "orca_dpo_pairs_validation_chat.parquet")
			c.MaxSteps = 1
			c.Data.MaxTrainSamples = 8
			tc.mod(&c)
			if err := runHooked(c, io.Discard); err != nil {
				t.Fatal(err)
			}
			ms := testutil.ReadMetrics(t, c.OutputDir)
			if len(ms) != 1 {
				t.Fatalf("%d metrics lines, want 1", len(ms))
			}
			m := ms[0]
			if want := tc.want(m); math.Abs(m["loss"]-want) > 1e-6 {
				t.Errorf("loss = %.9g, want %.9g", m["loss"], want)
			}
			for _, k := range []string{"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} {
				if v, ok := m[k]; !ok || math.Abs(v) > 1e-6 {
					t.Errorf("%s = %v (present %v), want 0", k, v, ok)
				}
			}
			// The policy's own log-probs are real: sums over dozens of answer tokens well below 0 (per
			// token for ipo, as TRL reports them), and the mean logit of a real model is non-zero.
			for _, k := range []string{"logps/chosen", "logps/rejected"} {
				if lim := -10.0; c.LossType == IPO && !(m[k] < -0.5 && m[k] > lim) || c.LossType != IPO && !(m[k] < lim) {
					t.Errorf("%s = %v, want real log-probs (loss_type %s)", k, m[k], c.LossType)
				}
			}
			for _, k := range []string{"logits/chosen", "logits/rejected"} {
				if v, ok := m[k]; !ok || v == 0 || math.IsNaN(v) {
					t.Errorf("%s = %v (present %v), want a real mean logit", k, v, ok)
				}
			}
			_, hasNLL := m["nll_loss"]
			if hasNLL != (c.RPOAlpha > 0) {
				t.Errorf("nll_loss present %v with rpo_alpha %v", hasNLL, c.RPOAlpha)
			}
			if _, err := filepath.Glob(filepath.Join(c.OutputDir, "model.safetensors")); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestLearnsRealPairs trains stories260K on 16 real preference pairs for 4 epochs (4 steps each).
// DPO must separate chosen from rejected on the training pairs: the last two epochs' accuracy is
// well above chance and the margin grows from the first epoch to the last. On hh-rlhf the first
// epoch, which sees each pair before any update on it, stays near chance (0.5); orca's answers
// differ in style so systematically that unseen pairs separate too, which the eval split shows.
func TestLearnsRealPairs(t *testing.T) {
	cases := []struct {
		file string
		lr   float64
		eval bool
	}{
		{"hh_rlhf_harmless_base_test.parquet", 3e-4, false},
		{"orca_dpo_pairs_validation_chat.parquet", 1e-4, true},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			c := storiesConfig(t, tc.file)
			c.MaxSteps = 16
			c.LearningRate = tc.lr
			c.Data.MaxTrainSamples = 16
			c.PrecomputeRefLogProbs = true
			if tc.eval {
				c.Data.EvalSplit = 0.1
				c.Data.MaxEvalSamples = 8
			}
			if err := runHooked(c, io.Discard); err != nil {
				t.Fatal(err)
			}
			// stories260K has no chat template: the saved policy carries the llama-2 one the pairs
			// were rendered with, so that generation and export render chats the same way.
			saved, err := tokenizer.Load(c.OutputDir)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := chat.BuiltinSource("llama-2"); saved.ChatTemplate() != want {
				t.Errorf("saved chat template %q, want the llama-2 source the data was rendered with", saved.ChatTemplate())
			}
			ms := testutil.ReadMetrics(t, c.OutputDir)
			if len(ms) != 16 {
				t.Fatalf("%d metrics lines, want 16", len(ms))
			}
			epoch := func(e int, key string) float64 {
				var s float64
				for _, m := range ms[4*e : 4*e+4] {
					s += m[key]
				}
				return s / 4
			}
			acc := (epoch(2, "rewards/accuracies") + epoch(3, "rewards/accuracies")) / 2
			first, last := epoch(0, "rewards/margins"), epoch(3, "rewards/margins")
			t.Logf("accuracy by epoch %.3f %.3f %.3f %.3f; margins %.3f -> %.3f; loss %.4f -> %.4f",
				epoch(0, "rewards/accuracies"), epoch(1, "rewards/accuracies"), epoch(2, "rewards/accuracies"), epoch(3, "rewards/accuracies"),
				first, last, epoch(0, "loss"), epoch(3, "loss"))
			if acc < 0.85 {
				t.Errorf("rewards/accuracies over the last two epochs = %.3f, want >= 0.85", acc)
			}
			if !(last > first+1) {
				t.Errorf("rewards/margins: first epoch %.4f, last %.4f: want growth by more than 1", first, last)
			}
			if !(epoch(3, "loss") < 0.2) {
				t.Errorf("last epoch loss %.4f, want < 0.2 (ln 2 = 0.693 at the start)", epoch(3, "loss"))
			}
			if tc.eval {
				m := ms[len(ms)-1]
				for _, k := range []string{"eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "eval_rewards/chosen", "eval_rewards/rejected",
					"eval_logps/chosen", "eval_logps/rejected", "eval_logits/chosen", "eval_logits/rejected"} {
					if _, ok := m[k]; !ok {
						t.Errorf("last metrics line has no %s: %v", k, m)
					}
				}
				t.Logf("eval: loss %.4f accuracy %.3f margin %.3f", m["eval_loss"], m["eval_rewards/accuracies"], m["eval_rewards/margins"])
				if !(m["eval_rewards/accuracies"] > 0.5) || !(m["eval_loss"] < math.Ln2) {
					t.Errorf("eval accuracy %.3f, loss %.4f: want > 0.5 and < ln 2 on held-out orca pairs", m["eval_rewards/accuracies"], m["eval_loss"])
				}
			}
		})
	}
}

// TestResumeKeepsReference: resuming from checkpoint-2 continues exactly as the uninterrupted run
// did, so the reference after a resume is still the initial weights (model_name_or_path), not the
// resumed policy: steps 3 and 4 log bit-identical losses and rewards. Both with a per-batch
// reference and with precomputed (cached) log-probs.
func TestResumeKeepsReference(t *testing.T) {
	for _, pre := range []bool{false, true} {
		c := storiesConfig(t, "hh_rlhf_harmless_base_test.parquet")
		c.Data.MaxTrainSamples = 16
		c.MaxSteps, c.SaveSteps = 4, 2
		c.PrecomputeRefLogProbs = pre
		if err := runHooked(c, io.Discard); err != nil {
			t.Fatal(err)
		}
		want := testutil.ReadMetrics(t, c.OutputDir)

		r := c
		r.OutputDir = filepath.Join(t.TempDir(), "resumed")
		if err := os.MkdirAll(r.OutputDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(r.OutputDir, "checkpoint-2"), os.DirFS(filepath.Join(c.OutputDir, "checkpoint-2"))); err != nil {
			t.Fatal(err)
		}
		r.ResumeFromCheckpoint = "latest"
		if err := runHooked(r, io.Discard); err != nil {
			t.Fatal(err)
		}
		got := testutil.ReadMetrics(t, r.OutputDir)
		// The resumed run's metrics.jsonl starts with the checkpoint's history (steps 1 and 2).
		if len(got) != 4 {
			t.Fatalf("precompute %v: resumed run has %d metrics lines, want 4", pre, len(got))
		}
		for i, m := range got {
			w := want[i]
			for _, k := range []string{"step", "loss", "rewards/chosen", "rewards/rejected", "grad_norm"} {
				if m[k] != w[k] {
					t.Errorf("precompute %v step %v %s: resumed %v, uninterrupted %v", pre, w["step"], k, m[k], w[k])
				}
			}
		}
	}
}
