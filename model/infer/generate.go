package infer

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampling configures Generate. Temperature 0 is greedy decoding (argmax, lowest id on ties); otherwise
// logits are divided by Temperature, cut to the TopK most likely (0: no cut), then to the smallest set
// whose probability reaches TopP (0 or 1: no cut), as transformers' warpers do in that order.
type Sampling struct {
	Temperature  float64
	TopP         float64
	TopK         int
	MaxNewTokens int
	// Seed drives sampling: sequence i of a batch draws from its own generator seeded with Seed+i, so it
	// samples exactly what the same prompt generated alone with Seed+i samples.
	Seed    uint64
	StopIDs []int32 // end-of-sequence ids; the one hit is returned as the last token
	// OnToken, when set, is called with each token as soon as it is sampled, in order within each
	// sequence (seq is the prompt's index), before the next decoding pass. It lets a caller stream
	// text while the batch is still decoding. An error it returns ends Generate with that error
	// (wrapped); nil OnToken changes nothing.
	OnToken func(seq int, id int32) error
}

func (p Sampling) validate() error {
	switch {
	case math.IsNaN(p.Temperature) || p.Temperature < 0:
		return fmt.Errorf("sampling: Temperature %v must be >= 0", p.Temperature)
	case math.IsNaN(p.TopP) || p.TopP < 0 || p.TopP > 1:
		return fmt.Errorf("sampling: TopP %v must be in [0, 1]", p.TopP)
	case p.TopK < 0:
		return fmt.Errorf("sampling: TopK %d must be >= 0", p.TopK)
	case p.MaxNewTokens <= 0:
		return fmt.Errorf("sampling: MaxNewTokens %d must be positive", p.MaxNewTokens)
	}
	return nil
}

// Generate samples a continuation of every prompt. Prompts are prefilled one by one, then all live
// sequences are decoded together, one batched pass (and one goroutine fan-out) per step. A prompt
// that repeats an earlier one in the batch (K samples of one prompt, as best-of-K asks) is prefilled
// once: its copies start from a Fork of the first one's cache, which is bit-identical to prefilling
// again. A sequence ends at a StopIDs token (included in its output), after MaxNewTokens tokens, or
// when it reaches max_position_embeddings. Only the new tokens are returned.
func (e *Engine) Generate(ctx context.Context, prompts [][]int32, p Sampling) ([][]int32, error) {
	return e.generate(ctx, prompts, p, true)
}

