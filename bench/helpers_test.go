package bench

import (
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// sharedDir is ../shared from the repository root; tests that need it skip when it lacks stories260K.
func sharedDir(t testing.TB) string {
	t.Helper()
	return sharedtest.Dir(t, "models/stories260K/config.json")
}

func preset(t testing.TB, name string) Preset {
	t.Helper()
	p, err := LookupPreset(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
