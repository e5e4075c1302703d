package dpo

import (
	"math"
	"math/rand/v2"
	"testing"
)

const tol = 1e-12

func near(a, b, eps float64) bool { return math.Abs(a-b) <= eps*math.Max(1, math.Abs(b)) }

// onePair is the hand case used by the closed forms below:
// chosen ratio = −10 − (−12) = 2, rejected ratio = −15 − (−13) = −2, so h = 4 and, with β = 0.1, βh = 0.4.
func onePair() Batch {
	return Batch{
		PolicyChosen: []float64{-10}, PolicyRejected: []float64{-15},
		RefChosen: []float64{-12}, RefRejected: []float64{-13},
		ChosenTokens: []float64{4}, RejectedTokens: []float64{2},
	}
}

// zeroPair has policy == reference, so h = 0 and every ratio is 0.
func zeroPair() Batch {
	return Batch{
		PolicyChosen: []float64{-7}, PolicyRejected: []float64{-9},
		RefChosen: []float64{-7}, RefRejected: []float64{-9},
		ChosenTokens: []float64{5}, RejectedTokens: []float64{3},
	}
}

func TestLossClosedForms(t *testing.T) {
	// softplus(x) = log(1+e^x) = −log σ(−x); softplus(x) − softplus(−x) = x.
	sp04 := math.Log1p(math.Exp(-0.4)) // −log σ(0.4) = 0.5130152523999526
	cases := []struct {
		name string
		cfg  LossConfig
		b    Batch
		want float64
	}{
		// h = 0: −log σ(0) = log 2.
		{"sigmoid h=0", LossConfig{Beta: 0.1, LossType: Sigmoid}, zeroPair(), math.Ln2},
		// IPO with zero ratios: (0 − 1/(2·0.1))² = 5² = 25 = 1/(4β²).
		{"ipo h=0", LossConfig{Beta: 0.1, LossType: IPO}, zeroPair(), 25},
		{"ipo h=0 beta 0.5", LossConfig{Beta: 0.5, LossType: IPO}, zeroPair(), 1},
		// hinge: max(0, 1 − 0) = 1.
		{"hinge h=0", LossConfig{Beta: 0.1, LossType: Hinge}, zeroPair(), 1},
		// With ε the two smoothing terms at h = 0 are both log 2: (1−ε)·log2 + ε·log2 = log 2.
		{"cdpo h=0", LossConfig{Beta: 0.1, LossType: Sigmoid, LabelSmoothing: 0.2}, zeroPair(), math.Ln2},
		// robust at h=0: [(1−ε)·log2 − ε·log2]/(1−2ε) = log 2.
		{"robust h=0", LossConfig{Beta: 0.1, LossType: Robust, LabelSmoothing: 0.3}, zeroPair(), math.Ln2},
		// βh = 0.4: −log σ(0.4) = softplus(−0.4) = 0.5130152523999526.
		{"sigmoid h=4", LossConfig{Beta: 0.1, LossType: Sigmoid}, onePair(), 0.5130152523999526},
		// cDPO ε=0.1: 0.9·softplus(−0.4) + 0.1·softplus(0.4) = softplus(−0.4) + 0.1·0.4 = 0.5530152523999526.
		{"cdpo h=4", LossConfig{Beta: 0.1, LossType: Sigmoid, LabelSmoothing: 0.1}, onePair(), sp04 + 0.04},
		// robust ε=0.1: [0.9·softplus(−0.4) − 0.1·softplus(0.4)]/0.8
		//   = [0.9·sp − 0.1·(sp + 0.4)]/0.8 = sp − 0.05 = 0.46301525239995256.
		{"robust h=4", LossConfig{Beta: 0.1, LossType: Robust, LabelSmoothing: 0.1}, onePair(), sp04 - 0.05},
		// IPO averages per token: chosen ratio 2/4 = 0.5, rejected −2/2 = −1, h = 1.5; (1.5 − 5)² = 12.25.
		{"ipo h=1.5", LossConfig{Beta: 0.1, LossType: IPO}, onePair(), 12.25},
		// hinge: max(0, 1 − 0.4) = 0.6.
		{"hinge h=4", LossConfig{Beta: 0.1, LossType: Hinge}, onePair(), 0.6},
		// hinge past the margin: β=0.5, βh = 2 > 1, loss 0.
		{"hinge satisfied", LossConfig{Beta: 0.5, LossType: Hinge}, onePair(), 0},
		// sigmoid with β = 1 and h = 4: softplus(−4) = log(1 + e^−4) = 0.01814992791780978.
		{"sigmoid beta 1", LossConfig{Beta: 1, LossType: Sigmoid}, onePair(), 0.01814992791780978},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Loss(tc.cfg, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if !near(out.Loss, tc.want, tol) {
				t.Errorf("loss = %.17g, want %.17g", out.Loss, tc.want)
			}
		})
	}
}

