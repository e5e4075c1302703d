package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// countdown is a context that ends on its n-th look (Err call): a signal arriving mid-read,
// without a timing race.
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

// Reading stops when the context ends: JSONL lines and JSON array elements every CheckEvery
// rows, Parquet between batches of 64 rows. The error names the file and the rows read.
func TestReadStopsWithContext(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 1000 {
		lines = append(lines, fmt.Sprintf(`{"prompt": "q%d", "completion": "a%d"}`, i, i))
	}
	jsonl := filepath.Join(dir, "rows.jsonl")
	array := filepath.Join(dir, "rows.json")
	pq := filepath.Join(dir, "rows.parquet")
	for path, body := range map[string]string{jsonl: strings.Join(lines, "\n") + "\n", array: "[" + strings.Join(lines, ",") + "]"} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(pq, smallParquet(t, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path  string
		looks int
		rows  int // read before the stop
	}{
		{jsonl, 1, 0},
		{jsonl, 3, 512}, // looks at rows 0, 256, 512
		{array, 4, 768},
		{pq, 3, 128}, // looks before each batch of 64
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%d", filepath.Base(c.path), c.looks), func(t *testing.T) {
			_, err := readRows(&countdown{Context: context.Background(), n: c.looks}, c.path)
			want := fmt.Sprintf("reading %s: context canceled after %d rows", c.path, c.rows)
			if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
				t.Fatalf("got  %v\nwant %s", err, want)
			}
		})
	}
	// Args.LoadContext passes its context down.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := Args{DatasetName: jsonl}.LoadContext(ctx, 1)
	if want := "reading " + jsonl + ": context canceled after 0 rows"; err == nil || err.Error() != want {
		t.Fatalf("LoadContext: got %v, want %s", err, want)
	}
}
