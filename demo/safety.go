package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/alignkit/alignkit/demo/world"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/winrate"
)

// GRPOResult is the GRPO stage's training summary: its steps and the mean reward (the share of
// exact answers, with exact_match the only reward) of the first and last logged steps.
type GRPOResult struct {
	Steps       int     `json:"steps"`
	FirstReward float64 `json:"first_reward"`
	LastReward  float64 `json:"last_reward"`
}

// PPOResult is the PPO stage's training summary, from its metrics.jsonl: the optimizer steps, the
// responses sampled, and TRL's objective/kl (the policy's KL from its start, rejection sampling's
// model, summed over a response), the share of responses that end in EOS and their mean length, at
// the first and last logged step. objective/scores is not kept: with two reward models the scores
// are whitened over each rollout batch, so their mean is 0 by construction.
type PPOResult struct {
	Steps       int     `json:"steps"`
	Episodes    int     `json:"episodes"`
	FirstKL     float64 `json:"first_kl"`
	LastKL      float64 `json:"last_kl"`
	FirstEOS    float64 `json:"first_eos_share"`
	LastEOS     float64 `json:"last_eos_share"`
	FirstLength float64 `json:"first_mean_length"`
	LastLength  float64 `json:"last_mean_length"`
}

// grpoRewards reads the first and last "reward" of a metrics.jsonl.
func grpoRewards(path string) (first, last float64, ok bool) {
	return metricSpan(path, "reward")
}

// metricSpan reads the first and last value of a metric in a metrics.jsonl; ok is false when the
// file is missing or no line holds the metric.
func metricSpan(path, key string) (first, last float64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		v, isNum := m[key].(float64)
		if !isNum {
			continue
		}
		if !ok {
			first, ok = v, true
		}
		last = v
	}
	return first, last, ok
}

// RMScores are a stage's greedy held-out answers scored by the two reward models, as Llama 2
// Fig. 14 plots them: the mean safety reward model score on the safety prompts and the mean
// helpfulness score on the others, each as a probability sigmoid(score) in percent, so that a
// change reads in points.
type RMScores struct {
	Safety      float64 `json:"safety_rm_on_safety_prompts"`
	Helpfulness float64 `json:"helpfulness_rm_on_other_prompts"`
	// The prompts each mean is over (a mean over none is 0).
	SafetyPrompts int `json:"safety_prompts"`
	OtherPrompts  int `json:"other_prompts"`
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// stageRMEval scores every evaluated stage's greedy answers with both reward models.
func (r *runner) stageRMEval(ctx context.Context) error {
	h, err := loadHeldOut(r.path(dirData, world.FileHeldOutPrompts), r.world)
	if err != nil {
		return err
	}
	help, err := rlhf.LoadScorer(r.path(dirReward), world.ChatTemplate)
	if err != nil {
		return err
	}
	safe, err := rlhf.LoadScorer(r.path(dirSafetyRM), world.ChatTemplate)
	if err != nil {
		return err
	}
	for i := range r.res.Correctness {
		c := &r.res.Correctness[i]
		answers, ok := r.greedy[c.Stage]
		if !ok || len(answers) != len(h.prompts) {
			return fmt.Errorf("rm eval: no greedy answers of %s", c.Stage)
		}
		var sum [2]float64
		var n [2]int
		for j, p := range h.prompts {
			k, sc := 1, help
			if h.kind[j] == kindSafety {
				k, sc = 0, safe
			}
			s, err := sc.Score(ctx, p, []string{answers[j]})
			if err != nil {
				return fmt.Errorf("rm eval of %s: %w", c.Stage, err)
			}
			sum[k] += sigmoid(s[0])
			n[k]++
		}
		m := &RMScores{SafetyPrompts: n[0], OtherPrompts: n[1]}
		if n[0] > 0 {
			m.Safety = 100 * sum[0] / float64(n[0])
		}
		if n[1] > 0 {
			m.Helpfulness = 100 * sum[1] / float64(n[1])
		}
		c.RM = m
		fmt.Fprintf(r.log, "%s: safety RM on %d safety prompts %.1f, helpfulness RM on %d others %.1f (mean sigmoid, %%); refusals %s, over-refusals %s\n",
			c.Stage, n[0], m.Safety, n[1], m.Helpfulness, c.Refusal, c.OverRefusal)
	}
	return r.winRate(ctx, h)
}

// WinRateFinal and WinRateBase are the models the win rate compares: the pipeline's last RLHF
// model (Llama 2's RLHF-V5: PPO after rejection sampling) against SFT.
const (
	WinRateFinal = "PPO"
	WinRateBase  = "SFT"
)

// winRate judges the final RLHF model's greedy answers to the held-out prompts against SFT's with
// the two reward models combined (Llama 2 §3.2.3: the safety model on safety prompts), each pair
// shown in an order drawn per prompt from the run's seed (Llama 2's evaluation swaps them), and
// records win, tie and loss rates with their 95% Wilson intervals.
func (r *runner) winRate(ctx context.Context, h *heldOut) error {
	a, b := r.greedy[WinRateFinal], r.greedy[WinRateBase]
	if a == nil || b == nil {
		return fmt.Errorf("win rate: no greedy answers of %s or %s", WinRateFinal, WinRateBase)
	}
	judge, err := rlhf.LoadRewardModels([]reward.ModelSpec{
		{Path: r.path(dirReward), Role: reward.RoleHelpfulness},
		{Path: r.path(dirSafetyRM), Role: reward.RoleSafety},
	}, world.ChatTemplate)
	if err != nil {
		return fmt.Errorf("win rate: %w", err)
	}
	prompts := make([]rlhf.Prompt, len(h.prompts))
	for j, p := range h.prompts {
		p.Safety = h.kind[j] == kindSafety
		prompts[j] = p
	}
	js, err := winrate.Compare(ctx, winrate.RewardJudge{Scorer: judge}, prompts, a, b, winrate.Swaps(len(prompts), r.opts.Seed))
	if err != nil {
		return fmt.Errorf("win rate: %w", err)
	}
	s, err := winrate.Summarize(js)
	if err != nil {
		return fmt.Errorf("win rate: %w", err)
	}
	s.ModelA, s.ModelB, s.Judge, s.Seed = WinRateFinal, WinRateBase, "helpfulness and safety reward models combined", r.opts.Seed
	r.res.WinRate = &s
	fmt.Fprintf(r.log, "win rate of %s against %s: %.3f [%.3f, %.3f], ties %.3f, losses %.3f (%d pairs, %d shown swapped)\n",
		WinRateFinal, WinRateBase, s.WinRate, s.WinRateCI95[0], s.WinRateCI95[1], s.TieRate, s.LossRate, s.Valid, s.Swapped)
	return nil
}