// randomBatch draws plausible summed log-probs: policy and reference near each other.
func randomBatch(rng *rand.Rand, n int) Batch {
	b := Batch{}
	for i := 0; i < n; i++ {
		lc := float64(1 + rng.IntN(30))
		lr := float64(1 + rng.IntN(30))
		rc := -lc * (0.5 + 2*rng.Float64())
		rr := -lr * (0.5 + 2*rng.Float64())
		b.RefChosen = append(b.RefChosen, rc)
		b.RefRejected = append(b.RefRejected, rr)
		b.PolicyChosen = append(b.PolicyChosen, rc+rng.NormFloat64()*3)
		b.PolicyRejected = append(b.PolicyRejected, rr+rng.NormFloat64()*3)
		b.ChosenTokens = append(b.ChosenTokens, lc)
		b.RejectedTokens = append(b.RejectedTokens, lr)
	}
	return b
}

func clone(b Batch) Batch {
	cp := func(v []float64) []float64 { return append([]float64(nil), v...) }
	return Batch{cp(b.PolicyChosen), cp(b.PolicyRejected), cp(b.RefChosen), cp(b.RefRejected), cp(b.ChosenTokens), cp(b.RejectedTokens)}
}

// TestLossGradientFiniteDifference checks DPolicyChosen and DPolicyRejected against central
// differences of Loss for every loss type and option.
func TestLossGradientFiniteDifference(t *testing.T) {
	configs := []LossConfig{
		{Beta: 0.1, LossType: Sigmoid},
		{Beta: 0.5, LossType: Sigmoid, LabelSmoothing: 0.15},
		{Beta: 0.1, LossType: Robust, LabelSmoothing: 0.2},
		{Beta: 0.1, LossType: IPO},
		{Beta: 0.1, LossType: Hinge},
		{Beta: 0.2, LossType: Sigmoid, RPOAlpha: 0.7},
		{Beta: 0.1, LossType: IPO, RPOAlpha: 1},
		{Beta: 0.3, LossType: Sigmoid, ReferenceFree: true},
		{Beta: 0.05, LossType: Hinge, RPOAlpha: 0.5, ReferenceFree: true},
	}
	const step = 1e-5
	for _, c := range configs {
		rng := rand.New(rand.NewPCG(7, 11))
		b := randomBatch(rng, 6)
		out, err := Loss(c, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, side := range []string{"chosen", "rejected"} {
			for i := range b.PolicyChosen {
				fd := func(delta float64) float64 {
					p := clone(b)
					if side == "chosen" {
						p.PolicyChosen[i] += delta
					} else {
						p.PolicyRejected[i] += delta
					}
					o, err := Loss(c, p)
					if err != nil {
						t.Fatal(err)
					}
					return o.Loss
				}
				num := (fd(step) - fd(-step)) / (2 * step)
				got := out.DPolicyChosen[i]
				if side == "rejected" {
					got = out.DPolicyRejected[i]
				}
				if c.LossType == Hinge {
					// Skip pairs within one step of the kink, where the two one-sided slopes differ.
					h := (b.PolicyChosen[i] - b.RefChosen[i]) - (b.PolicyRejected[i] - b.RefRejected[i])
					if c.ReferenceFree {
						h = b.PolicyChosen[i] - b.PolicyRejected[i]
					}
					if math.Abs(1-c.Beta*h) < 1e-3 {
						continue
					}
				}
				if math.Abs(got-num) > 1e-8+1e-6*math.Abs(num) {
					t.Errorf("%+v d/d%s[%d]: analytic %.12g, finite difference %.12g", c, side, i, got, num)
				}
			}
		}
	}
}

// At step 0 the policy is the reference: every reward is 0, h = 0 and the loss is ln 2. The
// gradient of −log σ(βh) at h = 0 is −β·σ(0) = −β/2 per pair, divided by N for the mean.
func TestStepZero(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := randomBatch(rng, 4)
	b.PolicyChosen = append([]float64(nil), b.RefChosen...)
	b.PolicyRejected = append([]float64(nil), b.RefRejected...)
	out, err := Loss(DefaultLossConfig(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !near(out.Loss, math.Ln2, tol) {
		t.Errorf("loss = %v, want ln 2", out.Loss)
	}
	for i := range b.PolicyChosen {
		if out.ChosenRewards[i] != 0 || out.RejectedRewards[i] != 0 {
			t.Errorf("pair %d: rewards %v, %v, want 0", i, out.ChosenRewards[i], out.RejectedRewards[i])
		}
		if !near(out.DPolicyChosen[i], -0.1/2/4, tol) || !near(out.DPolicyRejected[i], 0.1/2/4, tol) {
			t.Errorf("pair %d: grads %v, %v, want ∓0.0125", i, out.DPolicyChosen[i], out.DPolicyRejected[i])
		}
	}
	for _, k := range []string{"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} {
		if out.Metrics[k] != 0 {
			t.Errorf("%s = %v, want 0", k, out.Metrics[k])
		}
	}
	if _, ok := out.Metrics["nll_loss"]; ok {
		t.Error("nll_loss reported without rpo_alpha")
	}
}

// Reference-free: πref uniform, so h = log πθ(y_w) − log πθ(y_l) = −3 − (−5) = 2 and the rewards
// are β·log πθ: 0.1·(−3) = −0.3 and 0.1·(−5) = −0.5. Loss = softplus(−0.2) = log(1 + e^−0.2).
func TestReferenceFree(t *testing.T) {
	c := DefaultLossConfig()
	c.ReferenceFree = true
	b := Batch{PolicyChosen: []float64{-3}, PolicyRejected: []float64{-5}}
	out, err := Loss(c, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Log1p(math.Exp(-0.2)); !near(out.Loss, want, tol) {
		t.Errorf("loss = %v, want %v", out.Loss, want)
	}
	if !near(out.ChosenRewards[0], -0.3, tol) || !near(out.RejectedRewards[0], -0.5, tol) {
		t.Errorf("rewards = %v, %v, want -0.3, -0.5", out.ChosenRewards[0], out.RejectedRewards[0])
	}
	// Reference values, if present, are ignored.
	b.RefChosen, b.RefRejected = []float64{-100}, []float64{-1}
	out2, err := Loss(c, b)
	if err != nil {
		t.Fatal(err)
	}
	if out2.Loss != out.Loss {
		t.Errorf("reference-free loss changed with ref log-probs: %v vs %v", out2.Loss, out.Loss)
	}
}

// RPO at step 0 (h = 0): loss = ln 2 + α·(−log πθ(y_w)/|y_w|) = ln 2 + 0.5·(7/5) = ln 2 + 0.7.
// The chosen gradient gains −α/|y_w| = −0.1: total −β/2 − 0.1 = −0.15 (N = 1).
func TestRPOAlpha(t *testing.T) {
	c := LossConfig{Beta: 0.1, LossType: Sigmoid, RPOAlpha: 0.5}
	out, err := Loss(c, zeroPair())
	if err != nil {
		t.Fatal(err)
	}
	if !near(out.Loss, math.Ln2+0.7, tol) {
		t.Errorf("loss = %v, want ln2 + 0.7", out.Loss)
	}
	if !near(out.NLL, 1.4, tol) || !near(out.Metrics["nll_loss"], 1.4, tol) {
		t.Errorf("nll = %v, metric %v, want 1.4", out.NLL, out.Metrics["nll_loss"])
	}
	if !near(out.DPolicyChosen[0], -0.15, tol) || !near(out.DPolicyRejected[0], 0.05, tol) {
		t.Errorf("grads = %v, %v, want -0.15, 0.05", out.DPolicyChosen[0], out.DPolicyRejected[0])
	}
}

// Three pairs with β = 0.5:
//
//	pair 0: chosen ratio −1 − (−2) = 1, rejected −4 − (−3) = −1: rewards 0.5, −0.5 (correct)
//	pair 1: chosen ratio −5 − (−5) = 0, rejected −2 − (−4) = 2:  rewards 0, 1       (wrong)
//	pair 2: chosen ratio −3 − (−6) = 3, rejected −8 − (−8) = 0:  rewards 1.5, 0     (correct)
//
// rewards/chosen = (0.5+0+1.5)/3 = 2/3, rewards/rejected = (−0.5+1+0)/3 = 1/6,
// margins = 2/3 − 1/6 = 1/2, accuracies = 2/3, logps/chosen = (−1−5−3)/3 = −3,
// logps/rejected = (−4−2−8)/3 = −14/3.
func TestMetricsHandCase(t *testing.T) {
	b := Batch{
		PolicyChosen: []float64{-1, -5, -3}, RefChosen: []float64{-2, -5, -6},
		PolicyRejected: []float64{-4, -2, -8}, RefRejected: []float64{-3, -4, -8},
	}
	out, err := Loss(LossConfig{Beta: 0.5, LossType: Sigmoid}, b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"rewards/chosen": 2.0 / 3, "rewards/rejected": 1.0 / 6, "rewards/margins": 0.5,
		"rewards/accuracies": 2.0 / 3, "logps/chosen": -3, "logps/rejected": -14.0 / 3,
	}
	for k, v := range want {
		if !near(out.Metrics[k], v, tol) {
			t.Errorf("%s = %v, want %v", k, out.Metrics[k], v)
		}
	}
	if len(out.Metrics) != len(want) {
		t.Errorf("metrics %v: want exactly %d keys", out.Metrics, len(want))
	}
	// h = 2, −2, 3 with β = 0.5: mean of softplus(−1), softplus(1), softplus(−1.5).
	sp := func(x float64) float64 { return math.Log1p(math.Exp(x)) }
	if wantLoss := (sp(-1) + sp(1) + sp(-1.5)) / 3; !near(out.Loss, wantLoss, tol) {
		t.Errorf("loss = %v, want %v", out.Loss, wantLoss)
	}
}

// IPO reports per-token rewards and log-probs, as TRL does: chosen (−10 − (−12))/4 = 0.5 → reward
// 0.05; rejected (−15 − (−13))/2 = −1 → −0.1; logps/chosen = −10/4, logps/rejected = −15/2.
func TestIPOPerTokenRewards(t *testing.T) {
	out, err := Loss(LossConfig{Beta: 0.1, LossType: IPO}, onePair())
	if err != nil {
		t.Fatal(err)
	}
	if !near(out.ChosenRewards[0], 0.05, tol) || !near(out.RejectedRewards[0], -0.1, tol) {
		t.Errorf("rewards = %v, %v", out.ChosenRewards[0], out.RejectedRewards[0])
	}
	if !near(out.Metrics["logps/chosen"], -2.5, tol) || !near(out.Metrics["logps/rejected"], -7.5, tol) {
		t.Errorf("logps = %v, %v", out.Metrics["logps/chosen"], out.Metrics["logps/rejected"])
	}
}

// Extreme margins must not overflow: βh = ±1000.
func TestLossStableAtExtremes(t *testing.T) {
	for _, h := range []float64{1e4, -1e4} {
		b := Batch{PolicyChosen: []float64{h}, PolicyRejected: []float64{0}, RefChosen: []float64{0}, RefRejected: []float64{0}}
		for _, c := range []LossConfig{{Beta: 0.1, LossType: Sigmoid, LabelSmoothing: 0.1}, {Beta: 0.1, LossType: Robust, LabelSmoothing: 0.1}} {
			out, err := Loss(c, b)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(out.Loss) || math.IsInf(out.Loss, 0) || math.IsNaN(out.DPolicyChosen[0]) {
				t.Errorf("%v h=%v: loss %v grad %v", c.LossType, h, out.Loss, out.DPolicyChosen[0])
			}
		}
	}
}

func TestValidateErrors(t *testing.T) {
	cases := []struct {
		cfg  LossConfig
		want string
	}{
		{LossConfig{Beta: 0.1, LossType: "foo"}, `loss_type "foo": want one of sigmoid, robust, ipo, hinge`},
		{LossConfig{Beta: 0, LossType: Sigmoid}, "beta 0: want a finite value > 0"},
		{LossConfig{Beta: -1, LossType: Sigmoid}, "beta -1: want a finite value > 0"},
		{LossConfig{Beta: 0.1, LossType: Robust, LabelSmoothing: 0.5}, "label_smoothing 0.5: robust needs a value < 0.5"},
		{LossConfig{Beta: 0.1, LossType: Sigmoid, LabelSmoothing: -0.1}, "label_smoothing -0.1: want a value >= 0"},
		{LossConfig{Beta: 0.1, LossType: Sigmoid, LabelSmoothing: 1}, "label_smoothing 1: want a value < 1"},
		{LossConfig{Beta: 0.1, LossType: IPO, LabelSmoothing: 0.1}, `label_smoothing 0.1: loss_type "ipo" does not use it (only sigmoid and robust do)`},
		{LossConfig{Beta: 0.1, LossType: Sigmoid, RPOAlpha: -1}, "rpo_alpha -1: want a finite value >= 0"},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if err := DefaultLossConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestBatchErrors(t *testing.T) {
	nan := math.NaN()
	base := zeroPair
	cases := []struct {
		name string
		cfg  LossConfig
		mod  func(*Batch)
		want string
	}{
		{"nan", DefaultLossConfig(), func(b *Batch) { b.PolicyRejected[0] = nan }, "batch.PolicyRejected[0] = NaN: want a finite number"},
		{"inf ref", DefaultLossConfig(), func(b *Batch) { b.RefChosen[0] = math.Inf(-1) }, "batch.RefChosen[0] = -Inf: want a finite number"},
		{"empty", DefaultLossConfig(), func(b *Batch) { *b = Batch{} }, "batch.PolicyChosen is empty: want at least one pair"},
		{"length", DefaultLossConfig(), func(b *Batch) { b.RefRejected = []float64{1, 2} }, "batch.RefRejected has 2 entries: want 1, as batch.PolicyChosen"},
		{"no ref", DefaultLossConfig(), func(b *Batch) { b.RefChosen = nil }, "batch.RefChosen is missing: the reference log-probs are required unless reference_free is set"},
		{"ipo lengths", LossConfig{Beta: 0.1, LossType: IPO}, func(b *Batch) { b.RejectedTokens = nil }, "batch.RejectedTokens is missing: loss_type ipo averages log-probs per token"},
		{"rpo lengths", LossConfig{Beta: 0.1, LossType: Sigmoid, RPOAlpha: 1}, func(b *Batch) { b.ChosenTokens = nil }, "batch.ChosenTokens is missing: rpo_alpha > 0 needs the chosen completion lengths"},
		{"zero length", LossConfig{Beta: 0.1, LossType: IPO}, func(b *Batch) { b.ChosenTokens[0] = 0 }, "batch.ChosenTokens[0] = 0: want a completion length > 0"},
		{"bad config", LossConfig{Beta: 0.1, LossType: "dpo"}, func(b *Batch) {}, `loss_type "dpo": want one of sigmoid, robust, ipo, hinge`},
	}
	for _, tc := range cases {
		b := base()
		tc.mod(&b)
		_, err := Loss(tc.cfg, b)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
