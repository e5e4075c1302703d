package ppo

import (
	"fmt"
	"math"
)

// KL estimators (PPOConfig.kl_estimator).
const (
	KLK1 = "k1" // log π − log π_ref: unbiased, may be negative per token
	KLK3 = "k3" // (r − 1) − log r with r = π_ref/π: unbiased, never negative, lower variance
)

// Config holds TRL's PPOConfig keys, with its defaults from DefaultConfig.
type Config struct {
	KLCoef            float64  `mapstructure:"kl_coef" doc:"weight of the per-token KL penalty in the reward (default 0.05)"`
	KLEstimator       string   `mapstructure:"kl_estimator" doc:"k1 or k3 (default k1)"`
	Cliprange         float64  `mapstructure:"cliprange" doc:"policy ratio clip (default 0.2)"`
	CliprangeValue    float64  `mapstructure:"cliprange_value" doc:"value prediction clip around the old values (default 0.2)"`
	VFCoef            float64  `mapstructure:"vf_coef" doc:"weight of the value loss (default 0.1)"`
	Gamma             float64  `mapstructure:"gamma" doc:"discount (default 1.0)"`
	Lam               float64  `mapstructure:"lam" doc:"GAE lambda (default 0.95)"`
	NumPPOEpochs      int      `mapstructure:"num_ppo_epochs" doc:"passes over each batch of rollouts (default 4)"`
	NumMiniBatches    int      `mapstructure:"num_mini_batches" doc:"mini-batches per pass (default 1)"`
	ResponseLength    int      `mapstructure:"response_length" doc:"most tokens sampled per response (default 53)"`
	Temperature       float64  `mapstructure:"temperature" doc:"sampling temperature (default 0.7)"`
	WhitenRewards     bool     `mapstructure:"whiten_rewards" doc:"whiten the per-token rewards (keeping their mean) before GAE (default false)"`
	MissingEOSPenalty *float64 `mapstructure:"missing_eos_penalty" doc:"subtracted from the score of a response without an EOS token (default none)"`
	StopToken         string   `mapstructure:"stop_token" doc:"eos: responses are cut after the EOS token (default none)"`
}

// DefaultConfig is TRL's PPOConfig defaults.
func DefaultConfig() Config {
	return Config{KLCoef: 0.05, KLEstimator: KLK1, Cliprange: 0.2, CliprangeValue: 0.2, VFCoef: 0.1, Gamma: 1, Lam: 0.95,
		NumPPOEpochs: 4, NumMiniBatches: 1, ResponseLength: 53, Temperature: 0.7}
}

// Validate checks the keys; errors name the key.
func (c Config) Validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.KLEstimator != KLK1 && c.KLEstimator != KLK3:
		return fmt.Errorf("kl_estimator %q: want k1 or k3", c.KLEstimator)
	case !finite(c.KLCoef) || c.KLCoef < 0:
		return fmt.Errorf("kl_coef %v: want >= 0", c.KLCoef)
	case !finite(c.Cliprange) || c.Cliprange <= 0:
		return fmt.Errorf("cliprange %v: want > 0", c.Cliprange)
	case !finite(c.CliprangeValue) || c.CliprangeValue <= 0:
		return fmt.Errorf("cliprange_value %v: want > 0", c.CliprangeValue)
	case !finite(c.VFCoef) || c.VFCoef < 0:
		return fmt.Errorf("vf_coef %v: want >= 0", c.VFCoef)
	case !finite(c.Gamma) || c.Gamma < 0 || c.Gamma > 1:
		return fmt.Errorf("gamma %v: want a value in [0, 1]", c.Gamma)
	case !finite(c.Lam) || c.Lam < 0 || c.Lam > 1:
		return fmt.Errorf("lam %v: want a value in [0, 1]", c.Lam)
	case c.NumPPOEpochs < 1:
		return fmt.Errorf("num_ppo_epochs %d: want >= 1", c.NumPPOEpochs)
	case c.NumMiniBatches < 1:
		return fmt.Errorf("num_mini_batches %d: want >= 1", c.NumMiniBatches)
	case c.ResponseLength < 1:
		return fmt.Errorf("response_length %d: want >= 1", c.ResponseLength)
	case !finite(c.Temperature) || c.Temperature <= 0:
		return fmt.Errorf("temperature %v: want > 0", c.Temperature)
	case c.MissingEOSPenalty != nil && (!finite(*c.MissingEOSPenalty) || *c.MissingEOSPenalty < 0):
		return fmt.Errorf("missing_eos_penalty %v: want >= 0", *c.MissingEOSPenalty)
	case c.StopToken != "" && c.StopToken != "eos":
		return fmt.Errorf("stop_token %q: want eos or nothing", c.StopToken)
	}
	return nil
}

// KL is the per-token KL estimate of the policy against the reference from their log-probs:
// k1 = lp − ref, k3 = (e^{ref−lp} − 1) − (ref − lp), as TRL's PPOTrainer.
func KL(estimator string, lp, ref []float64) ([]float64, error) {
	if len(lp) != len(ref) {
		return nil, fmt.Errorf("ppo kl: %d log-probs, %d reference log-probs", len(lp), len(ref))
	}
	out := make([]float64, len(lp))
	for t := range lp {
		switch estimator {
		case KLK1:
			out[t] = lp[t] - ref[t]
		case KLK3:
			x := ref[t] - lp[t]
			out[t] = math.Expm1(x) - x
		default:
			return nil, fmt.Errorf("kl_estimator %q: want k1 or k3", estimator)
		}
	}
	return out, nil
}

