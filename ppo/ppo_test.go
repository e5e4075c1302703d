package ppo

import (
	"math"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g", what, got, want)
	}
}

// A 3-token episode, γ 0.9, λ 0.8, rewards [0.1, −0.2, 1.0], values [0.5, 0.4, 0.3]:
//
//	t=2: δ = 1.0 + 0.9·0 − 0.3 = 0.7;           A = 0.7
//	t=1: δ = −0.2 + 0.9·0.3 − 0.4 = −0.33;      A = −0.33 + 0.72·0.7 = 0.174
//	t=0: δ = 0.1 + 0.9·0.4 − 0.5 = −0.04;       A = −0.04 + 0.72·0.174 = 0.08528
//
// returns A + V = [0.58528, 0.574, 1.0].
func TestGAE(t *testing.T) {
	adv, ret, err := GAE([]float64{0.1, -0.2, 1.0}, []float64{0.5, 0.4, 0.3}, 0.9, 0.8)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{0.08528, 0.174, 0.7} {
		near(t, "advantage", adv[i], want, 1e-12)
	}
	for i, want := range []float64{0.58528, 0.574, 1.0} {
		near(t, "return", ret[i], want, 1e-12)
	}
	// γ = λ = 1 with zero values: every advantage is the sum of the rewards still to come.
	adv, _, _ = GAE([]float64{1, 2, 3}, []float64{0, 0, 0}, 1, 1)
	for i, want := range []float64{6, 5, 3} {
		near(t, "undiscounted advantage", adv[i], want, 1e-12)
	}
	if _, _, err := GAE([]float64{1}, nil, 1, 1); err == nil || err.Error() != "ppo gae: 1 rewards, 0 values" {
		t.Fatal(err)
	}
}

// lp = [−1, −2], ref = [−1.5, −1.8]: k1 = lp − ref = [0.5, −0.2]; k3 with x = ref − lp = [−0.5, 0.2]:
// e^−0.5 − 1 + 0.5 = 0.1065306597, e^0.2 − 1 − 0.2 = 0.0214027582 (never negative).
func TestKL(t *testing.T) {
	lp, ref := []float64{-1, -2}, []float64{-1.5, -1.8}
	k1, err := KL(KLK1, lp, ref)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "k1[0]", k1[0], 0.5, 1e-15)
	near(t, "k1[1]", k1[1], -0.2, 1e-15)
	k3, err := KL(KLK3, lp, ref)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "k3[0]", k3[0], 0.10653065971263342, 1e-15)
	near(t, "k3[1]", k3[1], 0.021402758160169806, 1e-15)
	if _, err := KL("k2", lp, ref); err == nil || err.Error() != `kl_estimator "k2": want k1 or k3` {
		t.Fatal(err)
	}
}

// kl_coef 0.05 and per-token KL [0.5, −0.2, 0.1]: −0.05·kl = [−0.025, 0.01, −0.005], and the score 2 is
// added at the last token: 1.995. Without an EOS and missing_eos_penalty 1 the score is 1: 0.995.
func TestRewardsAndMissingEOS(t *testing.T) {
	c := DefaultConfig()
	pen := 1.0
	c.MissingEOSPenalty = &pen
	kl := []float64{0.5, -0.2, 0.1}
	for _, tc := range []struct {
		eos  bool
		want []float64
	}{
		{true, []float64{-0.025, 0.01, 1.995}},
		{false, []float64{-0.025, 0.01, 0.995}},
	} {
		got := Rewards(c, 2, kl, tc.eos)
		for i := range got {
			near(t, "reward", got[i], tc.want[i], 1e-15)
		}
	}
	// Without missing_eos_penalty the score stands.
	c.MissingEOSPenalty = nil
	near(t, "no penalty", Rewards(c, 2, kl, false)[2], 1.995, 1e-15)
}

// [1, 2] and [3, 4]: mean 2.5, Σ(x − mean)² = 5, unbiased variance 5/3, std 1.2909944:
// whitened [−1.1618950, −0.3872983, 0.3872983, 1.1618950]; whiten_rewards keeps the mean (+2.5).
func TestWhiten(t *testing.T) {
	want := []float64{-1.1618950003483114, -0.3872983334494371, 0.3872983334494371, 1.1618950003483114}
	for _, shift := range []bool{true, false} {
		xs := [][]float64{{1, 2}, {3, 4}}
		if err := Whiten(xs, shift); err != nil {
			t.Fatal(err)
		}
		for i, v := range append(xs[0], xs[1]...) {
			w := want[i]
			if !shift {
				w += 2.5
			}
			near(t, "whitened", v, w, 1e-9)
		}
	}
	if err := Whiten([][]float64{{1}}, true); err == nil {
		t.Fatal("one value whitened")
	}
}