// generate is Generate; share=false prefills every prompt even when it repeats (the benchmark's and
// the equivalence test's baseline).
func (e *Engine) generate(ctx context.Context, prompts [][]int32, p Sampling, share bool) ([][]int32, error) {
	if err := e.needLMHead(); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	for i, pr := range prompts {
		if len(pr) == 0 {
			return nil, fmt.Errorf("prompt %d is empty", i)
		}
		if err := e.checkSequence(pr); err != nil {
			return nil, fmt.Errorf("prompt %d: %w", i, err)
		}
	}
	for _, id := range p.StopIDs {
		if id < 0 || int(id) >= e.V {
			return nil, fmt.Errorf("sampling: stop id %d is outside the vocabulary (%d)", id, e.V)
		}
	}
	B := len(prompts)
	out := make([][]int32, B)
	sessions := make([]*Session, B)
	logits := make([][]float32, B)
	samplers := make([]*sampler, B)
	first := map[string]int{} // prompt tokens -> index of the first prompt holding them
	for i, pr := range prompts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		key := promptKey(pr)
		if j, ok := first[key]; ok && share {
			// Prompt j is still exactly as prefilled: decoding starts after the loop.
			sessions[i] = sessions[j].Fork()
			logits[i] = slices.Clone(logits[j])
		} else {
			if !ok {
				first[key] = i
			}
			sessions[i] = e.NewSession(len(pr) + p.MaxNewTokens)
			l, err := sessions[i].Prefill(pr, 0)
			if err != nil {
				return nil, fmt.Errorf("prompt %d: %w", i, err)
			}
			logits[i] = l
		}
		samplers[i] = newSampler(p, p.Seed+uint64(i), e.V)
		out[i] = make([]int32, 0, p.MaxNewTokens)
	}
	live := make([]int, 0, B)
	for i := range prompts {
		live = append(live, i)
	}
	ws := &work{}
	toks := make([]int32, 0, B)
	steps := make([]*Session, 0, B)
	for len(live) > 0 {
		next := live[:0]
		toks, steps = toks[:0], steps[:0]
		for _, i := range live {
			if err := checkLogits(logits[i]); err != nil {
				return nil, fmt.Errorf("sequence %d: token %d: %w", i, len(out[i]), err)
			}
			t := samplers[i].sample(logits[i])
			out[i] = append(out[i], t)
			if p.OnToken != nil {
				if err := p.OnToken(i, t); err != nil {
					return nil, fmt.Errorf("sequence %d: token %d: %w", i, len(out[i])-1, err)
				}
			}
			s := sessions[i]
			if slices.Contains(p.StopIDs, t) || len(out[i]) >= p.MaxNewTokens || s.n >= s.maxLen {
				continue
			}
			next = append(next, i)
			toks = append(toks, t)
			steps = append(steps, s)
		}
		live = next
		if len(live) == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		stepped := e.stepBatch(ws, steps, toks)
		for j, i := range live {
			logits[i] = stepped[j]
		}
	}
	return out, nil
}

// promptKey is a map key holding a prompt's tokens exactly.
func promptKey(pr []int32) string {
	b := make([]byte, 4*len(pr))
	for i, id := range pr {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(id))
	}
	return string(b)
}

// sampler draws tokens for one sequence.
type sampler struct {
	p     Sampling
	rng   *rand.Rand
	idx   []int
	probs []float64
}

func newSampler(p Sampling, seed uint64, V int) *sampler {
	// splitmix64 spreads nearby seeds (Seed, Seed+1, ...) over PCG's state space.
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return &sampler{p: p, rng: rand.New(rand.NewPCG(z, seed)), idx: make([]int, V), probs: make([]float64, V)}
}

func argmax(logits []float32) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

func (s *sampler) sample(logits []float32) int32 {
	if s.p.Temperature == 0 {
		return int32(argmax(logits))
	}
	V := len(logits)
	idx := s.idx[:V]
	for i := range idx {
		idx[i] = i
	}
	// Candidates in descending logit order (ties: lower id first), cut to top-k.
	cut := V
	if s.p.TopK > 0 || (s.p.TopP > 0 && s.p.TopP < 1) {
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case logits[a] > logits[b]:
				return -1
			case logits[a] < logits[b]:
				return 1
			}
			return 0
		})
		if s.p.TopK > 0 {
			cut = min(cut, s.p.TopK)
		}
	}
	idx = idx[:cut]
	m := math.Inf(-1)
	for _, i := range idx {
		m = math.Max(m, float64(logits[i]))
	}
	probs := s.probs[:cut]
	var sum float64
	for j, i := range idx {
		probs[j] = math.Exp((float64(logits[i]) - m) / s.p.Temperature)
		sum += probs[j]
	}
	if s.p.TopP > 0 && s.p.TopP < 1 {
		// Smallest prefix (in descending order) whose mass reaches TopP; the top token always stays.
		var acc float64
		keep := cut
		for j := range probs {
			acc += probs[j] / sum
			if acc >= s.p.TopP {
				keep = j + 1
				break
			}
		}
		probs, idx = probs[:keep], idx[:keep]
		sum = 0
		for _, q := range probs {
			sum += q
		}
	}
	u := s.rng.Float64() * sum
	for j, q := range probs {
		u -= q
		if u < 0 {
			return int32(idx[j])
		}
	}
	return int32(idx[len(idx)-1])
}
