package sft

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

// Task is supervised fine-tuning as a train.Task: the loop's example indices are rows of the
// batchers (one example each, or one packed row each).
type Task struct {
	// Model is trained; EvalModel shares its weights and keeps graphs of the evaluation batch height.
	Model, EvalModel *lm.Model
	// TrainData and EvalData collate rows; EvalData is nil when there is no evaluation data.
	TrainData, EvalData *data.Batcher
	// ChatTemplate, when set, is the Jinja source of the template the data was rendered with, saved
	// with every model written (chat_template.jinja, or tokenizer_config.json's chat_template when
	// the tokenizer had its own), so that the fine-tuned model is prompted the way it was trained.
	ChatTemplate string
	// Summary describes the data, as Prepare found it.
	Summary Summary
}

// newTask trains m on trainData and evaluates on evalData (nil for none). evalRows is the
// evaluation batch height (per_device_eval_batch_size), for which a second lm.Model sharing m's
// weights (and m.Checkpoint) keeps its own graphs.
func newTask(m *lm.Model, trainData, evalData *data.Batcher, evalRows int) *Task {
	t := &Task{Model: m, EvalModel: m, TrainData: trainData, EvalData: evalData}
	if evalData != nil && evalRows != m.Rows {
		t.EvalModel = lm.New(m.Ckpt, evalRows)
		t.EvalModel.Checkpoint = m.Checkpoint
	}
	return t
}

var _ train.Task = (*Task)(nil)

var _ train.LossUnitsTask = (*Task)(nil)

// Params are the model's weights, all trained.
func (t *Task) Params() []train.Param { return t.Model.Params() }

// BarMetrics puts TRL's mean_token_accuracy on the training progress bar.
func (t *Task) BarMetrics() []string { return []string{train.MeanTokenAccuracy} }

// NumExamples is the number of training rows.
func (t *Task) NumExamples() int { return t.TrainData.NumRows() }

// NumEvalExamples is the number of evaluation rows (0 without evaluation data).
func (t *Task) NumEvalExamples() int {
	if t.EvalData == nil {
		return 0
	}
	return t.EvalData.NumRows()
}

// Step runs forward and backward on the rows b.Examples and adds scale·dLoss/dParam into grads.
func (t *Task) Step(_ context.Context, b train.Batch, grads [][]float32, scale float32) (train.Metrics, error) {
	batch, err := t.TrainData.Rows(b.Examples)
	if err != nil {
		return train.Metrics{}, err
	}
	t.Model.SetDropoutSeed(model.DropoutSeed(b.Seed, b.Step, b.Micro)) // LoRA dropout, resumable
	return run(t.Model, batch, grads, scale)
}

// LossUnits is the number of trained tokens in the rows b.Examples (the sum of their target
// weights): the loss is a mean over tokens, so the loop weighs each micro-batch by its share of the
// step's tokens (train.LossUnitsTask).
func (t *Task) LossUnits(b train.Batch) (float64, error) {
	batch, err := t.TrainData.Rows(b.Examples)
	if err != nil {
		return 0, err
	}
	var n float64
	for _, w := range batch.Weights {
		n += float64(w)
	}
	return n, nil
}

// Eval runs the forward pass on the evaluation rows b.Examples.
func (t *Task) Eval(_ context.Context, b train.Batch) (train.Metrics, error) {
	if t.EvalData == nil {
		return train.Metrics{}, errors.New("sft: no evaluation data")
	}
	batch, err := t.EvalData.Rows(b.Examples)
	if err != nil {
		return train.Metrics{}, err
	}
	return run(t.EvalModel, batch, nil, 0)
}

// SaveModel writes the HF model directory with its tokenizer files and, when set, the chat template.
func (t *Task) SaveModel(dir string) error {
	return recipe.Save(dir, t.Model, t.ChatTemplate)
}

// run is one forward (and, with grads, backward) pass of the SFT loss over batch.
func run(m *lm.Model, batch *data.Batch, grads [][]float32, scale float32) (train.Metrics, error) {
	var bad *nonFinite
	obj := func(s model.Stats) (float64, []float64, []float64, error) {
		loss, d, err := Loss(s)
		if err != nil {
			return 0, nil, nil, err
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			bad = &nonFinite{loss}
			return 0, nil, nil, bad
		}
		return loss, d, nil, nil
	}
	tokens := 0
	for _, s := range batch.Segments {
		if s != 0 {
			tokens++
		}
	}
	loss, s, err := m.Run(batch, model.LMHead, obj, grads, scale)
	if bad != nil {
		// Nothing was added to grads; the loop sees the value and stops with NonFiniteError.
		return train.Metrics{Loss: bad.loss, Tokens: tokens}, nil
	}
	if err != nil {
		return train.Metrics{}, err
	}
	acc, n := MeanTokenAccuracy(s)
	met := train.Metrics{
		Loss:    loss,
		Tokens:  tokens,
		Values:  map[string]float64{train.MeanTokenAccuracy: acc},
		Weights: map[string]float64{train.MeanTokenAccuracy: n},
	}
	if m.Weights().Config.IsMoE() {
		met.Values["aux_loss"] = s.AuxLoss
	}
	return met, nil
}
