package sft

import (
	"errors"
	"fmt"

	"github.com/alignkit/alignkit/model"
)

// Loss is TRL's SFT loss over a batch's LM statistics: the mean negative log-likelihood of the
// trained tokens,
//
//	L = -Σ_b LogProb_b / N,   N = Σ_b Tokens_b,
//
// so every trained token weighs 1/N whichever row it sits in. Its derivative with respect to each
// row's summed log-probability is dL/dLogProb_b = -1/N. A batch with no trained token is an error
// (data's batchers never make one).
func Loss(s model.Stats) (loss float64, dLogProb []float64, err error) {
	var lp, n float64
	for b := range s.LogProb {
		lp += s.LogProb[b]
		n += s.Tokens[b]
	}
	if n == 0 {
		return 0, nil, errors.New("sft: the batch has no trained token")
	}
	d := make([]float64, len(s.LogProb))
	for b := range d {
		d[b] = -1 / n
	}
	return -lp / n, d, nil
}

// MeanTokenAccuracy is the fraction of trained tokens whose argmax is the label, and the number of
// trained tokens it averages over (its weight when micro-batches are combined).
func MeanTokenAccuracy(s model.Stats) (acc, tokens float64) {
	var c float64
	for b := range s.Correct {
		c += s.Correct[b]
		tokens += s.Tokens[b]
	}
	if tokens == 0 {
		return 0, 0
	}
	return c / tokens, tokens
}

// nonFinite is the objective's way out of the graph when the loss is NaN or infinite: the graph
// refuses such a loss with an error, while the training loop wants to see the value so that it can
// stop with train.NonFiniteError (which leaves no final model behind).
type nonFinite struct{ loss float64 }

func (e *nonFinite) Error() string { return fmt.Sprintf("sft: loss is %v", e.loss) }