// cliprange 0.2, cliprange_value 0.2, vf_coef 0.1, two tokens:
//
//	A: r 1.5, A +1: max(−1.5, −1.2) = −1.2 (clipped: d = 0);  V 1.0, V_old 0.5, R 0.6: clip(V) = 0.7,
//	   max((0.4)², (0.1)²) = 0.16, unclipped: dvf = vf_coef·(V − R)/n = 0.1·0.4/2 = 0.02
//	B: r 0.9, A −2: −A·r = 1.8 both (inside the range): d = −A·r/n = 0.9;  V 0.2, V_old 0.25, R 1.0:
//	   0.64, dvf = 0.1·(−0.8)/2 = −0.04
//
// pg = (−1.2 + 1.8)/2 = 0.3, vf = ½·(0.16 + 0.64)/2 = 0.2, loss = 0.3 + 0.1·0.2 = 0.32, clipfrac 0.5.
func TestLoss(t *testing.T) {
	c := DefaultConfig()
	toks := []Token{
		{LogProb: -1, OldLogProb: -1 - math.Log(1.5), Advantage: 1, Value: 1, OldValue: 0.5, Return: 0.6},
		{LogProb: -2, OldLogProb: -2 - math.Log(0.9), Advantage: -2, Value: 0.2, OldValue: 0.25, Return: 1},
	}
	out, err := Loss(c, toks)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "policy loss", out.PolicyLoss, 0.3, 1e-12)
	near(t, "value loss", out.ValueLoss, 0.2, 1e-12)
	near(t, "loss", out.Loss, 0.32, 1e-12)
	near(t, "clipfrac", out.ClipFrac, 0.5, 1e-12)
	near(t, "vf clipfrac", out.VFClipFrac, 0, 0)
	for i, want := range []float64{0, 0.9} {
		near(t, "dLoss/dlp", out.DLogProb[i], want, 1e-12)
	}
	for i, want := range []float64{0.02, -0.04} {
		near(t, "dLoss/dV", out.DValue[i], want, 1e-12)
	}
	// A clipped value: V 1.0, V_old 0.5, R 1.5: clip(V) = 0.7, max(0.25, 0.64) = 0.64 from the clipped
	// prediction, constant in V: ½·0.64 = 0.32 and no gradient.
	out, err = Loss(c, []Token{{Advantage: 0, Value: 1, OldValue: 0.5, Return: 1.5}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "clipped value loss", out.ValueLoss, 0.32, 1e-12)
	near(t, "clipped dV", out.DValue[0], 0, 0)
	near(t, "vf clipfrac", out.VFClipFrac, 1, 0)
}

// Both derivatives against central differences, away from the clip kinks.
func TestLossFiniteDifference(t *testing.T) {
	c := DefaultConfig()
	base := []Token{
		{LogProb: -1.1, OldLogProb: -1.0, Advantage: 0.7, Value: 0.3, OldValue: 0.35, Return: 0.9},
		{LogProb: -0.4, OldLogProb: -0.9, Advantage: 1.3, Value: 1.2, OldValue: 0.6, Return: 0.1},
		{LogProb: -2.0, OldLogProb: -1.9, Advantage: -0.5, Value: -0.2, OldValue: -0.1, Return: -1},
	}
	out, err := Loss(c, base)
	if err != nil {
		t.Fatal(err)
	}
	const eps = 1e-6
	at := func(i int, field func(*Token) *float64, d float64) float64 {
		toks := append([]Token(nil), base...)
		*field(&toks[i]) += d
		o, err := Loss(c, toks)
		if err != nil {
			t.Fatal(err)
		}
		return o.Loss
	}
	for i := range base {
		lp := func(tk *Token) *float64 { return &tk.LogProb }
		v := func(tk *Token) *float64 { return &tk.Value }
		near(t, "dLoss/dlp", out.DLogProb[i], (at(i, lp, eps)-at(i, lp, -eps))/(2*eps), 1e-8)
		near(t, "dLoss/dV", out.DValue[i], (at(i, v, eps)-at(i, v, -eps))/(2*eps), 1e-8)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	neg := -1.0
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.KLEstimator = "k2" }, `kl_estimator "k2": want k1 or k3`},
		{func(c *Config) { c.Gamma = 1.5 }, "gamma 1.5: want a value in [0, 1]"},
		{func(c *Config) { c.Lam = math.NaN() }, "lam NaN: want a value in [0, 1]"},
		{func(c *Config) { c.Cliprange = 0 }, "cliprange 0: want > 0"},
		{func(c *Config) { c.NumMiniBatches = 0 }, "num_mini_batches 0: want >= 1"},
		{func(c *Config) { c.MissingEOSPenalty = &neg }, "missing_eos_penalty -1: want >= 0"},
		{func(c *Config) { c.StopToken = "</s>" }, `stop_token "</s>": want eos or nothing`},
	} {
		c := DefaultConfig()
		tc.edit(&c)
		if err := c.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}
