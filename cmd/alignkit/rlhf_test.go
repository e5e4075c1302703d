package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// The Llama 2 pipeline from the shipped configs through the real command line, at toy size: a
// reward model trained for a few steps (alignkit reward train), a temperature sweep of best-of-K
// sampling (alignkit rlhf sample), and one round of the rejection-sampling loop (alignkit rlhf run).
func TestRLHFPipelineCLI(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K", "data/hh_rlhf_harmless_base_test.parquet")
	tmp := t.TempDir()
	rewardDir := filepath.Join(tmp, "reward")
	res := runCLI(t, "reward", "train", "--config", "configs/reward/stories260k.yaml", "--set", "output_dir="+rewardDir,
		"--set", "max_steps=3", "--set", "max_train_samples=12", "--set", "eval_split=0", "--set", "report_plots=false",
		"--set", "logging_steps=1", "--set", "chat_template=llama-2")
	if res.Code != 0 {
		t.Fatalf("reward train: %s", res.Stderr)
	}

	sampleDir := filepath.Join(tmp, "sample")
	res = runCLI(t, "rlhf", "sample", "--config", "configs/rlhf/sample-stories260k.yaml", "--temperatures", "0.8,1.2",
		"--set", "reward_model_name_or_path="+rewardDir, "--set", "output_dir="+sampleDir, "--set", "max_train_samples=2",
		"--set", "num_samples_per_prompt=3", "--set", "max_new_tokens=8")
	if res.Code != 0 {
		t.Fatalf("rlhf sample: %s", res.Stderr)
	}
	// stdout: the summary line, the header, and K lines per temperature.
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(lines) != 2+2*3 || lines[0] != "2 prompts x 3 samples, written to "+sampleDir || !strings.HasPrefix(strings.TrimSpace(lines[7]), "1.2  3") {
		t.Errorf("rlhf sample stdout:\n%s", res.Stdout)
	}
	raw, err := os.ReadFile(filepath.Join(sampleDir, "reward_vs_k.json"))
	if err != nil {
		t.Fatal(err)
	}
	var curves []struct {
		Temperature float64   `json:"temperature"`
		ExpectedMax []float64 `json:"expected_max"`
	}
	if err := json.Unmarshal(raw, &curves); err != nil || len(curves) != 2 || curves[0].Temperature != 0.8 || len(curves[1].ExpectedMax) != 3 {
		t.Errorf("reward_vs_k.json %s: %v", raw, err)
	}
	for _, f := range []string{"samples.parquet", "best.parquet", "pairs.parquet", "reward_vs_k.png", "sample_complete.json"} {
		if _, err := os.Stat(filepath.Join(sampleDir, f)); err != nil {
			t.Error(err)
		}
	}

	runDir := filepath.Join(tmp, "run")
	res = runCLI(t, "rlhf", "run", "--config", "configs/rlhf/run-stories260k.yaml",
		"--set", "reward_model_name_or_path="+rewardDir, "--set", "output_dir="+runDir, "--set", "num_rounds=1",
		"--set", "max_train_samples=3", "--set", "max_eval_samples=1", "--set", "num_samples_per_prompt=2",
		"--set", "max_new_tokens=8", "--set", "sft.num_train_epochs=1", "--set", "sft.per_device_train_batch_size=4")
	if res.Code != 0 {
		t.Fatalf("rlhf run: %s", res.Stderr)
	}
	table := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(table) != 4 || !strings.HasPrefix(table[0], "| round | eval mean reward |") || !strings.HasPrefix(table[2], "| 0 | ") ||
		!strings.HasPrefix(table[3], "| 1 | ") || !strings.HasSuffix(table[3], filepath.Join(runDir, "round-1", "checkpoint")+" |") {
		t.Errorf("rlhf run stdout:\n%s", res.Stdout)
	}
	for _, f := range []string{"state.json", "summary.json", "summary.md", "round-0/eval/eval.json", "round-1/samples/samples.parquet",
		"round-1/data/sft.parquet", "round-1/checkpoint/training_complete.json", "round-1/eval/eval.json"} {
		if _, err := os.Stat(filepath.Join(runDir, f)); err != nil {
			t.Error(err)
		}
	}
}

// Bad input through the command line: one error line each.
func TestRLHFCLIErrors(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K", "data/hh_rlhf_harmless_base_test.parquet")
	tmp := t.TempDir()
	noColumn := filepath.Join(tmp, "prompts.jsonl")
	if err := os.WriteFile(noColumn, []byte(`{"question": "why?"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const cfg = "configs/rlhf/sample-stories260k.yaml"
	out := "output_dir=" + filepath.Join(tmp, "out")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"rlhf", "sample", "--config", cfg, "--set", out, "--set", "num_samples_per_prompt=0"},
			"alignkit: " + cfg + ": num_samples_per_prompt 0: want K >= 1 completions per prompt"},
		{[]string{"rlhf", "sample", "--config", cfg, "--set", out, "--set", "dataset_name=" + noColumn},
			"alignkit: " + noColumn + ": no prompt column: want prompt, messages, instruction or chosen+rejected, the file has [question] (map yours with columns:)"},
		{[]string{"rlhf", "sample", "--config", cfg, "--set", out, "--set", "backend=openai", "--set", "base_url=http://" + addr + "/v1", "--set", "max_retries=0"},
			"alignkit: openai backend: GET http://" + addr + "/v1/models: cannot reach the server: connection refused (after 1 attempt)"},
		{[]string{"rlhf", "sample", "--config", cfg, "--set", out, "--temperatures", "0.8,hot"},
			`alignkit: --set temperatures: key "temperatures[1]" must be float64, got string`},
		{[]string{"rlhf", "run", "--config", "configs/rlhf/run-stories260k.yaml", "--set", out, "--set", "sft.output_dir=x"},
			"alignkit: --set sft.output_dir: sft.output_dir: set by the loop (output_dir/round-r/checkpoint)"},
	}
	for _, tc := range cases {
		res := runCLI(t, tc.args...)
		if res.Code != 1 || res.ErrorLine() != tc.want {
			t.Errorf("%v: code %d\n%s\nwant %s", tc.args[len(tc.args)-1], res.Code, res.ErrorLine(), tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "out")); !os.IsNotExist(err) {
		t.Errorf("a failed job created its output_dir: %v", err)
	}
}
