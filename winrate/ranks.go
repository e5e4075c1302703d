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
	chunks, err := dist.Chunks(comm, numChunks(len(prompts)), func(c int) ([]string, error) {
		i0, i1 := chunkBounds(c, len(prompts))
		cs := s
		cs.Seed += uint64(i0)
		return Generate(ctx, gen, prompts[i0:i1], cs)
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(prompts))
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
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
	chunks, err := dist.Chunks(r.comm, numChunks(len(pairs)), func(c int) ([]Decision, error) {
		i0, i1 := chunkBounds(c, len(pairs))
		return r.judge.Judge(ctx, pairs[i0:i1])
	})
	if err != nil {
		return nil, err
	}
	out := make([]Decision, 0, len(pairs))
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
}

func numChunks(n int) int { return (n + rankChunk - 1) / rankChunk }

func chunkBounds(c, n int) (int, int) { return c * rankChunk, min(n, (c+1)*rankChunk) }
