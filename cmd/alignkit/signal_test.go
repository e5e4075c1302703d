package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// buildCLI builds the real binary (pure-Go BLAS: a signal test needs no speed) into a temporary
// directory, since a signal must reach a process of its own.
func buildCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the alignkit binary")
	}
	bin := filepath.Join(t.TempDir(), "alignkit")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/alignkit")
	cmd.Dir = sharedtest.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer is stderr as the process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestSignalsExitStatus: SIGTERM in the middle of training stops `alignkit sft` within seconds
// with exit status 143 (128+15), after saving the last complete step; SIGINT stops `alignkit
// serve` with 130.
func TestSignalsExitStatus(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K", "data/no_robots_test_sft.parquet")
	bin := buildCLI(t)
	root := sharedtest.RepoRoot(t)
	start := func(args ...string) (*exec.Cmd, *syncBuffer) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = root
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}
	waitFor := func(what string, stderr *syncBuffer, cond func(string) bool) {
		t.Helper()
		for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if cond(stderr.String()) {
				return
			}
		}
		t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr.String())
	}
	stop := func(cmd *exec.Cmd, sig syscall.Signal) (int, time.Duration) {
		t.Helper()
		sent := time.Now()
		cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("still running 20 s after %v", sig)
		}
		return cmd.ProcessState.ExitCode(), time.Since(sent)
	}

	out := filepath.Join(t.TempDir(), "run")
	cmd, stderr := start("sft", "--config", "configs/sft/stories260k.yaml", "--set", "output_dir="+out,
		"--set", "dataset_name="+filepath.Join(shared, "data", "no_robots_test_sft.parquet"),
		"--set", "model_name_or_path="+filepath.Join(shared, "models", "stories260K"),
		"--set", "max_steps=100000", "--set", "save_steps=100000", "--set", "logging_steps=1", "--set", "eval_steps=0")
	waitFor("the first training steps", stderr, func(s string) bool { return strings.Count(s, "\n") >= 3 })
	code, took := stop(cmd, syscall.SIGTERM)
	lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	if code != 143 || took > 10*time.Second || !strings.HasPrefix(last, "alignkit: interrupted at step ") || !strings.Contains(last, "; checkpoint saved to "+out+"/checkpoint-") {
		t.Errorf("sft after SIGTERM: exit %d after %s, last line %q", code, took, last)
	}
	if m, _ := filepath.Glob(filepath.Join(out, "checkpoint-*")); len(m) != 1 {
		t.Errorf("checkpoints after SIGTERM: %v", m)
	}

	cmd, stderr = start("serve", "--model", filepath.Join(shared, "models", "stories260K"), "--addr", "127.0.0.1:0")
	waitFor("serve to listen", stderr, func(s string) bool { return strings.Contains(s, "serving stories260K on http://") })
	code, took = stop(cmd, syscall.SIGINT)
	if code != 130 || took > 10*time.Second {
		t.Errorf("serve after SIGINT: exit %d after %s; stderr:\n%s", code, took, stderr.String())
	}
}
