package reward

import (
	"context"
	"errors"
	"math"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/train"
)

// Task is reward-model training as a train.Task: the loop's example indices are pairs; each
// micro-batch of N pairs is one forward pass over 2N rows (chosen rows, then rejected rows) with
// the score head, and the Bradley–Terry loss of Loss.
type Task struct {
	// describe is recipe.Base.Describe's line for the job's report.
	describe string
	// Model is trained; EvalModel shares its weights and keeps graphs of the evaluation batch height.
	Model, EvalModel *lm.Model
	// TrainData and EvalData collate pairs; EvalData is nil without evaluation data.
	TrainData, EvalData *data.PairBatcher
	// TrainSet and EvalSet give each pair's margin and bucket, indexed like the batchers' pairs.
	TrainSet, EvalSet *PairSet
	// CenterCoef is center_rewards_coefficient.
	CenterCoef float64
	// ChatTemplate is the Jinja source the data was rendered with, stored in the saved model's
	// tokenizer_config.json so that scoring renders conversations the same way ("" stores nothing).
	ChatTemplate string
	// Truncation is the max_length / max_prompt_length the pairs were cut to, saved beside the
	// model so that scoring cuts conversations the same way by default.
	Truncation Truncation
	// Summary describes the data, as Prepare found it.
	Summary Summary
}

var _ train.Task = (*Task)(nil)

var _ train.LossUnitsTask = (*Task)(nil)

// Params are the model's weights, all trained (backbone and score head).
func (t *Task) Params() []train.Param { return t.Model.Params() }

// BarMetrics puts the pair accuracy on the training progress bar.
func (t *Task) BarMetrics() []string { return []string{"accuracy"} }

// NumExamples is the number of training pairs.
func (t *Task) NumExamples() int { return t.TrainData.NumPairs() }

// NumEvalExamples is the number of evaluation pairs (0 without evaluation data).
func (t *Task) NumEvalExamples() int {
	if t.EvalData == nil {
		return 0
	}
	return t.EvalData.NumPairs()
}

// Step runs forward and backward on the pairs b.Examples and adds scale·dLoss/dParam into grads.
// It logs loss, accuracy, margin (mean r_c − r_r), centering and reward/min, reward/mean and
// reward/max (each the micro-batch's, averaged over the logging window).
func (t *Task) Step(_ context.Context, b train.Batch, grads [][]float32, scale float32) (train.Metrics, error) {
	t.Model.SetDropoutSeed(model.DropoutSeed(b.Seed, b.Step, b.Micro)) // LoRA dropout, resumable
	m, _, _, err := t.run(t.Model, t.TrainData, t.TrainSet, b.Examples, grads, scale)
	return m, err
}

// LossUnits is the number of pairs in b: the reward loss is a mean over pairs
// (train.LossUnitsTask).
func (t *Task) LossUnits(b train.Batch) (float64, error) { return float64(len(b.Examples)), nil }

// Eval runs the forward pass on the evaluation pairs b.Examples. Besides Step's metrics it reports
// accuracy/<bucket> per rating (or margin) bucket, which the loop logs as eval_accuracy/<bucket>.
func (t *Task) Eval(_ context.Context, b train.Batch) (train.Metrics, error) {
	if t.EvalData == nil {
		return train.Metrics{}, errors.New("reward: no evaluation data")
	}
	m, rc, rr, err := t.run(t.EvalModel, t.EvalData, t.EvalSet, b.Examples, nil, 0)
	if err != nil || rc == nil || t.EvalSet.Buckets == nil {
		return m, err
	}
	labels := make([]string, len(b.Examples))
	for i, e := range b.Examples {
		labels[i] = t.EvalSet.Buckets[e]
	}
	buckets, _, err := BucketAccuracy(rc, rr, labels)
	if err != nil {
		return train.Metrics{}, err
	}
	if m.Weights == nil {
		m.Weights = map[string]float64{}
	}
	for _, bs := range buckets {
		key := "accuracy/" + bucketKey(bs.Bucket)
		m.Values[key] = bs.Accuracy
		m.Weights[key] = float64(bs.Pairs)
	}
	return m, nil
}

// SaveModel writes the HF reward model directory with its tokenizer files, and the chat template
// the data was rendered with.
func (t *Task) SaveModel(dir string) error {
	if err := recipe.Save(dir, t.Model, t.ChatTemplate); err != nil {
		return err
	}
	return t.Truncation.save(dir)
}

// run is one forward (and, with grads, backward) pass of the reward loss over the pairs sel. It
// returns the chosen and rejected rewards too (nil when the loss was not finite).
func (t *Task) run(m *lm.Model, pb *data.PairBatcher, set *PairSet, sel []int, grads [][]float32, scale float32) (train.Metrics, []float64, []float64, error) {
	batch, err := pb.Pairs(sel)
	if err != nil {
		return train.Metrics{}, nil, nil, err
	}
	n := batch.N
	var margins []float64
	if set.Margins != nil {
		margins = make([]float64, n)
		for i, e := range sel {
			margins[i] = set.Margins[e]
		}
	}
	var out Output
	var rc, rr []float64
	nonFinite, bad := 0.0, false
	obj := func(s model.Stats) (float64, []float64, []float64, error) {
		rw := s.Reward // (2N): chosen rows, then rejected rows
		for _, v := range rw {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				nonFinite, bad = v, true
				return 0, nil, nil, errNonFinite
			}
		}
		rc, rr = append([]float64(nil), rw[:n]...), append([]float64(nil), rw[n:2*n]...)
		o, err := Loss(rc, rr, margins, t.CenterCoef)
		if err != nil {
			return 0, nil, nil, err
		}
		out = o
		return o.Loss, nil, append(append(make([]float64, 0, 2*n), o.DChosen...), o.DRejected...), nil
	}
	tokens := 0
	for _, s := range batch.Segments {
		if s != 0 {
			tokens++
		}
	}
	_, _, err = m.Run(&batch.Batch, model.ScoreHead, obj, grads, scale)
	if bad {
		// Nothing was added to grads; the loop sees the value and stops with its NonFiniteError.
		return train.Metrics{Loss: nonFinite, Tokens: tokens}, nil, nil, nil
	}
	if err != nil {
		return train.Metrics{}, nil, nil, err
	}
	return train.Metrics{Loss: out.Loss, Tokens: tokens, Values: out.Metrics}, rc, rr, nil
}

var errNonFinite = errors.New("non-finite reward")
