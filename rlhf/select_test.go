package rlhf

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestBest(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		in   []float64
		want int
	}{
		{nil, -1},
		{[]float64{nan, nan}, -1},
		{[]float64{0.5}, 0},
		{[]float64{1, 3, 2}, 1},
		{[]float64{3, 1, 3}, 0}, // tie: lowest index
		{[]float64{-2, -1, -1}, 1},
		{[]float64{nan, -5, nan, -4}, 3},
		{[]float64{math.Inf(-1), -1e300}, 1},
	}
	for _, tc := range cases {
		if got := Best(tc.in); got != tc.want {
			t.Errorf("Best(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func texts(s ...string) []string { return s }

func summary(ss []Sample) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Text)
	}
	return out
}

// Llama 2's fix for the RLHF-V3 regression: a prompt's SFT targets come from every round so far. Round
// 1's best answer ("a1", 0.9) beats everything round 2 produced, so with keep 1 it stays; with keep 2
// round 2's best ("b0", 0.8) joins it.
func TestPoolAcrossRounds(t *testing.T) {
	for _, tc := range []struct {
		keep int
		want []string
	}{
		{1, []string{"a1"}},
		{2, []string{"a1", "b0"}},
		{3, []string{"a1", "b0", "a0"}},
	} {
		p, err := NewPool(tc.keep)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Add(1, "q", texts("a0", "a1", "a2"), []float64{0.3, 0.9, -1}); err != nil {
			t.Fatal(err)
		}
		if err := p.Add(2, "q", texts("b0", "b1"), []float64{0.8, 0.1}); err != nil {
			t.Fatal(err)
		}
		if got := summary(p.Top("q")); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("keep %d: %v, want %v", tc.keep, got, tc.want)
		}
	}
}

// A later, better round displaces the earlier best; rounds and indices are recorded.
func TestPoolLaterRoundWins(t *testing.T) {
	p, _ := NewPool(1)
	_ = p.Add(0, "q", texts("old"), []float64{0.2})
	_ = p.Add(1, "q", texts("x", "new"), []float64{0.1, 0.7})
	want := []Sample{{Prompt: "q", Text: "new", Reward: 0.7, Round: 1, Index: 1}}
	if got := p.Top("q"); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// Equal rewards keep the sample added first (earlier round, then lower index); a repeated text is
// kept once at its best rank.
func TestPoolTiesAndDuplicates(t *testing.T) {
	p, _ := NewPool(3)
	_ = p.Add(0, "q", texts("a", "b"), []float64{0.5, 0.5})
	_ = p.Add(1, "q", texts("c", "a", "d"), []float64{0.5, 0.9, 0.1})
	// Ranked: a@0.9 (round 1), then the 0.5 ties in insertion order: a (dropped as duplicate), b, c.
	got := p.Top("q")
	if !reflect.DeepEqual(summary(got), []string{"a", "b", "c"}) {
		t.Fatalf("got %v", summary(got))
	}
	if got[0].Round != 1 || got[0].Reward != 0.9 || got[2].Round != 1 || got[2].Index != 0 {
		t.Errorf("got %+v", got)
	}
}

func TestPoolPromptsAndPersistence(t *testing.T) {
	p, _ := NewPool(2)
	_ = p.Add(0, "zeta", texts("z1", "z2", "z3"), []float64{1, 2, 2})
	_ = p.Add(0, "alpha", texts("a1"), []float64{-1})
	_ = p.Add(1, "alpha", texts("a2", "a3"), []float64{-1, -3})
	if got := p.Prompts(); !reflect.DeepEqual(got, []string{"alpha", "zeta"}) {
		t.Errorf("prompts %v", got)
	}
	// alpha: a1 and a2 tie at −1, a1 came first. zeta: z2 and z3 tie at 2, z2 came first.
	if got := summary(p.Samples()); !reflect.DeepEqual(got, []string{"a1", "a2", "z2", "z3"}) {
		t.Errorf("samples %v", got)
	}

	path := filepath.Join(t.TempDir(), "pool.json")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	q, err := LoadPool(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(q.Samples(), p.Samples()) || q.Keep() != 2 {
		t.Fatalf("reloaded %+v, want %+v", q.Samples(), p.Samples())
	}
	// Ties after reload still favour the samples added before the save.
	_ = p.Add(2, "alpha", texts("a4"), []float64{-1})
	_ = q.Add(2, "alpha", texts("a4"), []float64{-1})
	if !reflect.DeepEqual(q.Samples(), p.Samples()) {
		t.Errorf("after reload and add: %v, want %v", summary(q.Samples()), summary(p.Samples()))
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestPoolErrors(t *testing.T) {
	if _, err := NewPool(0); err == nil || err.Error() != "pool keep 0: want at least 1 sample per prompt" {
		t.Errorf("error %v", err)
	}
	p, _ := NewPool(1)
	cases := []struct {
		round int
		t     []string
		r     []float64
		want  string
	}{
		{0, texts("a"), []float64{1, 2}, `prompt "q" round 0: 1 texts but 2 rewards`},
		{-1, texts("a"), []float64{1}, `prompt "q": round -1: want a round >= 0`},
		{0, texts("a", "b"), []float64{1, math.NaN()}, `prompt "q" round 0 sample 1: reward NaN is not finite`},
	}
	for _, tc := range cases {
		if err := p.Add(tc.round, "q", tc.t, tc.r); err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if err := p.Add(0, "empty", nil, nil); err != nil {
		t.Fatal(err)
	}
	if p.Top("q") != nil || len(p.Prompts()) != 0 {
		t.Errorf("a failed or empty Add changed the pool: %v", p.Prompts())
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"keep": 1, "samples": [{"prompt":"q","text":"a"},{"prompt":"q","text":"b"}]}`), 0o644)
	if _, err := LoadPool(bad); err == nil || err.Error() != `pool `+bad+`: prompt "q" has 2 samples: more than keep 1` {
		t.Errorf("error %v", err)
	}
	_ = os.WriteFile(bad, []byte(`{"keep": 0}`), 0o644)
	if _, err := LoadPool(bad); err == nil || err.Error() != `pool `+bad+`: pool keep 0: want at least 1 sample per prompt` {
		t.Errorf("error %v", err)
	}
}
