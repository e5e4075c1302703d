package reward

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/dist"
)

// TestScoreFileRanks: no_robots' 500 rows scored in batches of 32 over 2 in-process ranks give
// every rank one process's rewards, and rank 0 writes a file byte-identical to one process's;
// rank 1 writes nothing.
func TestScoreFileRanks(t *testing.T) {
	in := sharedData(t, "no_robots_test_sft.parquet")
	_, dir := storiesRM(t, 5)
	s, err := NewScorer(dir, WithChatTemplate("llama-2"), WithBatchSize(32), WithMaxLength(64))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	one := filepath.Join(tmp, "one.parquet")
	want, err := ScoreFileOn(context.Background(), dist.Single(), s, FileConfig{Input: in, Output: one})
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{filepath.Join(tmp, "two.parquet"), filepath.Join(tmp, "rank1.parquet")}
	got := make([]FileResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, c := range dist.Local(2) {
		wg.Go(func() {
			got[r], errs[r] = ScoreFileOn(context.Background(), c, s, FileConfig{Input: in, Output: outs[r]})
		})
	}
	wg.Wait()
	for r := range 2 {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		if got[r].Rows != want.Rows || !slices.Equal(got[r].Rewards, want.Rewards) {
			t.Errorf("rank %d: rewards differ from one process's", r)
		}
	}
	a, err := os.ReadFile(one)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(outs[0]); err != nil || !bytes.Equal(a, b) {
		t.Errorf("rank 0's file differs from one process's (%v)", err)
	}
	if _, err := os.Stat(outs[1]); !os.IsNotExist(err) {
		t.Errorf("rank 1 wrote %s (%v)", outs[1], err)
	}
	if want.Rows <= 32 {
		t.Fatalf("%d rows: one batch, nothing for rank 1", want.Rows)
	}
}
