package winrate

import (
	"context"

	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/rlhf"
)

// rankChunk is how many prompts one rank answers or judges at a time under mpirun: chunk c goes to
// rank c mod size, so every rank keeps busy to the end.
const rankChunk = 8

// generateOn is Generate with the prompts dealt over comm's ranks in chunks of rankChunk; every rank
// returns every answer, in prompt order. Chunk c's answers are drawn with seed s.Seed + its first
// prompt's index, so answer i still has seed s.Seed + i: the same answers as one process.
func generateOn(ctx context.Context, comm dist.Comm, gen rlhf.Generator, prompts []rlhf.Prompt, s rlhf.Sampling) ([]string, error) {
	if comm.Size() == 1 {
		return Generate(ctx, gen, prompts, s)
	}
	return inChunks(comm, len(prompts), func(i0, i1 int) ([]string, error) {
		cs := s
		cs.Seed += uint64(i0)
		return Generate(ctx, gen, prompts[i0:i1], cs)
	})
}

// rankedJudge judges the pairs dealt over comm's ranks in chunks of rankChunk and returns every
// decision on every rank, in pair order. A judge decides each pair on its own (the reward judge
// scores a pair's two answers in one call; the LLM judge replies greedily), so the decisions are
// one process's.
type rankedJudge struct {
	judge Judge
	comm  dist.Comm
}

func (r rankedJudge) Judge(ctx context.Context, pairs []Shown) ([]Decision, error) {
	if r.comm.Size() == 1 {
		return r.judge.Judge(ctx, pairs)
	}
	return inChunks(r.comm, len(pairs), func(i0, i1 int) ([]Decision, error) {
		return r.judge.Judge(ctx, pairs[i0:i1])
	})
}

// inChunks runs fn on this rank's share of the chunks of rankChunk items of 0..n-1 (items i0..i1)
// and returns every chunk's items, in order, on every rank (dist.Chunks).
func inChunks[T any](comm dist.Comm, n int, fn func(i0, i1 int) ([]T, error)) ([]T, error) {
	chunks, err := dist.Chunks(comm, (n+rankChunk-1)/rankChunk, func(c int) ([]T, error) {
		return fn(c*rankChunk, min(n, (c+1)*rankChunk))
	})
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, n)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
}
