package train

import (
	"fmt"
	"math"
)

// Args are the training keys shared by every trainer, spelled as in transformers' TrainingArguments /
// TRL's configs. A trainer's own config embeds them with `mapstructure:",squash"`.
//
// A zero value means the documented default (Defaults fills it in). Keys whose zero is a meaningful
// setting that differs from the default (max_grad_norm: 0 disables clipping, seed: 0, report_plots:
// false) are pointers, nil meaning the default. The others carry `zero:"default"`: conf.Load refuses
// a source that sets them to zero explicitly (learning_rate: 0), so a default never replaces a value
// the user wrote.
type Args struct {
	// OutputDir receives checkpoints, logs and the final model. Required.
	OutputDir string `mapstructure:"output_dir" doc:"where checkpoints, logs and the final model go (required)"`
	// MaxSteps, when > 0, is the number of optimizer steps and overrides NumTrainEpochs (the data is
	// cycled as needed). 0 or -1 (HF's "unset"): use NumTrainEpochs.
	MaxSteps int `mapstructure:"max_steps" doc:"number of optimizer steps; overrides num_train_epochs when > 0 (the data is cycled as needed)"`
	// NumTrainEpochs may be fractional; total steps = ceil(epochs * steps per epoch). Default 3.
	NumTrainEpochs float64 `mapstructure:"num_train_epochs" doc:"epochs to train, may be fractional (default 3)" zero:"default"`
	// PerDeviceTrainBatchSize is the number of examples per micro-batch. Default 8.
	PerDeviceTrainBatchSize int `mapstructure:"per_device_train_batch_size" doc:"examples per micro-batch (default 8)" zero:"default"`
	// PerDeviceEvalBatchSize is the number of examples per evaluation batch. Default 8.
	PerDeviceEvalBatchSize int `mapstructure:"per_device_eval_batch_size" doc:"examples per evaluation batch (default 8)" zero:"default"`
	// GradientAccumulationSteps is the number of micro-batches per optimizer step. Default 1.
	GradientAccumulationSteps int `mapstructure:"gradient_accumulation_steps" doc:"micro-batches per optimizer step (default 1)" zero:"default"`
	// LearningRate is the peak learning rate. Default 5e-5 (HF; trainers may preset their own before
	// calling Defaults, e.g. TRL's 2e-5 for SFT, 1e-6 for DPO).
	LearningRate float64 `mapstructure:"learning_rate" doc:"peak learning rate (default 5e-5; SFT 2e-5, DPO 1e-6, reward 1e-5)" zero:"default"`
	// LRSchedulerType is constant (= constant_with_warmup), constant_with_warmup, linear, cosine or
	// cosine_with_min_lr. Default linear.
	LRSchedulerType string `mapstructure:"lr_scheduler_type" doc:"constant, constant_with_warmup, linear, cosine or cosine_with_min_lr (default linear)" zero:"default"`
	// LRSchedulerKwargs holds cosine_with_min_lr's min_lr or min_lr_rate (exactly one of them).
	LRSchedulerKwargs SchedulerKwargs `mapstructure:"lr_scheduler_kwargs" doc:"min_lr or min_lr_rate for cosine_with_min_lr"`
	// WarmupSteps is the number of linear warmup steps. Default 0.
	WarmupSteps int `mapstructure:"warmup_steps" doc:"linear warmup steps (default 0)"`
	// WarmupRatio, used when WarmupSteps is 0, makes warmup ceil(ratio * total steps). Default 0.
	WarmupRatio float64 `mapstructure:"warmup_ratio" doc:"warmup as a share of total steps, used when warmup_steps is 0"`
	// WeightDecay is AdamW's decoupled decay, not applied to NoDecay params. Default 0.
	WeightDecay float64 `mapstructure:"weight_decay" doc:"AdamW decoupled weight decay, never applied to RMSNorm gains (default 0)"`
	// AdamBeta1 default 0.9; AdamBeta2 default 0.999. Their zero means "default", so conf refuses an
	// explicit 0 (zero:"default") rather than silently replacing it.
	AdamBeta1 float64 `mapstructure:"adam_beta1" doc:"AdamW beta1 (default 0.9)" zero:"default"`
	AdamBeta2 float64 `mapstructure:"adam_beta2" zero:"default"`
	// AdamEpsilon default 1e-8.
	AdamEpsilon float64 `mapstructure:"adam_epsilon" doc:"AdamW epsilon (default 1e-8)" zero:"default"`
	// MaxGradNorm clips the global gradient norm; 0 disables clipping (grad_norm is still logged).
	// Default (nil) 1.0.
	MaxGradNorm *float64 `mapstructure:"max_grad_norm" doc:"global gradient-norm clipping; 0 disables it (default 1.0)"`
	// LoggingSteps: a metrics line every this many steps (and at the last step). Default 10 (TRL's).
	LoggingSteps int `mapstructure:"logging_steps" doc:"a metrics line every this many steps (default 10)" zero:"default"`
	// EvalSteps: evaluate every this many steps; 0 evaluates only at the end. Evaluation needs the task
	// to have evaluation examples.
	EvalSteps int `mapstructure:"eval_steps" doc:"evaluate every this many steps; 0 evaluates only at the end"`
	// SaveSteps: checkpoint every this many steps. Default 500.
	SaveSteps int `mapstructure:"save_steps" doc:"checkpoint every this many steps (default 500)" zero:"default"`
	// SaveTotalLimit keeps only the newest this many checkpoints; 0 keeps all.
	SaveTotalLimit int `mapstructure:"save_total_limit" doc:"keep only the newest this many checkpoints; 0 keeps all"`
	// ResumeFromCheckpoint is a checkpoint directory, or "true"/"latest" for the newest complete
	// checkpoint in OutputDir; empty starts afresh.
	ResumeFromCheckpoint string `mapstructure:"resume_from_checkpoint" doc:"a checkpoint directory, or true/latest for the newest one in output_dir"`
	// Seed drives the data shuffle (and whatever the task derives from Batch.Seed). Default (nil) 42.
	Seed *int64 `mapstructure:"seed" doc:"seed for the data shuffle and everything derived from it (default 42)"`
	// ReportPlots writes output_dir/loss.png at the end. Default (nil) true.
	ReportPlots *bool `mapstructure:"report_plots" doc:"write loss.png at the end (default true)"`
	// GradientCheckpointing recomputes each decoder layer's activations in the backward pass instead
	// of keeping them (model.GraphSpec.Checkpoint): much less memory for one more forward pass
	// through the layers, with bitwise the same results. Default false.
	GradientCheckpointing bool `mapstructure:"gradient_checkpointing" doc:"recompute each layer's activations in the backward pass instead of keeping them: less memory, about a third more compute, same results (default false)"`
}

