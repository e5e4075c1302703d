package hf

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

// LoadContext stops between tensors, in the reading and in the finite-value check, naming the
// file and how far it got; Load's own context never ends.
func TestLoadContextStops(t *testing.T) {
	dir := storiesDir(t)
	w, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := ReadSafetensors(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	sharded := t.TempDir()
	if err := Save(sharded, w, SaveOptions{MaxShardSize: 200_000}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, dir string
		looks     int
		want      string
	}{
		{"before the first tensor", dir, 1, fmt.Sprintf("loading %s: context canceled after 0 of %d tensors", filepath.Join(dir, WeightsFile), len(onDisk))},
		{"after two tensors", dir, 3, fmt.Sprintf("loading %s: context canceled after 2 of %d tensors", filepath.Join(dir, WeightsFile), len(onDisk))},
		{"in the finite check", dir, len(onDisk) + 2, fmt.Sprintf("checking %s: context canceled after 1 of %d tensors", dir, len(w.Tensors))},
		// 200 kB shards of the 1 MB model: the first holds 3 tensors (planShards, name order).
		{"in the first shard", sharded, 2, fmt.Sprintf("loading %s: context canceled after 1 of 3 tensors", filepath.Join(sharded, "model-00001-of-00006.safetensors"))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadContext(&countdown{Context: context.Background(), n: c.looks}, c.dir)
			if err == nil || !errors.Is(err, context.Canceled) || err.Error() != c.want {
				t.Fatalf("got  %v\nwant %s", err, c.want)
			}
		})
	}
}
