package gguf

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// countdown is a context that ends on its n-th look (Err call): a signal arriving after n-1
// tensors were read, without a timing race.
type countdown struct {
	context.Context
	n int
}

func (c *countdown) Err() error {
	if c.n--; c.n <= 0 {
		return context.Canceled
	}
	return nil
}

// LoadWeightsContext stops between tensors, float32 and frozen alike, naming the file and how
// far it got.
func TestLoadWeightsContextStops(t *testing.T) {
	w := loadStories(t)
	path := filepath.Join(t.TempDir(), "stories.gguf")
	if err := Write(path, w, storiesTokenizer(t), WriteOptions{Dtype: "q8_0"}); err != nil {
		t.Fatal(err)
	}
	n := len(w.Tensors) // the GGUF holds the same tensors: tied embeddings, no output.weight
	for _, frozen := range []bool{false, true} {
		for _, looks := range []int{1, 3, n} {
			t.Run(fmt.Sprintf("frozen=%v/looks=%d", frozen, looks), func(t *testing.T) {
				ctx := &countdown{Context: context.Background(), n: looks}
				_, _, err := LoadWeightsContext(ctx, path, LoadOptions{Frozen: frozen})
				want := fmt.Sprintf("loading %s: context canceled after %d of %d tensors", path, looks-1, n)
				if err == nil || !errors.Is(err, context.Canceled) || err.Error() != want {
					t.Fatalf("got  %v\nwant %s", err, want)
				}
			})
		}
	}
	if _, _, err := LoadWeightsContext(context.Background(), path, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}
