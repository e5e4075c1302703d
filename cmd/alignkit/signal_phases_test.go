package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
)

// openFiles is what process pid has open, from /proc/pid/fd: how a test sees which phase the
// process is in (it reads the dataset, then the model, and tokenizes with both closed) without a
// progress line on stderr that every other test would then see too.
func openFiles(pid int) map[string]bool {
	open := map[string]bool{}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			open[target] = true
		}
	}
	return open
}

// bigJSONL writes n prompt/completion rows of stories260K's words: tokenizing 50,000 of them
// takes about 20 s on two busy cores (5 s on a quiet machine), reading them about a second.
func bigJSONL(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	words := strings.Fields("once upon a time there was a little girl named Lily she liked to play in the park with her dog")
	rng := rand.New(rand.NewPCG(1, 2))
	text := func(k int) string {
		s := make([]string, k)
		for i := range s {
			s[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(s, " ")
	}
	for range n {
		b, _ := json.Marshal(map[string]string{"prompt": text(20), "completion": " " + text(30)})
		w.Write(append(b, '\n'))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// bigModel makes dir an HF model of stories260K's tokenizer and a config widened to 1024 (8
// layers, 420 MB of float32 weights, all zero): reading it takes about a second. The weights file
// is sparse (its data section is a hole), so writing it costs nothing.
func bigModel(t *testing.T, shared, dir string) (path string, tensors int) {
	t.Helper()
	copyStories(t, shared, dir, map[string]any{"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8,
		"num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 64})
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := model.ParseConfig(raw, "config.json")
	if err != nil {
		t.Fatal(err)
	}
	shapes := model.ExpectedShapes(cfg)
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, n := range names {
		size := int64(4)
		for _, d := range shapes[n] {
			size *= int64(d)
		}
		header[n] = map[string]any{"dtype": "F32", "shape": shapes[n], "data_offsets": []int64{off, off + size}}
		off += size
	}
	hdr, _ := json.Marshal(header)
	path = filepath.Join(dir, "model.safetensors")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), hdr...)); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 + int64(len(hdr)) + off); err != nil {
		t.Fatal(err)
	}
	return path, len(names)
}

// TestSignalsInPreparation: a signal while the data is read or tokenized, or while the model is
// read, ends the process within seconds (not at main's 30 s forced exit, nor once the phase is
// over), with the signal's exit status, an error line that names the phase and how far it got,
// and no output directory. The phase is found from the files the process has open.
func TestSignalsInPreparation(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc to see which file the process reads")
	}
	shared := sharedtest.Dir(t, "models/stories260K")
	bin := buildCLI(t)
	root := sharedtest.RepoRoot(t)
	stories := filepath.Join(shared, "models", "stories260K")

	run := func(t *testing.T, dataset, modelDir string, sig syscall.Signal, ready func(pid int) bool) (code int, took time.Duration, lastLine, out string) {
		t.Helper()
		out = filepath.Join(t.TempDir(), "run")
		cmd := exec.Command(bin, "sft", "--config", "configs/sft/stories260k.yaml", "--set", "output_dir="+out,
			"--set", "dataset_name="+dataset, "--set", "model_name_or_path="+modelDir, "--set", "eval_split=0",
			"--set", "max_steps=100000", "--set", "save_steps=100000", "--set", "eval_steps=100000")
		cmd.Dir = root
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		defer func() {
			cmd.Process.Kill()
			<-done
		}()
		for deadline := time.Now().Add(120 * time.Second); !ready(cmd.Process.Pid); time.Sleep(5 * time.Millisecond) {
			select {
			case <-done:
				t.Fatalf("ended before the phase; stderr:\n%s", stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for the phase; stderr:\n%s", stderr.String())
			}
		}
		sent := time.Now()
		cmd.Process.Signal(sig)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("still running 20 s after %v; stderr:\n%s", sig, stderr.String())
		}
		lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
		return cmd.ProcessState.ExitCode(), time.Since(sent), lines[len(lines)-1], out
	}
	check := func(t *testing.T, code, wantCode int, took time.Duration, last string, want *regexp.Regexp, out string) {
		t.Helper()
		t.Logf("exit %d %s after the signal: %s", code, took.Round(time.Millisecond), last)
		if code != wantCode || took > 5*time.Second || !want.MatchString(last) {
			t.Errorf("exit %d after %s, last line %q; want exit %d within 5 s, a line matching %s", code, took, last, wantCode, want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("output directory %s exists after the signal (%v)", out, err)
		}
	}

	dataset := filepath.Join(t.TempDir(), "big.jsonl")
	bigJSONL(t, dataset, 50000)

	t.Run("reading/SIGTERM", func(t *testing.T) {
		code, took, last, out := run(t, dataset, stories, syscall.SIGTERM, func(pid int) bool { return openFiles(pid)[dataset] })
		want := regexp.MustCompile(`^alignkit: reading ` + regexp.QuoteMeta(dataset) + `: stopped by SIGTERM after [0-9]+ rows$`)
		check(t, code, 143, took, last, want, out)
	})

	t.Run("tokenizing/SIGINT", func(t *testing.T) {
		// Tokenizing starts once the dataset is read and closed and the (1 MB) model is read: a
		// second and a half after the close it is well under way.
		var readAt time.Time
		code, took, last, out := run(t, dataset, stories, syscall.SIGINT, func(pid int) bool {
			switch {
			case openFiles(pid)[dataset]:
				readAt = time.Now()
			case !readAt.IsZero():
				return time.Since(readAt) > 1500*time.Millisecond
			}
			return false
		})
		want := regexp.MustCompile(`^alignkit: tokenizing ` + regexp.QuoteMeta(dataset) + `: stopped by SIGINT after [0-9]+ of 50000 rows$`)
		check(t, code, 130, took, last, want, out)
	})

	t.Run("loading/SIGTERM", func(t *testing.T) {
		dir := t.TempDir()
		weights, tensors := bigModel(t, shared, dir)
		code, took, last, out := run(t, filepath.Join(root, "cmd", "alignkit", "testdata", "badinput", "pc_good.jsonl"), dir, syscall.SIGTERM,
			func(pid int) bool { return openFiles(pid)[weights] })
		want := regexp.MustCompile(`^alignkit: model_name_or_path: loading ` + regexp.QuoteMeta(weights) + fmt.Sprintf(`: stopped by SIGTERM after [0-9]+ of %d tensors$`, tensors))
		check(t, code, 143, took, last, want, out)
	})
}
