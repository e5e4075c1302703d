package data

import (
	"slices"
	"testing"
)

// TestCompletionBatch lays out two sequences by hand: prompt [1 2] + completion [3 4], and prompt
// [5] + completion [6], padded to the longest (4) and to 5.
func TestCompletionBatch(t *testing.T) {
	seqs := [][]int32{{1, 2, 3, 4}, {5, 6}}
	starts, lens := []int{1, 0}, []int{2, 1} // targets 3, 4 of row 0; target 6 of row 1
	for _, c := range []struct {
		T                         int
		tokens, targets, segments []int32
		weights                   []float32
	}{
		{0, []int32{1, 2, 3, 4, 5, 6, 0, 0}, []int32{2, 3, 4, -1, 6, -1, -1, -1}, []int32{1, 1, 1, 1, 1, 1, 0, 0},
			[]float32{0, 1, 1, 0, 1, 0, 0, 0}},
		{5, []int32{1, 2, 3, 4, 0, 5, 6, 0, 0, 0}, []int32{2, 3, 4, -1, -1, 6, -1, -1, -1, -1}, []int32{1, 1, 1, 1, 0, 1, 1, 0, 0, 0},
			[]float32{0, 1, 1, 0, 0, 1, 0, 0, 0, 0}},
	} {
		b := CompletionBatch(seqs, starts, lens, c.T)
		T := max(c.T, 4)
		if b.B != 2 || b.T != T || !slices.Equal(b.Tokens, c.tokens) || !slices.Equal(b.Targets, c.targets) ||
			!slices.Equal(b.Segments, c.segments) || !slices.Equal(b.Weights, c.weights) || !slices.Equal(b.LastIndex, []int32{3, 1}) {
			t.Errorf("T %d: got B %d T %d tokens %v targets %v segments %v weights %v last %v", c.T, b.B, b.T, b.Tokens, b.Targets, b.Segments, b.Weights, b.LastIndex)
		}
		for r := range 2 {
			for p := range T {
				if b.Positions[r*T+p] != int32(p) {
					t.Fatalf("T %d: position %d of row %d is %d", c.T, p, r, b.Positions[r*T+p])
				}
			}
		}
	}
}
