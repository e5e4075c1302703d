package infer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestGenerateSharedPrefill checks that prefilling a repeated prompt once and forking its cache gives
// exactly what prefilling every copy gives, for every model family, greedy and sampled, and that
// sequence i still samples with Seed+i (what it samples alone with that seed).
func TestGenerateSharedPrefill(t *testing.T) {
	for _, arch := range []string{"LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM"} {
		e, _ := randomEngine(t, testConfig(arch), 11)
		a, b := randomTokens(9, e.V, 1), randomTokens(4, e.V, 2)
		// Repeats of a and b, interleaved, plus a prompt that is a prefix of a (must not be shared).
		prompts := [][]int32{a, a, b, a, b, a[:5], a}
		for _, p := range []Sampling{
			{MaxNewTokens: 10},
			{Temperature: 1.2, TopP: 0.95, TopK: 30, MaxNewTokens: 10, Seed: 7},
			{Temperature: 1, MaxNewTokens: 10, Seed: 3, StopIDs: []int32{2, 5}},
		} {
			name := fmt.Sprintf("%s T=%v", arch, p.Temperature)
			shared, err := e.generate(context.Background(), prompts, p, true)
			if err != nil {
				t.Fatal(err)
			}
			alone, err := e.generate(context.Background(), prompts, p, false)
			if err != nil {
				t.Fatal(err)
			}
			for i := range prompts {
				if !slices.Equal(shared[i], alone[i]) {
					t.Errorf("%s: sequence %d: shared prefill %v, separate prefills %v", name, i, shared[i], alone[i])
				}
				one := p
				one.Seed = p.Seed + uint64(i)
				single := mustGenerate(t, e, [][]int32{prompts[i]}, one)
				if !slices.Equal(shared[i], single[0]) {
					t.Errorf("%s: sequence %d: in the batch %v, alone with seed %d %v", name, i, shared[i], one.Seed, single[0])
				}
			}
			if p.Temperature > 0 && slices.Equal(shared[0], shared[1]) && slices.Equal(shared[0], shared[3]) {
				t.Errorf("%s: the copies of one prompt sampled the same tokens %v: seeds are not per sequence", name, shared[0])
			}
		}
	}
}

// TestSessionFork checks that a fork continues exactly as its parent would and that the two no longer
// share storage afterwards.
func TestSessionFork(t *testing.T) {
	for _, arch := range []string{"LlamaForCausalLM", "MistralForCausalLM"} {
		e, _ := randomEngine(t, testConfig(arch), 5)
		s := e.NewSession(0)
		if _, err := s.Prefill(randomTokens(12, e.V, 3), 0); err != nil { // past the window of 5
			t.Fatal(err)
		}
		f := s.Fork()
		if f.Len() != s.Len() || f.MaxLen() != s.MaxLen() {
			t.Fatalf("%s: fork holds %d/%d tokens, parent %d/%d", arch, f.Len(), f.MaxLen(), s.Len(), s.MaxLen())
		}
		// Advance the fork by other tokens first: the parent must not see them.
		if _, err := f.Step(7); err != nil {
			t.Fatal(err)
		}
		g := s.Fork()
		want, err := s.Step(9)
		if err != nil {
			t.Fatal(err)
		}
		got, err := g.Step(9)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: fork's logits differ from the parent's by %g", arch, maxAbsDiff(got, want))
		}
		other, err := f.Step(9)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(other, want) {
			t.Errorf("%s: a fork advanced by another token gives the parent's logits: storage is shared", arch)
		}
	}
}

// TestOnToken checks that the callback sees every token of every sequence in order, before the
// sequence's next pass, and that its error ends Generate.
func TestOnToken(t *testing.T) {
	e, _ := randomEngine(t, testConfig("LlamaForCausalLM"), 3)
	prompts := [][]int32{randomTokens(3, e.V, 1), randomTokens(6, e.V, 2), randomTokens(3, e.V, 1)}
	p := Sampling{Temperature: 1, MaxNewTokens: 8, Seed: 4, StopIDs: []int32{2}}
	want := mustGenerate(t, e, prompts, p)
	seen := make([][]int32, len(prompts))
	var order []int
	p.OnToken = func(seq int, id int32) error {
		seen[seq] = append(seen[seq], id)
		order = append(order, seq)
		return nil
	}
	got := mustGenerate(t, e, prompts, p)
	for i := range prompts {
		if !slices.Equal(got[i], want[i]) || !slices.Equal(seen[i], want[i]) {
			t.Errorf("sequence %d: with OnToken %v, seen %v, without %v", i, got[i], seen[i], want[i])
		}
	}
	// Tokens arrive step by step: the first len(prompts) calls are each sequence's first token.
	if !slices.Equal(order[:3], []int{0, 1, 2}) {
		t.Errorf("call order starts %v, want one token of each sequence first [0 1 2]", order[:3])
	}

	stop := errors.New("client went away")
	if len(want[1]) < 2 {
		t.Fatalf("sequence 1 ended after %v: the test needs two tokens", want[1])
	}
	count := make([]int, len(prompts))
	p.OnToken = func(seq int, id int32) error {
		count[seq]++
		if seq == 1 && count[seq] == 2 {
			return stop
		}
		return nil
	}
	out, err := e.Generate(context.Background(), prompts, p)
	if !errors.Is(err, stop) || out != nil {
		t.Fatalf("got %v, %v; want no output and the callback's error", out, err)
	}
	if want := "sequence 1: token 1: client went away"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// BenchmarkGenerateK compares K=8 samples of one 256-token prompt with one shared prefill against
// eight separate prefills on stories260K (16 new tokens each, so prefill dominates as in best-of-K
// over long prompts).
func BenchmarkGenerateK(b *testing.B) {
	e := loadStories(b)
	prompt := randomTokens(256, e.V, 1)
	prompts := make([][]int32, 8)
	for i := range prompts {
		prompts[i] = prompt
	}
	p := Sampling{Temperature: 1, MaxNewTokens: 16, Seed: 1}
	for _, share := range []bool{false, true} {
		b.Run(fmt.Sprintf("shared=%v", share), func(b *testing.B) {
			for range b.N {
				if _, err := e.generate(context.Background(), prompts, p, share); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
