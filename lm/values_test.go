package lm_test

import (
	"math"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/reward"
)

// Values is the value head forward: one value per position of the real rows, whatever the graph's
// height (padding rows hidden), and at each row's LastIndex exactly the reward model's Rewards.
func TestValuesMatchRewards(t *testing.T) {
	rm, err := reward.FromCausalLM(testutil.Stories(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	a := rm.Tok.Encode("Once upon a time, there was a cat.", true)
	b2 := rm.Tok.Encode("Lily ran.", true)
	T := len(a)
	b := &data.Batch{B: 2, T: T, Tokens: make([]int32, 2*T), Targets: make([]int32, 2*T), Weights: make([]float32, 2*T),
		Positions: make([]int32, 2*T), Segments: make([]int32, 2*T), LastIndex: []int32{int32(len(a) - 1), int32(len(b2) - 1)}}
	for r, ids := range [][]int32{a, b2} {
		for p := range T {
			b.Positions[r*T+p], b.Targets[r*T+p] = int32(p), -1
			if p < len(ids) {
				b.Tokens[r*T+p], b.Segments[r*T+p] = ids[p], 1
			}
		}
	}
	for _, rows := range []int{0, 4} {
		m := lm.New(rm, rows)
		v, err := m.Values(b)
		if err != nil {
			t.Fatal(err)
		}
		r, err := m.Rewards(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 2*T || len(r) != 2 {
			t.Fatalf("rows %d: %d values, %d rewards", rows, len(v), len(r))
		}
		for k := range 2 {
			if got, want := v[k*T+int(b.LastIndex[k])], r[k]; math.Abs(got-want) > 1e-6*(1+math.Abs(want)) {
				t.Fatalf("rows %d, row %d: value at the last token %v, reward %v", rows, k, got, want)
			}
		}
	}
}