// SchedulerKwargs are the lr_scheduler_kwargs keys understood (cosine_with_min_lr only).
type SchedulerKwargs struct {
	// MinLR is the final learning rate, absolute.
	MinLR *float64 `mapstructure:"min_lr" doc:"final learning rate, absolute"`
	// MinLRRate is the final learning rate as a fraction of learning_rate.
	MinLRRate *float64 `mapstructure:"min_lr_rate" doc:"final learning rate as a fraction of learning_rate"`
}

// Default values for the keys whose zero value means "default".
const (
	DefaultNumTrainEpochs        = 3.0
	DefaultBatchSize             = 8
	DefaultLearningRate          = 5e-5
	DefaultLRSchedulerType       = "linear"
	DefaultAdamBeta1             = 0.9
	DefaultAdamBeta2             = 0.999
	DefaultAdamEpsilon           = 1e-8
	DefaultMaxGradNorm           = 1.0
	DefaultLoggingSteps          = 10
	DefaultSaveSteps             = 500
	DefaultSeed            int64 = 42
)

// Defaults returns a copy of a with every zero (or nil) key replaced by its default. It is idempotent
// and leaves invalid (e.g. negative) values for Validate to report.
func (a Args) Defaults() Args {
	if a.MaxSteps == -1 {
		a.MaxSteps = 0
	}
	if a.NumTrainEpochs == 0 {
		a.NumTrainEpochs = DefaultNumTrainEpochs
	}
	if a.PerDeviceTrainBatchSize == 0 {
		a.PerDeviceTrainBatchSize = DefaultBatchSize
	}
	if a.PerDeviceEvalBatchSize == 0 {
		a.PerDeviceEvalBatchSize = DefaultBatchSize
	}
	if a.GradientAccumulationSteps == 0 {
		a.GradientAccumulationSteps = 1
	}
	if a.LearningRate == 0 {
		a.LearningRate = DefaultLearningRate
	}
	if a.LRSchedulerType == "" {
		a.LRSchedulerType = DefaultLRSchedulerType
	}
	if a.AdamBeta1 == 0 {
		a.AdamBeta1 = DefaultAdamBeta1
	}
	if a.AdamBeta2 == 0 {
		a.AdamBeta2 = DefaultAdamBeta2
	}
	if a.AdamEpsilon == 0 {
		a.AdamEpsilon = DefaultAdamEpsilon
	}
	if a.MaxGradNorm == nil {
		v := DefaultMaxGradNorm
		a.MaxGradNorm = &v
	}
	if a.LoggingSteps == 0 {
		a.LoggingSteps = DefaultLoggingSteps
	}
	if a.SaveSteps == 0 {
		a.SaveSteps = DefaultSaveSteps
	}
	if a.Seed == nil {
		v := DefaultSeed
		a.Seed = &v
	}
	if a.ReportPlots == nil {
		v := true
		a.ReportPlots = &v
	}
	return a
}

