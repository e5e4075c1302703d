package reward

import (
	"context"
	"errors"
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"
)

// Prepare hands its context to the data reading: a context that has ended stops it before the
// first row, with the file named, and nothing else is done.
func TestPrepareStopsWithContext(t *testing.T) {
	path := testutil.WriteJSONL(t, "rated.jsonl", ratedRows(t, 0, 4)...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Prepare(ctx, smallConfig(t, path))
	want := "reading " + path + ": context canceled after 0 rows"
	if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want %s", err, want)
	}
}
