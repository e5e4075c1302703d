package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
)

// TestFamiliesTrainOnRealTokenizers: a random Qwen3 and a random Llama 3.2-shaped model, each built
// by `alignkit init` around the real tokenizer in ../shared (151k and 128k tokens), fine-tune with
// `alignkit sft` on no_robots and then `alignkit dpo` on orca pairs, each through its own chat
// template (Qwen3's and Llama 3's, from tokenizer_config.json): SFT's held-out loss falls and DPO's
// loss falls from ln 2.
func TestFamiliesTrainOnRealTokenizers(t *testing.T) {
	shared := sharedtest.Dir(t, "tokenizers/qwen3/tokenizer.json", "tokenizers/llama3/tokenizer.json",
		"data/no_robots_test_sft.parquet", "data/orca_dpo_pairs_validation_chat.parquet")
	for _, family := range []string{"qwen3", "llama3.2"} {
		t.Run(family, func(t *testing.T) {
			dir := t.TempDir()
			model := filepath.Join(dir, "model")
			if r := runCLI(t, "init", "--config", "configs/init/tiny-"+family+".yaml", "--out", model); r.Code != 0 {
				t.Fatalf("init: exit %d: %s", r.Code, r.Stderr)
			}
			sftOut, dpoOut := filepath.Join(dir, "sft"), filepath.Join(dir, "dpo")
			sftCfg := write(t, dir, "sft.yaml", fmt.Sprintf(`model_name_or_path: %s
dataset_name: %s
max_train_samples: 64
eval_split: 0.1
max_length: 96
output_dir: %s
max_steps: 12
per_device_train_batch_size: 4
per_device_eval_batch_size: 4
learning_rate: 3.0e-3
eval_steps: 6
logging_steps: 6
save_steps: 100
report_plots: false
`, model, filepath.Join(shared, "data", "no_robots_test_sft.parquet"), sftOut))
			if r := runCLI(t, "sft", "--config", sftCfg); r.Code != 0 {
				t.Fatalf("sft: exit %d: %s", r.Code, r.Stderr)
			}
			var evals []float64
			for _, m := range testutil.ReadMetrics(t, sftOut) {
				if v, ok := m["eval_loss"]; ok {
					evals = append(evals, v)
				}
			}
			t.Logf("%s sft eval_loss %v", family, evals)
			if len(evals) != 2 || !(evals[1] < evals[0]) {
				t.Errorf("sft eval_loss at steps 6 and 12: %v, want two, falling", evals)
			}
			dpoCfg := write(t, dir, "dpo.yaml", fmt.Sprintf(`model_name_or_path: %s
dataset_name: %s
max_train_samples: 8
max_length: 96
max_prompt_length: 48
output_dir: %s
max_steps: 8
per_device_train_batch_size: 2
learning_rate: 3.0e-3
logging_steps: 1
save_steps: 100
report_plots: false
ref_cache_dir: %s
`, sftOut, filepath.Join(shared, "data", "orca_dpo_pairs_validation_chat.parquet"), dpoOut, filepath.Join(dir, "cache")))
			if r := runCLI(t, "dpo", "--config", dpoCfg); r.Code != 0 {
				t.Fatalf("dpo: exit %d: %s", r.Code, r.Stderr)
			}
			ms := testutil.ReadMetrics(t, dpoOut)
			first := (ms[0]["loss"] + ms[1]["loss"] + ms[2]["loss"] + ms[3]["loss"]) / 4
			last := (ms[4]["loss"] + ms[5]["loss"] + ms[6]["loss"] + ms[7]["loss"]) / 4
			t.Logf("%s dpo loss, first epoch %.4f, second %.4f", family, first, last)
			if !(last < first) {
				t.Errorf("dpo loss: first epoch %.4f, second %.4f: want it to fall", first, last)
			}
		})
	}
}

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
