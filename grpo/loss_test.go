package grpo

import (
	"math"
	"strings"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g", what, got, want)
	}
}

// Two groups of G = 3: [1, 2, 6] and [4, 4, 4].
//
//	group 1: mean 3, centered [-2, -1, 3]; Σ(x−mean)² = 14, torch's unbiased std = √(14/2) = 2.6457513;
//	         scaled: −2/(2.6457513+1e-4) = −0.75590038, −1/… = −0.37795019, 3/… = 1.13385056
//	group 2: constant: centered [0, 0, 0], std 0, scaled 0/(0+1e-4) = 0
func TestAdvantages(t *testing.T) {
	rewards := []float64{1, 2, 6, 4, 4, 4}
	for _, tc := range []struct {
		scale bool
		want  []float64
	}{
		{false, []float64{-2, -1, 3, 0, 0, 0}},
		{true, []float64{-0.7559003756697406, -0.3779501878348703, 1.133850563504611, 0, 0, 0}},
	} {
		adv, std, err := Advantages(rewards, 3, tc.scale)
		if err != nil {
			t.Fatal(err)
		}
		for i := range adv {
			near(t, "advantage", adv[i], tc.want[i], 1e-12)
		}
		near(t, "std group 1", std[0], 2.6457513110645907, 1e-12)
		near(t, "std group 2", std[3], 0, 0)
	}
	for _, tc := range []struct {
		rewards []float64
		g       int
		want    string
	}{
		{[]float64{1, 2}, 1, "num_generations 1: GRPO compares each completion with the others of its group, want >= 2"},
		{[]float64{1, 2, 3}, 2, "grpo advantages: 3 rewards are not whole groups of 2"},
		{[]float64{1, math.NaN()}, 2, "grpo advantages: completion 1: reward NaN"},
	} {
		if _, _, err := Advantages(tc.rewards, tc.g, false); err == nil || err.Error() != tc.want {
			t.Errorf("Advantages(%v, %d): %v, want %q", tc.rewards, tc.g, err, tc.want)
		}
	}
}

// Two groups of G = 2 with rewards [1, 0] and [3, 1] (scale_rewards false): advantages
// [0.5, −0.5, 1, −1]; completions of 2, 3, 1 and 2 tokens, sampled by the current policy (ratio 1,
// β 0), so ℓ_{i,t} = −A_i and the per-completion sums are −1, 1.5, −1, 2 (total 1.5 over 8 tokens):
//
//	grpo:    (1/4)(−1/2 + 1.5/3 − 1/1 + 2/2) = 0;   dℓ/dlp = −A_i/(4·|o_i|) = −1/16, 1/24, −1/4, 1/8
//	bnpo:    1.5/8 = 0.1875;                          −A_i/8
//	dr_grpo: 1.5/(4·4) = 0.09375 (max_completion_length 4);  −A_i/16
//	dapo:    1.5/12 = 0.125 (12 tokens in the generation batch);  −A_i/12
func TestLossNormalisation(t *testing.T) {
	adv, _, err := Advantages([]float64{1, 0, 3, 1}, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	lens := []int{2, 3, 1, 2}
	seqs := make([]Seq, 4)
	for i := range seqs {
		seqs[i] = Seq{LogProbs: make([]float64, lens[i]), Advantage: adv[i]}
		for t := range seqs[i].LogProbs {
			seqs[i].LogProbs[t] = -1 - 0.1*float64(t)
		}
	}
	for _, tc := range []struct {
		typ  string
		loss float64
		d    []float64 // per completion
	}{
		{LossGRPO, 0, []float64{-1.0 / 16, 1.0 / 24, -1.0 / 4, 1.0 / 8}},
		{LossBNPO, 0.1875, []float64{-0.5 / 8, 0.5 / 8, -1.0 / 8, 1.0 / 8}},
		{LossDrGRPO, 0.09375, []float64{-0.5 / 16, 0.5 / 16, -1.0 / 16, 1.0 / 16}},
		{LossDAPO, 0.125, []float64{-0.5 / 12, 0.5 / 12, -1.0 / 12, 1.0 / 12}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			out, err := Loss(LossConfig{Type: tc.typ, EpsilonLow: 0.2, EpsilonHigh: 0.2, MaxCompletionLength: 4, NumItems: 12}, seqs)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "loss", out.Loss, tc.loss, 1e-12)
			for i, d := range out.DLogProbs {
				for _, v := range d {
					near(t, "dLoss/dlp", v, tc.d[i], 1e-12)
				}
			}
			if out.Tokens != 8 || out.ClipRegion != 0 {
				t.Errorf("tokens %d, clip %v", out.Tokens, out.ClipRegion)
			}
		})
	}
}

