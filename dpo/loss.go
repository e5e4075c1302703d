package dpo

import (
	"errors"
	"fmt"
	"math"

	"github.com/alignkit/alignkit/train"
)

// Loss type names, as TRL spells them in DPOConfig.loss_type.
const (
	Sigmoid = "sigmoid"
	Robust  = "robust"
	IPO     = "ipo"
	Hinge   = "hinge"
)

// DefaultBeta is TRL's and the DPO paper's default β.
const DefaultBeta = 0.1

// LossConfig selects the DPO variant. The zero value is not valid: start from DefaultLossConfig.
type LossConfig struct {
	Beta           float64 // β > 0: inverse temperature of the implicit reward (IPO: τ, the regulariser)
	LossType       string  // sigmoid, robust, ipo or hinge
	LabelSmoothing float64 // ε: sigmoid (cDPO) and robust only; [0, 0.5) for robust, [0, 1) for sigmoid
	RPOAlpha       float64 // α ≥ 0: weight of the length-normalised chosen NLL (0 disables it)
	ReferenceFree  bool    // πref uniform: the batch's reference log-probs are ignored and taken as 0
}

// DefaultLossConfig is plain DPO with β = 0.1.
func DefaultLossConfig() LossConfig {
	return LossConfig{Beta: DefaultBeta, LossType: Sigmoid}
}

// Validate checks the configuration; its errors name the TRL option at fault.
func (c LossConfig) Validate() error {
	switch c.LossType {
	case Sigmoid, Robust, IPO, Hinge:
	default:
		return fmt.Errorf("loss_type %q: want one of sigmoid, robust, ipo, hinge", c.LossType)
	}
	if !(c.Beta > 0) || math.IsInf(c.Beta, 0) {
		return fmt.Errorf("beta %v: want a finite value > 0", c.Beta)
	}
	eps := c.LabelSmoothing
	if math.IsNaN(eps) || eps < 0 {
		return fmt.Errorf("label_smoothing %v: want a value >= 0", eps)
	}
	switch c.LossType {
	case Robust:
		// The robust loss divides by 1−2ε: at ε = 0.5 it is undefined, and beyond it flips sign.
		if eps >= 0.5 {
			return fmt.Errorf("label_smoothing %v: robust needs a value < 0.5", eps)
		}
	case Sigmoid:
		if eps >= 1 {
			return fmt.Errorf("label_smoothing %v: want a value < 1", eps)
		}
	default:
		// TRL silently ignores ε for these types; a config that sets it almost surely meant another type.
		if eps != 0 {
			return fmt.Errorf("label_smoothing %v: loss_type %q does not use it (only sigmoid and robust do)", eps, c.LossType)
		}
	}
	if math.IsNaN(c.RPOAlpha) || math.IsInf(c.RPOAlpha, 0) || c.RPOAlpha < 0 {
		return fmt.Errorf("rpo_alpha %v: want a finite value >= 0", c.RPOAlpha)
	}
	return nil
}

// needsLengths reports whether the completion lengths enter the loss.
func (c LossConfig) needsLengths() bool { return c.LossType == IPO || c.RPOAlpha > 0 }

// Batch holds one batch of N preference pairs. All log-probs are summed over the completion tokens
// only (prompt tokens excluded). ChosenTokens and RejectedTokens are the completion lengths; they are
// required for ipo and when RPOAlpha > 0, and otherwise may be nil. RefChosen and RefRejected may be
// nil when LossConfig.ReferenceFree is set.
type Batch struct {
	PolicyChosen, PolicyRejected []float64 // (N) log πθ(y|x)
	RefChosen, RefRejected       []float64 // (N) log πref(y|x)
	ChosenTokens, RejectedTokens []float64 // (N) |y|, counted in completion tokens
}

// Output is the loss, its gradient and the diagnostics of one batch.
type Output struct {
	Loss   float64   // mean over the N pairs, including the RPO term
	Losses []float64 // (N) per-pair loss, including the RPO term

	// Gradient of Loss with respect to Batch.PolicyChosen and Batch.PolicyRejected.
	DPolicyChosen, DPolicyRejected []float64 // (N)

	// Implicit rewards β·(log πθ − log πref) (per token for ipo; log πref = 0 when reference-free).
	ChosenRewards, RejectedRewards []float64 // (N)

	// NLL is the mean over pairs of −log πθ(y_w|x)/|y_w|; it is computed whenever ChosenTokens is
	// given, whether or not RPOAlpha uses it, and is 0 otherwise.
	NLL float64

	// Metrics uses TRL's names: rewards/chosen, rewards/rejected, rewards/accuracies,
	// rewards/margins, logps/chosen, logps/rejected (batch means), and nll_loss when RPOAlpha > 0.
	Metrics map[string]float64
}

