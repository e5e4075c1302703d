package reward

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model/checkpoint"
)

// sharedDir is ../shared seen from the repository root (the directory holding go.mod); tests that
// need it skip when it is absent.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
	shared := filepath.Join(dir, "..", "shared")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("../shared is absent (%v): the real-data tests need it", err)
	}
	return shared
}

func storiesPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(sharedDir(t), "models", "stories260K")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("../shared/models/stories260K is absent (%v)", err)
	}
	return p
}

func sharedData(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(sharedDir(t), "data", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("../shared/data/%s is absent (%v)", name, err)
	}
	return p
}

func stories(t *testing.T) *checkpoint.Model {
	t.Helper()
	ck, err := checkpoint.Open(storiesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// storiesRM is stories260K with a fresh score head, saved as an HF directory.
func storiesRM(t *testing.T, seed uint64) (*checkpoint.Model, string) {
	t.Helper()
	rm, err := FromCausalLM(stories(t), seed)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rm")
	if err := checkpoint.Save(dir, rm, hfOpts); err != nil {
		t.Fatal(err)
	}
	return rm, dir
}

// writeJSONL writes rows as a JSON Lines file in a temp dir.
func writeJSONL(t *testing.T, name string, rows ...map[string]any) string {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
