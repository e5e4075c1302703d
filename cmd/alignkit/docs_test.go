package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// TestConfigReferenceUpToDate fails when docs/CONFIG.md no longer matches the config structs; run
// `make docs` to regenerate it.
func TestConfigReferenceUpToDate(t *testing.T) {
	var buf bytes.Buffer
	if err := writeConfigReference(&buf); err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join(sharedtest.RepoRoot(t), "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, buf.Bytes()) {
		t.Fatal("docs/CONFIG.md is out of date: run `make docs`")
	}
}
