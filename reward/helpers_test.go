package reward

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/checkpoint"
)

func storiesPath(t *testing.T) string {
	t.Helper()
	return sharedtest.Path(t, "models", "stories260K")
}

func sharedData(t *testing.T, name string) string {
	t.Helper()
	return sharedtest.Path(t, "data", name)
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
