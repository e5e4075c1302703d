package grpo

import (
	"fmt"
	"math"
)

// Loss types (TRL's GRPOConfig.loss_type). They differ only in how the per-token losses ℓ_{i,t}
// are summed into one number (TRL's GRPOTrainer._compute_loss):
//
//	grpo:    (1/N) Σ_i (1/|o_i|) Σ_t ℓ_{i,t}        each completion's mean, then the batch mean
//	bnpo:    Σ_{i,t} ℓ_{i,t} / Σ_i |o_i|             the mean over the batch's completion tokens
//	dr_grpo: Σ_{i,t} ℓ_{i,t} / (N·max_completion_length)  (Liu et al. 2025, "Dr. GRPO")
//	dapo:    Σ_{i,t} ℓ_{i,t} / num_items_in_batch    the tokens of the whole generation batch (Yu et al. 2025)
//
// with |o_i| clamped to at least 1, as TRL's clamp(min=1).
const (
	LossGRPO   = "grpo"
	LossBNPO   = "bnpo"
	LossDrGRPO = "dr_grpo"
	LossDAPO   = "dapo"
)

// LossConfig holds the keys the loss reads.
type LossConfig struct {
	Type string
	// Beta is the KL coefficient (0: no reference model, no KL term).
	Beta float64
	// EpsilonLow and EpsilonHigh bound the ratio to [1−EpsilonLow, 1+EpsilonHigh].
	EpsilonLow, EpsilonHigh float64
	// MaxCompletionLength is dr_grpo's constant denominator.
	MaxCompletionLength int
	// NumItems is dapo's denominator: the completion tokens of the whole generation batch (0: the
	// tokens of the sequences given).
	NumItems float64
}

// Seq is one sampled completion: per completion token, the current policy's log-prob, the sampling
// policy's (Old; nil when the policy has not moved since sampling, num_iterations 1: the ratio is
// then exactly 1, as TRL's old_per_token_logps = per_token_logps.detach()), and the reference's (Ref;
// nil when Beta is 0).
type Seq struct {
	LogProbs, Old, Ref []float64
	Advantage          float64
}

// Output is the loss, its derivative with respect to every LogProbs entry, and TRL's metrics.
type Output struct {
	Loss float64
	// DLogProbs[i][t] is dLoss/dSeqs[i].LogProbs[t].
	DLogProbs [][]float64
	// KL is the mean k3 estimate over the completion tokens (0 without Beta), TRL's "kl".
	KL float64
	// ClipLow, ClipHigh and ClipRegion are the fractions of completion tokens whose ratio was clipped
	// below (with a negative advantage), above (with a positive one), or either: TRL's
	// clip_ratio/low_mean, clip_ratio/high_mean and clip_ratio/region_mean.
	ClipLow, ClipHigh, ClipRegion float64
	// Tokens is the number of completion tokens.
	Tokens int
}

// Validate checks the loss keys.
func (c LossConfig) Validate() error {
	switch c.Type {
	case LossGRPO, LossBNPO, LossDrGRPO, LossDAPO:
	default:
		return fmt.Errorf("loss_type %q: want grpo, bnpo, dr_grpo or dapo", c.Type)
	}
	switch {
	case math.IsNaN(c.Beta) || c.Beta < 0:
		return fmt.Errorf("beta %v: want >= 0", c.Beta)
	case math.IsNaN(c.EpsilonLow) || c.EpsilonLow < 0 || c.EpsilonLow >= 1:
		return fmt.Errorf("epsilon %v: want a value in [0, 1)", c.EpsilonLow)
	case math.IsNaN(c.EpsilonHigh) || c.EpsilonHigh < 0:
		return fmt.Errorf("epsilon_high %v: want >= 0", c.EpsilonHigh)
	case c.Type == LossDrGRPO && c.MaxCompletionLength < 1:
		return fmt.Errorf("max_completion_length %d: dr_grpo divides by it, want >= 1", c.MaxCompletionLength)
	}
	return nil
}