// Loss computes the DPO-family loss of a batch, its gradient with respect to the policy log-probs,
// the implicit rewards and the metrics. Any NaN or infinite input is an error, not a NaN loss.
func Loss(c LossConfig, b Batch) (Output, error) {
	if err := c.Validate(); err != nil {
		return Output{}, err
	}
	n, err := checkBatch(c, b)
	if err != nil {
		return Output{}, err
	}
	out := Output{
		Losses:          make([]float64, n),
		DPolicyChosen:   make([]float64, n),
		DPolicyRejected: make([]float64, n),
		ChosenRewards:   make([]float64, n),
		RejectedRewards: make([]float64, n),
		Metrics:         map[string]float64{},
	}
	inv := 1 / float64(n)
	var sumLoss, sumNLL, sumAcc, sumLogpC, sumLogpR float64
	for i := 0; i < n; i++ {
		pc, pr := b.PolicyChosen[i], b.PolicyRejected[i]
		var rc, rr float64
		if !c.ReferenceFree {
			rc, rr = b.RefChosen[i], b.RefRejected[i]
		}
		// sc, sr: d(log-prob as used in h)/d(summed policy log-prob); 1 unless ipo averages per token.
		sc, sr := 1.0, 1.0
		if c.LossType == IPO {
			sc, sr = 1/b.ChosenTokens[i], 1/b.RejectedTokens[i]
		}
		chosenRatio := (pc - rc) * sc
		rejectedRatio := (pr - rr) * sr
		h := chosenRatio - rejectedRatio
		l, dldh := pairLoss(c, h)

		// d l/d pc = dl/dh · sc, d l/d pr = −dl/dh · sr.
		dc := dldh * sc
		dr := -dldh * sr
		if b.ChosenTokens != nil {
			nll := -pc / b.ChosenTokens[i]
			sumNLL += nll
			if c.RPOAlpha > 0 {
				l += c.RPOAlpha * nll
				dc += -c.RPOAlpha / b.ChosenTokens[i]
			}
		}
		out.Losses[i] = l
		out.DPolicyChosen[i] = dc * inv
		out.DPolicyRejected[i] = dr * inv
		out.ChosenRewards[i] = c.Beta * chosenRatio
		out.RejectedRewards[i] = c.Beta * rejectedRatio
		sumLoss += l
		if out.ChosenRewards[i] > out.RejectedRewards[i] {
			sumAcc++
		}
		sumLogpC += pc * sc
		sumLogpR += pr * sr
	}
	out.Loss = sumLoss * inv
	if b.ChosenTokens != nil {
		out.NLL = sumNLL * inv
	}
	out.Metrics["rewards/chosen"] = mean(out.ChosenRewards)
	out.Metrics["rewards/rejected"] = mean(out.RejectedRewards)
	out.Metrics["rewards/accuracies"] = sumAcc * inv
	out.Metrics["rewards/margins"] = out.Metrics["rewards/chosen"] - out.Metrics["rewards/rejected"]
	out.Metrics["logps/chosen"] = sumLogpC * inv
	out.Metrics["logps/rejected"] = sumLogpR * inv
	if c.RPOAlpha > 0 {
		out.Metrics["nll_loss"] = out.NLL
	}
	return out, nil
}

// pairLoss returns one pair's preference loss and its derivative with respect to h.
func pairLoss(c LossConfig, h float64) (loss, dldh float64) {
	beta, eps := c.Beta, c.LabelSmoothing
	z := beta * h
	switch c.LossType {
	case Sigmoid:
		// d/dh[−log σ(βh)] = −β·σ(−βh); d/dh[−log σ(−βh)] = β·σ(βh).
		loss = -(1-eps)*train.LogSigmoid(z) - eps*train.LogSigmoid(-z)
		dldh = -beta*(1-eps)*train.Sigmoid(-z) + beta*eps*train.Sigmoid(z)
	case Robust:
		d := 1 - 2*eps
		loss = (-(1-eps)*train.LogSigmoid(z) + eps*train.LogSigmoid(-z)) / d
		dldh = (-beta*(1-eps)*train.Sigmoid(-z) - beta*eps*train.Sigmoid(z)) / d
	case IPO:
		t := h - 1/(2*beta)
		loss = t * t
		dldh = 2 * t
	case Hinge:
		// At the kink (βh = 1) the subgradient 0 is used, as torch's relu does.
		if m := 1 - z; m > 0 {
			loss = m
			dldh = -beta
		}
	}
	return loss, dldh
}

// checkBatch validates the batch against the config and returns N.
func checkBatch(c LossConfig, b Batch) (int, error) {
	n := len(b.PolicyChosen)
	if n == 0 {
		return 0, errors.New("batch.PolicyChosen is empty: want at least one pair")
	}
	type field struct {
		name     string
		v        []float64
		required bool
		length   bool // a completion length: must be > 0
	}
	fields := []field{
		{"PolicyChosen", b.PolicyChosen, true, false},
		{"PolicyRejected", b.PolicyRejected, true, false},
		{"RefChosen", b.RefChosen, !c.ReferenceFree, false},
		{"RefRejected", b.RefRejected, !c.ReferenceFree, false},
		{"ChosenTokens", b.ChosenTokens, c.needsLengths(), true},
		{"RejectedTokens", b.RejectedTokens, c.LossType == IPO, true},
	}
	for _, f := range fields {
		if f.v == nil {
			if f.required {
				return 0, fmt.Errorf("batch.%s is missing: %s", f.name, whyRequired(c, f.name))
			}
			continue
		}
		if c.ReferenceFree && (f.name == "RefChosen" || f.name == "RefRejected") {
			continue // ignored, so not checked either
		}
		if len(f.v) != n {
			return 0, fmt.Errorf("batch.%s has %d entries: want %d, as batch.PolicyChosen", f.name, len(f.v), n)
		}
		for i, x := range f.v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return 0, fmt.Errorf("batch.%s[%d] = %v: want a finite number", f.name, i, x)
			}
			if f.length && !(x > 0) {
				return 0, fmt.Errorf("batch.%s[%d] = %v: want a completion length > 0", f.name, i, x)
			}
		}
	}
	return n, nil
}

func whyRequired(c LossConfig, name string) string {
	switch name {
	case "RefChosen", "RefRejected":
		return "the reference log-probs are required unless reference_free is set"
	case "RejectedTokens":
		return "loss_type ipo averages log-probs per token"
	default:
		if c.LossType == IPO {
			return "loss_type ipo averages log-probs per token"
		}
		return "rpo_alpha > 0 needs the chosen completion lengths"
	}
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