// One token, bnpo (weight 1), ε_low 0.2, ε_high 0.28, so the ratio is clipped to [0.8, 1.28]:
//
//	r 1.1, A +1: inside:                       ℓ = −1.1,  dℓ/dlp = −A·r = −1.1
//	r 1.5, A +1: min(1.5, 1.28) = 1.28:        ℓ = −1.28, d = 0 (the clipped term), high-clipped
//	r 1.5, A −1: min(−1.5, −1.28) = −1.5:      ℓ = 1.5,   d = −A·r = 1.5 (a bad move is not clipped)
//	r 0.5, A −1: min(−0.5, −0.8) = −0.8:       ℓ = 0.8,   d = 0, low-clipped
//	r 0.5, A +1: min(0.5, 0.8) = 0.5:          ℓ = −0.5,  d = −0.5
func TestClippedSurrogate(t *testing.T) {
	for _, tc := range []struct {
		r, a, loss, d float64
		low, high     float64
	}{
		{1.1, 1, -1.1, -1.1, 0, 0},
		{1.5, 1, -1.28, 0, 0, 1},
		{1.5, -1, 1.5, 1.5, 0, 0},
		{0.5, -1, 0.8, 0, 1, 0},
		{0.5, 1, -0.5, -0.5, 0, 0},
	} {
		lp := -2.0
		s := Seq{LogProbs: []float64{lp}, Old: []float64{lp - math.Log(tc.r)}, Advantage: tc.a}
		out, err := Loss(LossConfig{Type: LossBNPO, EpsilonLow: 0.2, EpsilonHigh: 0.28}, []Seq{s})
		if err != nil {
			t.Fatal(err)
		}
		near(t, "loss", out.Loss, tc.loss, 1e-12)
		near(t, "dLoss/dlp", out.DLogProbs[0][0], tc.d, 1e-12)
		near(t, "clip low", out.ClipLow, tc.low, 0)
		near(t, "clip high", out.ClipHigh, tc.high, 0)
	}
}

// The k3 KL term: with ref − lp = 0.5 and β 0.1, k3 = e^0.5 − 0.5 − 1 = 0.14872127 and its
// derivative β·(1 − e^0.5) = −0.06487213; at lp = ref both are 0.
func TestKLTerm(t *testing.T) {
	s := Seq{LogProbs: []float64{-1.5, -1}, Ref: []float64{-1, -1}}
	out, err := Loss(LossConfig{Type: LossBNPO, Beta: 0.1, EpsilonLow: 0.2, EpsilonHigh: 0.2}, []Seq{s})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "loss", out.Loss, 0.1*0.1487212707001282/2, 1e-12)
	near(t, "kl", out.KL, 0.1487212707001282/2, 1e-12)
	near(t, "d[0]", out.DLogProbs[0][0], -0.06487212707001282/2, 1e-12)
	near(t, "d[1]", out.DLogProbs[0][1], 0, 0)
}

// The derivative against central differences, for every loss type, with moved ratios (some inside
// the clip range, some outside, none at a kink) and a KL term.
func TestLossFiniteDifference(t *testing.T) {
	base := []Seq{
		{LogProbs: []float64{-1.2, -0.3, -2.5}, Old: []float64{-1.25, -0.6, -2.4}, Ref: []float64{-1, -0.5, -3}, Advantage: 0.7},
		{LogProbs: []float64{-0.9, -1.7}, Old: []float64{-0.5, -1.72}, Ref: []float64{-1.1, -1.6}, Advantage: -1.3},
	}
	for _, typ := range []string{LossGRPO, LossBNPO, LossDrGRPO, LossDAPO} {
		c := LossConfig{Type: typ, Beta: 0.04, EpsilonLow: 0.2, EpsilonHigh: 0.28, MaxCompletionLength: 5, NumItems: 7}
		out, err := Loss(c, base)
		if err != nil {
			t.Fatal(err)
		}
		const eps = 1e-6
		for i := range base {
			for j := range base[i].LogProbs {
				at := func(delta float64) float64 {
					seqs := make([]Seq, len(base))
					for k, s := range base {
						s.LogProbs = append([]float64(nil), s.LogProbs...)
						seqs[k] = s
					}
					seqs[i].LogProbs[j] += delta
					o, err := Loss(c, seqs)
					if err != nil {
						t.Fatal(err)
					}
					return o.Loss
				}
				num := (at(eps) - at(-eps)) / (2 * eps)
				near(t, typ+" dLoss/dlp", out.DLogProbs[i][j], num, 1e-8)
			}
		}
	}
}

func TestLossConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		c    LossConfig
		want string
	}{
		{LossConfig{Type: "ppo"}, `loss_type "ppo": want grpo, bnpo, dr_grpo or dapo`},
		{LossConfig{Type: LossGRPO, Beta: -1}, "beta -1: want >= 0"},
		{LossConfig{Type: LossGRPO, EpsilonLow: 1}, "epsilon 1: want a value in [0, 1)"},
		{LossConfig{Type: LossDrGRPO, EpsilonLow: 0.2}, "max_completion_length 0: dr_grpo divides by it, want >= 1"},
	} {
		if _, err := Loss(tc.c, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}
