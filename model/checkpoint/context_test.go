package checkpoint

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// OpenContext hands its context to the HF and GGUF readers: a context that has ended stops the
// read before the first tensor, with an error naming the weights file.
func TestOpenContextStops(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "models", "stories260K")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct{ path, file string }{
		{dir, filepath.Join(dir, "model.safetensors")},
		{filepath.Join(dir, "stories260K-f32.gguf"), filepath.Join(dir, "stories260K-f32.gguf")},
	} {
		_, err := OpenContext(ctx, c.path)
		if want := "loading " + c.file + ": context canceled after 0 of "; err == nil || !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v, want %s...", c.path, err, want)
		}
	}
}