// Validate checks ranges after Defaults and returns one error line naming the first bad key.
func (a Args) Validate() error {
	finite := []struct {
		key string
		v   float64
	}{
		{"num_train_epochs", a.NumTrainEpochs}, {"learning_rate", a.LearningRate},
		{"warmup_ratio", a.WarmupRatio}, {"weight_decay", a.WeightDecay},
		{"adam_beta1", a.AdamBeta1}, {"adam_beta2", a.AdamBeta2}, {"adam_epsilon", a.AdamEpsilon},
	}
	if a.MaxGradNorm != nil {
		finite = append(finite, struct {
			key string
			v   float64
		}{"max_grad_norm", *a.MaxGradNorm})
	}
	for _, f := range finite {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%s: must be a finite number, got %g", f.key, f.v)
		}
	}
	switch {
	case a.OutputDir == "":
		return fmt.Errorf("output_dir: must be set")
	case a.MaxSteps < -1:
		return fmt.Errorf("max_steps: must be >= 0 (0 or -1: use num_train_epochs), got %d", a.MaxSteps)
	case a.NumTrainEpochs <= 0:
		return fmt.Errorf("num_train_epochs: must be > 0, got %g", a.NumTrainEpochs)
	case a.PerDeviceTrainBatchSize < 1:
		return fmt.Errorf("per_device_train_batch_size: must be >= 1, got %d", a.PerDeviceTrainBatchSize)
	case a.PerDeviceEvalBatchSize < 1:
		return fmt.Errorf("per_device_eval_batch_size: must be >= 1, got %d", a.PerDeviceEvalBatchSize)
	case a.GradientAccumulationSteps < 1:
		return fmt.Errorf("gradient_accumulation_steps: must be >= 1, got %d", a.GradientAccumulationSteps)
	case a.LearningRate <= 0:
		return fmt.Errorf("learning_rate: must be > 0, got %g", a.LearningRate)
	case a.WarmupSteps < 0:
		return fmt.Errorf("warmup_steps: must be >= 0, got %d", a.WarmupSteps)
	case a.WarmupRatio < 0 || a.WarmupRatio > 1:
		return fmt.Errorf("warmup_ratio: must be in [0, 1], got %g", a.WarmupRatio)
	case a.WarmupSteps > 0 && a.WarmupRatio > 0:
		return fmt.Errorf("warmup_ratio: set either warmup_steps (%d) or warmup_ratio (%g), not both", a.WarmupSteps, a.WarmupRatio)
	case a.WeightDecay < 0:
		return fmt.Errorf("weight_decay: must be >= 0, got %g", a.WeightDecay)
	case a.AdamBeta1 < 0 || a.AdamBeta1 >= 1:
		return fmt.Errorf("adam_beta1: must be in [0, 1), got %g", a.AdamBeta1)
	case a.AdamBeta2 < 0 || a.AdamBeta2 >= 1:
		return fmt.Errorf("adam_beta2: must be in [0, 1), got %g", a.AdamBeta2)
	case a.AdamEpsilon <= 0:
		return fmt.Errorf("adam_epsilon: must be > 0, got %g", a.AdamEpsilon)
	case a.MaxGradNorm != nil && *a.MaxGradNorm < 0:
		return fmt.Errorf("max_grad_norm: must be >= 0 (0 disables clipping), got %g", *a.MaxGradNorm)
	case a.LoggingSteps < 1:
		return fmt.Errorf("logging_steps: must be >= 1, got %d", a.LoggingSteps)
	case a.EvalSteps < 0:
		return fmt.Errorf("eval_steps: must be >= 0 (0: evaluate at the end only), got %d", a.EvalSteps)
	case a.SaveSteps < 1:
		return fmt.Errorf("save_steps: must be >= 1, got %d", a.SaveSteps)
	case a.SaveTotalLimit < 0:
		return fmt.Errorf("save_total_limit: must be >= 0 (0 keeps all), got %d", a.SaveTotalLimit)
	}
	return a.validateScheduler()
}

func (a Args) validateScheduler() error {
	kw := a.LRSchedulerKwargs
	switch a.LRSchedulerType {
	case "constant", "constant_with_warmup", "linear", "cosine":
		if kw.MinLR != nil || kw.MinLRRate != nil {
			return fmt.Errorf("lr_scheduler_kwargs: min_lr and min_lr_rate are only used by lr_scheduler_type cosine_with_min_lr, not %s", a.LRSchedulerType)
		}
	case "cosine_with_min_lr":
		switch {
		case kw.MinLR != nil && kw.MinLRRate != nil:
			return fmt.Errorf("lr_scheduler_kwargs: set only one of min_lr and min_lr_rate")
		case kw.MinLR == nil && kw.MinLRRate == nil:
			return fmt.Errorf("lr_scheduler_kwargs: cosine_with_min_lr needs min_lr or min_lr_rate")
		case kw.MinLR != nil && !(*kw.MinLR >= 0 && *kw.MinLR <= a.LearningRate):
			return fmt.Errorf("lr_scheduler_kwargs: min_lr must be in [0, learning_rate=%g], got %g", a.LearningRate, *kw.MinLR)
		case kw.MinLRRate != nil && !(*kw.MinLRRate >= 0 && *kw.MinLRRate <= 1):
			return fmt.Errorf("lr_scheduler_kwargs: min_lr_rate must be in [0, 1], got %g", *kw.MinLRRate)
		}
	default:
		return fmt.Errorf("lr_scheduler_type: unknown %q (want constant, constant_with_warmup, linear, cosine or cosine_with_min_lr)", a.LRSchedulerType)
	}
	return nil
}
