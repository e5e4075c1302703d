package reward

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/train"
)

// TestLoadPairsErrors: a file without rows and a null rating are refused with the file and row.
func TestLoadPairsErrors(t *testing.T) {
	empty := testutil.WriteJSONL(t, "empty.jsonl")
	null := testutil.WriteJSONL(t, "null.jsonl",
		map[string]any{"prompt": "The cat", "chosen": " sat.", "rejected": " flew.", "rating": "better"},
		map[string]any{"prompt": "The dog", "chosen": " ran.", "rejected": " sang.", "rating": nil})
	for _, tc := range []struct {
		name, path, rating, want string
	}{
		{"no rows", empty, "", empty + ": no rows"},
		{"null rating", null, "rating", null + `: row 1: rating column "rating" is null`},
	} {
		_, err := LoadPairs(tc.path, nil, tc.rating, nil)
		if errText(err) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, errText(err), tc.want)
		}
	}
}

func TestBucketAccuracyNaN(t *testing.T) {
	_, _, err := BucketAccuracy([]float64{1, math.NaN()}, []float64{0, 0}, []string{"a", "b"})
	if want := "pair 1: reward is NaN"; errText(err) != want {
		t.Errorf("error %s, want %s", errText(err), want)
	}
}

// TestLoadTruncationErrors: a truncation file that does not parse or holds negative lengths is
// refused naming it; a directory without one scores at the whole context.
func TestLoadTruncationErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"negative", `{"max_length": -1, "max_prompt_length": 0}`, ": max_length and max_prompt_length must be >= 0"},
		{"not json", `max_length: 5`, ": invalid character 'm' looking for beginning of value"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, TruncationFile)
		if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := loadTruncation(dir); errText(err) != path+tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, errText(err), path+tc.want)
		}
	}
	if tr, err := loadTruncation(t.TempDir()); err != nil || tr != (Truncation{}) {
		t.Errorf("no file: %+v, %v; want the zero Truncation", tr, err)
	}
}

func TestEvalWithoutData(t *testing.T) {
	_, err := (&Task{}).Eval(context.Background(), train.Batch{Examples: []int{0}})
	if want := "reward: no evaluation data"; errText(err) != want {
		t.Errorf("error %s, want %s", errText(err), want)
	}
}
