package train

import (
	"fmt"
	"math"
)

// What the trainer packages (sft, reward, dpo) share around the loop: the loop's keys with a
// trainer's own learning-rate default, the model key every trainer requires, and the numerically
// safe σ and log σ their pairwise losses are written in.

// TrainerDefaults is Defaults with a trainer's own learning_rate default (TRL's SFTConfig,
// RewardConfig and DPOConfig each have one) in place of transformers' DefaultLearningRate.
func (a Args) TrainerDefaults(learningRate float64) Args {
	if a.LearningRate == 0 {
		a.LearningRate = learningRate
	}
	return a.Defaults()
}

// ValidateTrainer is Validate preceded by the check of model_name_or_path, the model a trainer
// starts from, which must be set.
func (a Args) ValidateTrainer(modelNameOrPath string) error {
	if modelNameOrPath == "" {
		return fmt.Errorf("model_name_or_path: must be set (an HF model directory or a .gguf file)")
	}
	return a.Validate()
}

// LogSigmoid is log σ(x) = −softplus(−x), computed without overflow for any finite x.
func LogSigmoid(x float64) float64 {
	if x >= 0 {
		return -math.Log1p(math.Exp(-x))
	}
	return x - math.Log1p(math.Exp(x))
}

// Sigmoid is σ(x), computed without overflow for any finite x.
func Sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}