// Rewards is one response's per-token reward: −kl_coef·kl at every token, plus the score at the
// last one; a response without EOS first loses missing_eos_penalty from its score (TRL's
// PPOTrainer).
func Rewards(c Config, score float64, kl []float64, hasEOS bool) []float64 {
	if !hasEOS && c.MissingEOSPenalty != nil {
		score -= *c.MissingEOSPenalty
	}
	out := make([]float64, len(kl))
	for t, k := range kl {
		out[t] = -c.KLCoef * k
	}
	if len(out) > 0 {
		out[len(out)-1] += score
	}
	return out
}

// Whiten is TRL's masked_whiten over all values of xs (one slice per response): (x − mean)/√(var + 1e-8)
// with the unbiased variance (n/(n−1) times the mean square deviation); with shiftMean false the
// mean is added back, as whiten_rewards does.
func Whiten(xs [][]float64, shiftMean bool) error {
	var n, sum float64
	for _, x := range xs {
		for _, v := range x {
			sum += v
			n++
		}
	}
	if n < 2 {
		return fmt.Errorf("ppo whiten: %v values; the unbiased variance needs at least 2", n)
	}
	mean := sum / n
	var ss float64
	for _, x := range xs {
		for _, v := range x {
			ss += (v - mean) * (v - mean)
		}
	}
	inv := 1 / math.Sqrt(ss/n*n/(n-1)+1e-8)
	for _, x := range xs {
		for t := range x {
			x[t] = (x[t] - mean) * inv
			if !shiftMean {
				x[t] += mean
			}
		}
	}
	return nil
}

// GAE is generalized advantage estimation over one response: δ_t = r_t + γ·V_{t+1} − V_t (V after
// the last token is 0), A_t = δ_t + γλ·A_{t+1}; returns are A + V.
func GAE(rewards, values []float64, gamma, lam float64) (adv, ret []float64, err error) {
	if len(rewards) != len(values) {
		return nil, nil, fmt.Errorf("ppo gae: %d rewards, %d values", len(rewards), len(values))
	}
	n := len(rewards)
	adv, ret = make([]float64, n), make([]float64, n)
	last := 0.0
	for t := n - 1; t >= 0; t-- {
		next := 0.0
		if t+1 < n {
			next = values[t+1]
		}
		delta := rewards[t] + gamma*next - values[t]
		last = delta + gamma*lam*last
		adv[t] = last
		ret[t] = last + values[t]
	}
	return adv, ret, nil
}

// Token is one response token in a PPO mini-batch.
type Token struct {
	LogProb, OldLogProb float64 // current and rollout policy
	Advantage, Return   float64
	Value, OldValue     float64 // current and rollout value predictions
}

// LossOutput is the mini-batch loss and its derivatives.
type LossOutput struct {
	Loss, PolicyLoss, ValueLoss float64
	// DLogProb and DValue are dLoss/dLogProb and dLoss/dValue per token.
	DLogProb, DValue []float64
	// ClipFrac and VFClipFrac are TRL's policy/clipfrac_avg and val/clipfrac_avg.
	ClipFrac, VFClipFrac float64
}

// Loss is TRL's PPO loss over the tokens of a mini-batch (masked means over the tokens):
//
//	pg = mean max(−A·r, −A·clip(r, 1−cliprange, 1+cliprange)),  r = exp(lp − old)
//	vf = ½ mean max((V − R)², (clip(V, V_old − cliprange_value, V_old + cliprange_value) − R)²)
//	loss = pg + vf_coef·vf
func Loss(c Config, toks []Token) (LossOutput, error) {
	if len(toks) == 0 {
		return LossOutput{}, fmt.Errorf("ppo loss: no tokens")
	}
	n := float64(len(toks))
	out := LossOutput{DLogProb: make([]float64, len(toks)), DValue: make([]float64, len(toks))}
	for i, tk := range toks {
		r := math.Exp(tk.LogProb - tk.OldLogProb)
		rc := math.Min(math.Max(r, 1-c.Cliprange), 1+c.Cliprange)
		l1, l2 := -tk.Advantage*r, -tk.Advantage*rc
		if l2 > l1 {
			out.PolicyLoss += l2 / n
			out.ClipFrac += 1 / n
			// l2 is constant in lp where r is clipped; where it is not, l2 = l1.
			if r >= 1-c.Cliprange && r <= 1+c.Cliprange {
				out.DLogProb[i] = -tk.Advantage * r / n
			}
		} else {
			out.PolicyLoss += l1 / n
			out.DLogProb[i] = -tk.Advantage * r / n
		}
		vc := math.Min(math.Max(tk.Value, tk.OldValue-c.CliprangeValue), tk.OldValue+c.CliprangeValue)
		v1, v2 := (tk.Value-tk.Return)*(tk.Value-tk.Return), (vc-tk.Return)*(vc-tk.Return)
		if v2 > v1 {
			out.ValueLoss += 0.5 * v2 / n
			out.VFClipFrac += 1 / n
			if tk.Value >= tk.OldValue-c.CliprangeValue && tk.Value <= tk.OldValue+c.CliprangeValue {
				out.DValue[i] = c.VFCoef * (tk.Value - tk.Return) / n
			}
		} else {
			out.ValueLoss += 0.5 * v1 / n
			out.DValue[i] = c.VFCoef * (tk.Value - tk.Return) / n
		}
	}
	out.Loss = out.PolicyLoss + c.VFCoef*out.ValueLoss
	if math.IsNaN(out.Loss) || math.IsInf(out.Loss, 0) {
		return LossOutput{}, fmt.Errorf("ppo loss: %v", out.Loss)
	}
	return out, nil
}
