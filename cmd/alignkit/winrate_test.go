package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/reward"
)

// The shipped config runs end to end (stories260K against itself, greedy, a fresh-headed reward
// model as the judge: identical answers, all ties, score 0.5); bad configs fail with one line and
// leave output_dir empty.
func TestEvalWinrateCLI(t *testing.T) {
	stories := sharedtest.Path(t, "models", "stories260K")
	rm := filepath.Join(t.TempDir(), "rm")
	r, err := reward.FromCausalLM(testutil.Stories(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.Save(rm, r, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"eval", "winrate", "--config", "configs/eval/winrate-stories260k.yaml",
		"--set", "model_a_name_or_path=" + stories, "--set", "reward_model_name_or_path=" + rm,
		"--set", "max_train_samples=12", "--set", "max_new_tokens=16", "--set", "output_dir=" + out}
	res := mustRun(t, args...)
	if !strings.HasPrefix(res.Stdout, "eval winrate: sft vs base: win 0.0% [0.0, ") || !strings.Contains(res.Stdout, "tie 100.0%") {
		t.Errorf("stdout: %s", res.Stdout)
	}
	var s map[string]any
	b, err := os.ReadFile(filepath.Join(out, "winrate.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s["score"] != 0.5 || s["ties"] != s["valid"] || s["judgements"].(float64)+s["skipped_too_long"].(float64) != 12 {
		t.Errorf("winrate.json: %v", s)
	}
	for _, f := range []string{"winrate_judgements.parquet", "winrate.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// A config with no judge at all (the shipped one names a reward model).
	noJudge := filepath.Join(t.TempDir(), "nojudge.yaml")
	if err := os.WriteFile(noJudge, []byte("model_a_name_or_path: "+stories+"\nmodel_b_name_or_path: "+stories+
		"\ndataset_name: ../shared/data/hh_rlhf_harmless_base_test.parquet\noutput_dir: runs/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const shipped = "configs/eval/winrate-stories260k.yaml"
	for _, c := range []struct {
		config string
		sets   []string
		want   string
	}{
		{noJudge, nil, "alignkit: " + noJudge + ": judge: none configured: set reward_model_name_or_path (or reward_models) for a reward-model judge, or judge_base_url for an LLM judge"},
		{shipped, []string{"judge_base_url=http://127.0.0.1:1/v1"}, "alignkit: " + shipped + ": judge: both a reward model and judge_base_url are set: choose one judge"},
		{shipped, []string{"dataset_name=nope.jsonl"}, "alignkit: dataset_name: reading nope.jsonl: open nope.jsonl: no such file or directory"},
	} {
		empty := t.TempDir()
		a := []string{"eval", "winrate", "--config", c.config, "--set", "output_dir=" + empty}
		for _, s := range c.sets {
			a = append(a, "--set", s)
		}
		res := runCLI(t, a...)
		if got := res.ErrorLine(); res.Code != 1 || got != c.want || strings.TrimRight(res.Stderr, "\n") != got {
			t.Errorf("%v: exit %d\n got: %s\nwant: %s\nstderr: %s", c.sets, res.Code, got, c.want, res.Stderr)
		}
		if entries, _ := os.ReadDir(empty); len(entries) != 0 {
			t.Errorf("%v: output directory not empty: %v", c.sets, entries)
		}
	}
}
