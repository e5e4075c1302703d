package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot is the directory holding go.mod, found by walking up from the test's working directory
// (go test runs each package's tests in its own directory). No go.mod above it is a failure, not a
// skip: a test binary always runs inside the module.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("locating the repository root: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// Dir is ../shared beside the repository root. The test is skipped when the folder, or any of the
// paths in need (slash-separated, relative to it, e.g. "models/stories260K/config.json"), is absent.
func Dir(t testing.TB, need ...string) string {
	t.Helper()
	shared := filepath.Join(filepath.Dir(RepoRoot(t)), "shared")
	for _, p := range append([]string{""}, need...) {
		if _, err := os.Stat(filepath.Join(shared, filepath.FromSlash(p))); err != nil {
			t.Skipf("../shared/%s is absent (%v): these tests need the reference files (see ../shared/README.md)", p, err)
		}
	}
	return shared
}

// Path is the file or folder rel (path elements, e.g. "models", "stories260K") inside ../shared; the
// test is skipped when it is absent.
func Path(t testing.TB, rel ...string) string {
	t.Helper()
	r := filepath.ToSlash(filepath.Join(rel...))
	return filepath.Join(Dir(t, r), filepath.FromSlash(r))
}
