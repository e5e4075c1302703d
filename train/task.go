package train

import (
	"context"
	"encoding/binary"
	"hash/fnv"
)

// Param is one trainable tensor. Value aliases the model's weights: the optimizer updates it in place.
// It carries no gradient: the loop owns the accumulation buffers and hands them to Task.Step, so
// there is one place gradients live.
type Param struct {
	Name  string
	Value []float32
	// NoDecay excludes the tensor from weight decay (RMSNorm gains and biases), as HF's
	// get_decay_parameter_names does.
	NoDecay bool
}

// Batch is one micro-batch handed to Task.Step or Task.Eval.
type Batch struct {
	// Examples are indices into the task's training (Step) or evaluation (Eval) examples. For Step they
	// come from the epoch's shuffled order; for Eval they are in order.
	Examples []int
	// Step is the 1-based optimizer step this micro-batch belongs to (0 for Eval outside training).
	Step int
	// Micro is the micro-batch's position within the step, 0..Accum-1.
	Micro int
	// Accum is the number of micro-batches accumulated into this step.
	Accum int
	// Epoch is the 0-based epoch index.
	Epoch int
	// Seed is the run's seed. A task that needs randomness derives it from (Seed, Step, Micro), which
	// keeps resumed runs exact without any saved generator state.
	Seed int64
}

// Metrics is what one micro-batch reports.
type Metrics struct {
	// Loss is the micro-batch's mean loss (the value whose gradient Step accumulates, before scale).
	Loss float64
	// Tokens is the number of tokens processed (for tokens_per_second and num_tokens).
	Tokens int
	// Values are task metrics such as "mean_token_accuracy", "rewards/chosen" or "accuracy". They are
	// logged as is for training and as "eval_<name>" for evaluation.
	Values map[string]float64
	// Weights say how to average each value across micro-batches (for example the number of loss tokens
	// for mean_token_accuracy, the number of pairs for a reward accuracy). A value without a weight
	// counts as the number of examples in the micro-batch.
	Weights map[string]float64
}

// MeanTokenAccuracy is the Values key a language-modelling task uses for the fraction of loss tokens
// whose argmax is the label, weighted by the number of loss tokens (TRL's mean_token_accuracy); the loop
// logs it as mean_token_accuracy and eval_mean_token_accuracy.
const MeanTokenAccuracy = "mean_token_accuracy"

// Task is what a trainer (sft, dpo, reward, ...) supplies.
//
// Two choices shape it:
//   - Step and Eval take a Batch of example indices rather than a batch number: the loop computes the
//     shuffle from (seed, epoch) and forms the micro-batches, so batch size, accumulation and resume are
//     decided in one place and "2 micro-batches of 1 equals 1 of 2" holds by construction.
//   - Step and Eval take a context so that a long forward/backward pass can stop early on Ctrl-C; the
//     loop then discards the unfinished step and checkpoints the last complete one. Eval receives a
//     context that is never cancelled: an evaluation that has started completes.
type Task interface {
	// Params returns the trainable tensors, in a stable order.
	Params() []Param
	// NumExamples is the number of training examples (after any packing the task does).
	NumExamples() int
	// NumEvalExamples is the number of evaluation examples; 0 disables evaluation.
	NumEvalExamples() int
	// Step runs forward and backward on b.Examples and ADDS scale * dLoss/dParam into grads (one slice
	// per Param, same order and length). scale is the micro-batch's share of the step: its
	// LossUnits over the step's (see LossUnitsTask), or 1/b.Accum for a task without loss units. It
	// must not modify the Params' values.
	Step(ctx context.Context, b Batch, grads [][]float32, scale float32) (Metrics, error)
	// Eval runs the forward pass only on b.Examples of the evaluation set.
	Eval(ctx context.Context, b Batch) (Metrics, error)
	// SaveModel writes the HF model directory (weights, config and tokenizer files) into dir, which exists
	// and is empty.
	SaveModel(dir string) error
}

// LossUnitsTask is implemented by a task whose loss is a mean over units that micro-batches hold in
// different numbers: loss tokens (SFT), pairs (DPO, reward model). Before running a step's
// micro-batches the loop sums their units U (over every rank of a distributed run) and runs each
// with scale = units/U, so the accumulated gradient is that of the mean over all the step's units
// (transformers' num_items_in_batch with average_tokens_across_devices) rather than the mean of the
// micro-batches' means, and the logged loss is Σ Loss·units/U, the same mean. A step whose
// micro-batches hold no unit is an error.
type LossUnitsTask interface {
	// LossUnits is the number of units b.Examples hold (> 0 for a non-empty micro-batch). It must
	// not depend on the weights: the loop may call it on every rank for any micro-batch.
	LossUnits(b Batch) (float64, error)
}

// SampleSeed derives a micro-batch's sampling seed from the run's seed, an optimizer step and the
// micro-batch's index (an RL task samples its rollouts with it): a pure function, so a resumed run
// samples what the uninterrupted one did.
func SampleSeed(seed int64, step, micro int) uint64 {
	h := fnv.New64a()
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(seed))
	binary.LittleEndian.PutUint64(buf[8:], uint64(step))
	binary.LittleEndian.PutUint64(buf[16:], uint64(micro))
	h.Write(buf[:])
	return h.Sum64()
}
