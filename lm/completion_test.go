package lm

import (
	"fmt"
	"math"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/model"
)

// TestCompletionLogProbs cuts two completions out of a pass whose log-prob at flat position i is
// −i, and names the completion holding a NaN.
func TestCompletionLogProbs(t *testing.T) {
	b := data.CompletionBatch([][]int32{{1, 2, 3, 4}, {5, 6}}, []int{1, 0}, []int{2, 1}, 0) // T 4
	pass := func(nan int) func(*data.Batch) (model.Stats, error) {
		return func(b *data.Batch) (model.Stats, error) {
			lp := make([]float64, b.B*b.T)
			for i := range lp {
				lp[i] = -float64(i)
			}
			if nan >= 0 {
				lp[nan] = math.NaN()
			}
			return model.Stats{TokenLogProb: lp}, nil
		}
	}
	got, err := CompletionLogProbs(pass(-1), b, []int{1, 0}, []int{2, 1})
	if err != nil || fmt.Sprint(got) != "[[-1 -2] [-4]]" {
		t.Fatalf("got %v, %v; want [[-1 -2] [-4]]", got, err)
	}
	if _, err := CompletionLogProbs(pass(4), b, []int{1, 0}, []int{2, 1}); err == nil || err.Error() != "completion 1: log-prob NaN" {
		t.Fatalf("NaN at completion 1: got %v", err)
	}
	if _, err := CompletionLogProbs(pass(3), b, []int{1, 0}, []int{2, 1}); err != nil {
		t.Fatalf("a NaN outside every completion (row 0's last position): %v", err)
	}
}
