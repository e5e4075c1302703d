package reward

import (
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
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

// storiesRM is stories260K with a fresh score head, saved as an HF directory.
func storiesRM(t *testing.T, seed uint64) (*checkpoint.Model, string) {
	t.Helper()
	rm, err := FromCausalLM(testutil.Stories(t), seed)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rm")
	if err := checkpoint.Save(dir, rm, hfOpts); err != nil {
		t.Fatal(err)
	}
	return rm, dir
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
