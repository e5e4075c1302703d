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
