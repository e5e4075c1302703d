package winrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/rlhf"
)

// seedEcho answers prompt i with the seed it was drawn with and the prompt's row, so a chunk given
// the wrong seed or prompts shows in the answers.
type seedEcho struct{}

func (seedEcho) Generate(_ context.Context, prompts []rlhf.Prompt, k int, s rlhf.Sampling) ([][]string, error) {
	out := make([][]string, len(prompts))
	for i, p := range prompts {
		out[i] = []string{fmt.Sprintf("row %d seed %d", p.Row, s.Seed+uint64(i*k))}
	}
	return out, nil
}

// rowJudge picks the first answer on even rows and ties on odd ones, failing on row fail (>= 0).
type rowJudge struct{ fail int }

func (j rowJudge) Judge(_ context.Context, pairs []Shown) ([]Decision, error) {
	out := make([]Decision, len(pairs))
	for i, p := range pairs {
		if p.Prompt.Row == j.fail {
			return nil, fmt.Errorf("judge failed on row %d", p.Prompt.Row)
		}
		out[i] = Decision{Pick: PickFirst, Reply: p.First}
		if p.Prompt.Row%2 == 1 {
			out[i].Pick = PickTie
		}
	}
	return out, nil
}

// onRanks runs fn on every rank of a local group of n and returns each rank's result and error.
func onRanks[T any](n int, fn func(dist.Comm) (T, error)) ([]T, []error) {
	comms := dist.Local(n)
	out, errs := make([]T, n), make([]error, n)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { out[r], errs[r] = fn(c) })
	}
	wg.Wait()
	return out, errs
}

// TestRanksMatchOneProcess: answers and judgements dealt over 2 and 3 ranks (19 prompts: chunks
// of 8, 8 and 3) are one process's on every rank, seeds included; a judge's failure reaches every
// rank.
func TestRanksMatchOneProcess(t *testing.T) {
	ctx := context.Background()
	prompts := make([]rlhf.Prompt, 19)
	pairs := make([]Shown, len(prompts))
	for i := range prompts {
		prompts[i] = rlhf.Prompt{Text: fmt.Sprint(i), Row: i}
		pairs[i] = Shown{Prompt: prompts[i], First: fmt.Sprint("a", i), Second: fmt.Sprint("b", i)}
	}
	s := rlhf.Sampling{Temperature: 1, Seed: 100}
	wantA, err := Generate(ctx, seedEcho{}, prompts, s)
	if err != nil {
		t.Fatal(err)
	}
	wantD, err := rowJudge{fail: -1}.Judge(ctx, pairs)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3} {
		answers, errs := onRanks(n, func(c dist.Comm) ([]string, error) { return generateOn(ctx, c, seedEcho{}, prompts, s) })
		for r := range n {
			if errs[r] != nil || !slices.Equal(answers[r], wantA) {
				t.Fatalf("%d ranks, rank %d: answers %q (err %v), want %q", n, r, answers[r], errs[r], wantA)
			}
		}
		decisions, errs := onRanks(n, func(c dist.Comm) ([]Decision, error) {
			return rankedJudge{judge: rowJudge{fail: -1}, comm: c}.Judge(ctx, pairs)
		})
		for r := range n {
			if errs[r] != nil || fmt.Sprint(decisions[r]) != fmt.Sprint(wantD) {
				t.Fatalf("%d ranks, rank %d: decisions %v (err %v), want %v", n, r, decisions[r], errs[r], wantD)
			}
		}
		_, errs = onRanks(n, func(c dist.Comm) ([]Decision, error) {
			return rankedJudge{judge: rowJudge{fail: 9}, comm: c}.Judge(ctx, pairs)
		})
		for r := range n {
			if errs[r] == nil || !strings.Contains(errs[r].Error(), "judge failed on row 9") {
				t.Fatalf("%d ranks, rank %d: error %v, want the judge's failure on row 9", n, r, errs[r])
			}
		}
	}
}
