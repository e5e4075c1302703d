package infer

import (
	"math"
	"testing"
)

// TestRouteByHand checks Mixtral's top-k renormalisation on hand-derived values. With router logits
// (1, 2, 0.5, 3) and k = 2 the experts are 3 and 1; softmax over all four then renormalising the two
// kept gives e³/(e³+e²) = 1/(1+e⁻¹) and e⁻¹/(1+e⁻¹): the other experts' mass drops out entirely.
func TestRouteByHand(t *testing.T) {
	e1 := math.Exp(-1)
	cases := []struct {
		name    string
		logits  []float32
		k       int
		chosen  []int
		weights []float64
	}{
		{"top-2 of 4", []float32{1, 2, 0.5, 3}, 2, []int{3, 1}, []float64{1 / (1 + e1), e1 / (1 + e1)}},
		// k = 3: weights e³, e², e¹ over their sum; the 0.5 expert is dropped.
		{"top-3 of 4", []float32{1, 2, 0.5, 3}, 3, []int{3, 1, 0},
			[]float64{1 / (1 + e1 + e1*e1), e1 / (1 + e1 + e1*e1), e1 * e1 / (1 + e1 + e1*e1)}},
		// A tie goes to the lower index; top-1 always has weight exactly 1.
		{"top-1 tie", []float32{2, 2, 1}, 1, []int{0}, []float64{1}},
		{"top-2 tie", []float32{-1, 4, 4, 0}, 2, []int{1, 2}, []float64{0.5, 0.5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			probs := make([]float64, len(tc.logits))
			chosen := make([]int, tc.k)
			weights := make([]float32, tc.k)
			route(tc.logits, probs, chosen, weights, true)
			for j := range chosen {
				if chosen[j] != tc.chosen[j] {
					t.Fatalf("chosen %v, want %v", chosen, tc.chosen)
				}
				if d := math.Abs(float64(weights[j]) - tc.weights[j]); d > 1e-7 {
					t.Errorf("weight %d = %.9f, want %.9f", j, weights[j], tc.weights[j])
				}
			}
		})
	}
}
