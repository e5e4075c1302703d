package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/bench"
)

// TestBenchTrainProfile: `bench train --cpuprofile FILE` leaves a profile there, and nothing else in
// its folder (the temporary file was renamed over it).
func TestBenchTrainProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cpu.prof")
	r := runCLI(t, "bench", "train", "--preset", "tiny", "--steps", "1", "--warmup", "0", "--peak-gflops", "1", "-q", "--json", "--cpuprofile", path)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	var res bench.TrainResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || res.Preset != "tiny" || len(res.StepSeconds) != 1 {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("profile: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the profile's folder, want 1", len(ents))
	}
}

// TestBenchTrainProfileErrors: a profile path that cannot be created fails before the first step;
// a run that fails leaves no profile file behind and returns the run's own error.
func TestBenchTrainProfileErrors(t *testing.T) {
	p, err := bench.LookupPreset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	var steps int
	opts := bench.TrainOptions{Preset: p, Steps: 1, PeakGFLOPS: 1, AfterStep: func(int, bench.Memory) error { steps++; return nil }}
	dir := t.TempDir()
	_, err = benchTrain(context.Background(), opts, filepath.Join(dir, "missing", "cpu.prof"))
	if err == nil || !strings.HasPrefix(err.Error(), "--cpuprofile: writing ") || steps != 0 {
		t.Fatalf("err = %v after %d steps, want a --cpuprofile error before any step", err, steps)
	}

	opts.Steps = 0
	_, err = benchTrain(context.Background(), opts, filepath.Join(dir, "cpu.prof"))
	if want := "bench train: steps 0 must be >= 1 and warmup 0 >= 0"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("%d entries left after a failed run, want none", len(ents))
	}
}

// TestBenchTrainLoRA: `bench train --lora-r 4 --base-dtype nf4` with --batch and --seq-len
// overrides trains the tiny preset's adapter only (2·1156·4 values: r·(in+out) over the 7 linear
// layers of its 2 layers) at the given shape, and says so in JSON and in its text line.
func TestBenchTrainLoRA(t *testing.T) {
	args := []string{"bench", "train", "--preset", "tiny", "--lora-r", "4", "--base-dtype", "nf4", "--batch", "2", "--seq-len", "32",
		"--steps", "2", "--warmup", "0", "--peak-gflops", "1", "-q"}
	r := runCLI(t, append(args, "--json")...)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	var res bench.TrainResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if res.LoRAR != 4 || res.BaseDtype != "nf4" || res.TrainableParams != 2*1156*4 || res.Batch != 2 || res.SeqLen != 32 {
		t.Errorf("result %+v, want lora_r 4, nf4, 9248 trainable, 2×32", res)
	}
	for _, key := range []string{`"lora_r":4`, `"base_dtype":"nf4"`, `"trainable_params":9248`} {
		if !strings.Contains(r.Stdout, key) {
			t.Errorf("JSON %s lacks %s", r.Stdout, key)
		}
	}
	r = runCLI(t, args...)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "tiny 2×32, LoRA r4, nf4 base, 9248 trainable (") {
		t.Errorf("exit %d, text line %q", r.Code, r.Stdout)
	}
}

// TestBenchTrainBadFlags: each bad flag is one error line naming it, before any step.
func TestBenchTrainBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--lora-r", "-1"}, "alignkit: bench train: --lora-r -1: must be >= 0 (0 trains every weight, N > 0 a rank-N LoRA adapter)"},
		{[]string{"--lora-r", "4", "--base-dtype", "fp8"}, `alignkit: bench train: --base-dtype "fp8": want one of float32, bfloat16, float16, int8, nf4`},
		{[]string{"--base-dtype", "nf4"}, "alignkit: bench train: --base-dtype nf4 holds the base frozen, so it cannot be fully fine-tuned: set --lora-r N (LoRA)"},
		{[]string{"--batch", "0"}, "alignkit: --batch 0: must be >= 1"},
		{[]string{"--seq-len", "1"}, "alignkit: --seq-len 1: must be >= 2 (inputs and next-token targets)"},
	}
	for _, tc := range tests {
		r := runCLI(t, append([]string{"bench", "train", "--preset", "tiny", "--steps", "1", "--peak-gflops", "1", "-q"}, tc.args...)...)
		if got := strings.TrimRight(r.Stderr, "\n"); r.Code != 1 || got != tc.want {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, r.Code, r.Stderr, tc.want)
		}
	}
}

// TestBenchGenerateProfile: `bench generate --model DIR --cpuprofile FILE` leaves a gzipped pprof
// profile there and nothing else in its folder; without --model (two targets) it is refused before
// anything runs.
func TestBenchGenerateProfile(t *testing.T) {
	p, err := bench.LookupPreset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(t.TempDir(), "tiny")
	if _, err := bench.WriteModel(p, 1, nil, model); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cpu.prof")
	r := runCLI(t, "bench", "generate", "--model", model, "--prompt-len", "8", "--new-tokens", "4", "--runs", "2", "-q", "--json", "--cpuprofile", path)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	var res []bench.GenerateResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || len(res) != 1 || len(res[0].DecodeSeconds) != 2 {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile: %d bytes, %v; want gzipped pprof", len(b), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the profile's folder, want 1", len(ents))
	}
	r = runCLI(t, "bench", "generate", "--preset", "tiny", "--cpuprofile", filepath.Join(dir, "x.prof"))
	want := "alignkit: --cpuprofile " + filepath.Join(dir, "x.prof") + ": needs --model (one model to profile)"
	if got := strings.TrimRight(r.Stderr, "\n"); r.Code != 1 || got != want {
		t.Fatalf("exit %d, stderr %q, want %q", r.Code, r.Stderr, want)
	}
}
