package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// TestInitRefusesExistingModel: init writes into a missing or empty directory, refuses one that
// holds files (leaving them untouched), and overwrites it with --force.
func TestInitRefusesExistingModel(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K/tokenizer.model")
	out := filepath.Join(t.TempDir(), "m")
	if res := runCLI(t, "init", "--config", "configs/init/tiny-llama.yaml", "--out", out); res.Code != 0 {
		t.Fatalf("init into a new directory: %s", res.Stderr)
	}
	cfg := filepath.Join(out, "config.json")
	before, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	res := runCLI(t, "init", "--config", "configs/init/tiny-llama.yaml", "--out", out, "--set", "seed=99", "--set", "hidden_size=32")
	want := "alignkit: --out " + out + ": already exists and holds files (" + entries[0].Name() + ", " + entries[1].Name() + ", " + entries[2].Name()
	if res.Code == 0 || len(res.ErrorLine()) < len(want) || res.ErrorLine()[:len(want)] != want {
		t.Fatalf("second init: exit %d %q, want prefix %q", res.Code, res.ErrorLine(), want)
	}
	if after, _ := os.ReadFile(cfg); string(after) != string(before) {
		t.Fatal("a refused init changed config.json")
	}
	if res := runCLI(t, "init", "--config", "configs/init/tiny-llama.yaml", "--out", out, "--set", "hidden_size=32", "--force"); res.Code != 0 {
		t.Fatalf("init --force: %s", res.Stderr)
	}
	if after, _ := os.ReadFile(cfg); string(after) == string(before) {
		t.Fatal("init --force did not rewrite config.json")
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x"), 0o644)
	if res := runCLI(t, "init", "--config", "configs/init/tiny-llama.yaml", "--out", file); res.ErrorLine() != "alignkit: --out "+file+": is a file, not a directory" {
		t.Fatalf("init over a file: %q", res.ErrorLine())
	}
}