// Loss is GRPO's objective over seqs. Per completion token, with the ratio r = exp(lp − old) and
// the advantage A of its completion,
//
//	ℓ = −min(r·A, clip(r, 1−ε_low, 1+ε_high)·A) + β·(exp(ref − lp) − (ref − lp) − 1)
//
// the clipped surrogate (Schulman et al. 2017) plus the k3 KL estimator (Schulman 2020, "Approximating
// KL divergence"), summed as c.Type says. Its derivative with respect to lp is
//
//	dℓ/dlp = −A·r   where the unclipped term is the minimum or r lies inside the clip range, else 0
//	       + β·(1 − exp(ref − lp))
//
// times the token's normalisation weight.
func Loss(c LossConfig, seqs []Seq) (Output, error) {
	if err := c.Validate(); err != nil {
		return Output{}, err
	}
	out := Output{DLogProbs: make([][]float64, len(seqs))}
	total := 0
	for i, s := range seqs {
		switch {
		case s.Old != nil && len(s.Old) != len(s.LogProbs):
			return Output{}, fmt.Errorf("grpo loss: completion %d has %d log-probs and %d old log-probs", i, len(s.LogProbs), len(s.Old))
		case c.Beta != 0 && len(s.Ref) != len(s.LogProbs):
			return Output{}, fmt.Errorf("grpo loss: completion %d has %d log-probs and %d reference log-probs", i, len(s.LogProbs), len(s.Ref))
		case math.IsNaN(s.Advantage) || math.IsInf(s.Advantage, 0):
			return Output{}, fmt.Errorf("grpo loss: completion %d: advantage %v", i, s.Advantage)
		}
		total += len(s.LogProbs)
	}
	out.Tokens = total
	n := float64(len(seqs))
	// weight returns the normalisation factor of completion i's tokens.
	weight := func(i int) float64 {
		switch c.Type {
		case LossGRPO:
			return 1 / (n * math.Max(1, float64(len(seqs[i].LogProbs))))
		case LossBNPO:
			return 1 / math.Max(1, float64(total))
		case LossDrGRPO:
			return 1 / (n * float64(c.MaxCompletionLength))
		default: // dapo
			if c.NumItems > 0 {
				return 1 / c.NumItems
			}
			return 1 / math.Max(1, float64(total))
		}
	}
	lo, hi := 1-c.EpsilonLow, 1+c.EpsilonHigh
	var kl, low, high float64
	for i, s := range seqs {
		w := weight(i)
		a := s.Advantage
		d := make([]float64, len(s.LogProbs))
		for t, lp := range s.LogProbs {
			if math.IsNaN(lp) || math.IsInf(lp, 0) {
				return Output{}, fmt.Errorf("grpo loss: completion %d token %d: log-prob %v", i, t, lp)
			}
			r := 1.0
			if s.Old != nil {
				r = math.Exp(lp - s.Old[t])
			}
			rc := math.Min(math.Max(r, lo), hi)
			unclipped, clipped := r*a, rc*a
			l := -math.Min(unclipped, clipped)
			if unclipped <= clipped || (r >= lo && r <= hi) {
				d[t] = -a * r
			}
			switch {
			case r < lo && a < 0:
				low++
			case r > hi && a > 0:
				high++
			}
			if c.Beta != 0 {
				x := s.Ref[t] - lp
				k3 := math.Exp(x) - x - 1
				l += c.Beta * k3
				d[t] += c.Beta * (1 - math.Exp(x))
				kl += k3
			}
			out.Loss += w * l
			d[t] *= w
		}
		out.DLogProbs[i] = d
	}
	if total > 0 {
		out.KL = kl / float64(total)
		out.ClipLow, out.ClipHigh = low/float64(total), high/float64(total)
		out.ClipRegion = (low + high) / float64(total)
	}
	return out, nil
}

// Advantages are GRPO's group-relative advantages of rewards, which hold len(rewards)/g groups of g
// consecutive completions of one prompt: each reward minus its group's mean, divided by the group's
// standard deviation + 1e-4 with scale (TRL's scale_rewards; torch's std, the unbiased one with
// g−1 in the denominator). The second result is each completion's group standard deviation (TRL
// logs its mean as reward_std).
func Advantages(rewards []float64, g int, scale bool) (adv, std []float64, err error) {
	if g < 2 {
		return nil, nil, fmt.Errorf("num_generations %d: GRPO compares each completion with the others of its group, want >= 2", g)
	}
	if len(rewards)%g != 0 {
		return nil, nil, fmt.Errorf("grpo advantages: %d rewards are not whole groups of %d", len(rewards), g)
	}
	adv, std = make([]float64, len(rewards)), make([]float64, len(rewards))
	for lo := 0; lo < len(rewards); lo += g {
		grp := rewards[lo : lo+g]
		var mean float64
		for i, r := range grp {
			if math.IsNaN(r) || math.IsInf(r, 0) {
				return nil, nil, fmt.Errorf("grpo advantages: completion %d: reward %v", lo+i, r)
			}
			mean += r
		}
		mean /= float64(g)
		var ss float64
		for _, r := range grp {
			ss += (r - mean) * (r - mean)
		}
		sd := math.Sqrt(ss / float64(g-1))
		for i, r := range grp {
			adv[lo+i] = r - mean
			if scale {
				adv[lo+i] /= sd + 1e-4
			}
			std[lo+i] = sd
		}
	}
	return adv, std, nil
}
