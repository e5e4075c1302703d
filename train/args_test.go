package train

import (
	"math"
	"testing"

	"github.com/go-viper/mapstructure/v2"
)

func TestArgsDefaults(t *testing.T) {
	a := Args{OutputDir: "out"}.Defaults()
	if err := a.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"num_train_epochs", a.NumTrainEpochs, 3.0},
		{"per_device_train_batch_size", a.PerDeviceTrainBatchSize, 8},
		{"per_device_eval_batch_size", a.PerDeviceEvalBatchSize, 8},
		{"gradient_accumulation_steps", a.GradientAccumulationSteps, 1},
		{"learning_rate", a.LearningRate, 5e-5},
		{"lr_scheduler_type", a.LRSchedulerType, "linear"},
		{"adam_beta1", a.AdamBeta1, 0.9},
		{"adam_beta2", a.AdamBeta2, 0.999},
		{"adam_epsilon", a.AdamEpsilon, 1e-8},
		{"max_grad_norm", *a.MaxGradNorm, 1.0},
		{"logging_steps", a.LoggingSteps, 10},
		{"save_steps", a.SaveSteps, 500},
		{"seed", *a.Seed, int64(42)},
		{"report_plots", *a.ReportPlots, true},
		{"weight_decay", a.WeightDecay, 0.0},
		{"eval_steps", a.EvalSteps, 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s default = %v, want %v", c.key, c.got, c.want)
		}
	}
	// Explicit settings survive, including zeros that differ from the default.
	zero, seed0, off := 0.0, int64(0), false
	b := Args{OutputDir: "o", MaxGradNorm: &zero, Seed: &seed0, ReportPlots: &off, LearningRate: 1e-4, MaxSteps: -1}.Defaults()
	if *b.MaxGradNorm != 0 || *b.Seed != 0 || *b.ReportPlots || b.LearningRate != 1e-4 || b.MaxSteps != 0 {
		t.Errorf("explicit values not kept: max_grad_norm %v seed %v report_plots %v lr %v max_steps %v",
			*b.MaxGradNorm, *b.Seed, *b.ReportPlots, b.LearningRate, b.MaxSteps)
	}
	if c := b.Defaults(); *c.MaxGradNorm != 0 || c.NumTrainEpochs != b.NumTrainEpochs {
		t.Error("Defaults is not idempotent")
	}
}

func TestArgsValidateErrors(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	tests := []struct {
		mod  func(*Args)
		want string
	}{
		{func(a *Args) { a.OutputDir = "" }, "output_dir: must be set"},
		{func(a *Args) { a.MaxSteps = -5 }, "max_steps: must be >= 0 (0 or -1: use num_train_epochs), got -5"},
		{func(a *Args) { a.NumTrainEpochs = -1 }, "num_train_epochs: must be > 0, got -1"},
		{func(a *Args) { a.NumTrainEpochs = math.Inf(1) }, "num_train_epochs: must be a finite number, got +Inf"},
		{func(a *Args) { a.PerDeviceTrainBatchSize = -2 }, "per_device_train_batch_size: must be >= 1, got -2"},
		{func(a *Args) { a.PerDeviceEvalBatchSize = -1 }, "per_device_eval_batch_size: must be >= 1, got -1"},
		{func(a *Args) { a.GradientAccumulationSteps = -1 }, "gradient_accumulation_steps: must be >= 1, got -1"},
		{func(a *Args) { a.LearningRate = -0.001 }, "learning_rate: must be > 0, got -0.001"},
		{func(a *Args) { a.LearningRate = math.NaN() }, "learning_rate: must be a finite number, got NaN"},
		{func(a *Args) { a.LRSchedulerType = "polynomial" }, `lr_scheduler_type: unknown "polynomial" (want constant, constant_with_warmup, linear, cosine or cosine_with_min_lr)`},
		{func(a *Args) { a.LRSchedulerKwargs.MinLR = f(1e-6) }, "lr_scheduler_kwargs: min_lr and min_lr_rate are only used by lr_scheduler_type cosine_with_min_lr, not linear"},
		{func(a *Args) { a.LRSchedulerType = "cosine_with_min_lr" }, "lr_scheduler_kwargs: cosine_with_min_lr needs min_lr or min_lr_rate"},
		{func(a *Args) {
			a.LRSchedulerType = "cosine_with_min_lr"
			a.LRSchedulerKwargs = SchedulerKwargs{MinLR: f(1e-6), MinLRRate: f(0.1)}
		}, "lr_scheduler_kwargs: set only one of min_lr and min_lr_rate"},
		{func(a *Args) {
			a.LRSchedulerType = "cosine_with_min_lr"
			a.LRSchedulerKwargs.MinLRRate = f(1.5)
		}, "lr_scheduler_kwargs: min_lr_rate must be in [0, 1], got 1.5"},
		{func(a *Args) {
			a.LRSchedulerType = "cosine_with_min_lr"
			a.LRSchedulerKwargs.MinLR = f(1)
		}, "lr_scheduler_kwargs: min_lr must be in [0, learning_rate=5e-05], got 1"},
		{func(a *Args) { a.WarmupSteps = -3 }, "warmup_steps: must be >= 0, got -3"},
		{func(a *Args) { a.WarmupRatio = 1.2 }, "warmup_ratio: must be in [0, 1], got 1.2"},
		{func(a *Args) { a.WarmupSteps, a.WarmupRatio = 10, 0.1 }, "warmup_ratio: set either warmup_steps (10) or warmup_ratio (0.1), not both"},
		{func(a *Args) { a.WeightDecay = -0.1 }, "weight_decay: must be >= 0, got -0.1"},
		{func(a *Args) { a.AdamBeta1 = 1 }, "adam_beta1: must be in [0, 1), got 1"},
		{func(a *Args) { a.AdamBeta2 = -0.5 }, "adam_beta2: must be in [0, 1), got -0.5"},
		{func(a *Args) { a.AdamEpsilon = -1e-8 }, "adam_epsilon: must be > 0, got -1e-08"},
		{func(a *Args) { a.MaxGradNorm = f(-1) }, "max_grad_norm: must be >= 0 (0 disables clipping), got -1"},
		{func(a *Args) { a.LoggingSteps = -1 }, "logging_steps: must be >= 1, got -1"},
		{func(a *Args) { a.EvalSteps = -1 }, "eval_steps: must be >= 0 (0: evaluate at the end only), got -1"},
		{func(a *Args) { a.SaveSteps = -10 }, "save_steps: must be >= 1, got -10"},
		{func(a *Args) { a.SaveTotalLimit = -1 }, "save_total_limit: must be >= 0 (0 keeps all), got -1"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			a := Args{OutputDir: "out"}
			tc.mod(&a)
			err := a.Defaults().Validate()
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestArgsMapstructure decodes a config the way the integrator does (viper + mapstructure, ErrorUnused,
// a trainer config embedding Args with squash) to prove every key's tag.
func TestArgsMapstructure(t *testing.T) {
	type sftConfig struct {
		Args      `mapstructure:",squash"`
		MaxLength int `mapstructure:"max_length"`
	}
	in := map[string]any{
		"output_dir": "runs/sft", "max_steps": 100, "num_train_epochs": 2.5,
		"per_device_train_batch_size": 4, "per_device_eval_batch_size": 2, "gradient_accumulation_steps": 8,
		"learning_rate": 2e-5, "lr_scheduler_type": "cosine_with_min_lr",
		"lr_scheduler_kwargs": map[string]any{"min_lr_rate": 0.1},
		"warmup_steps":        0, "warmup_ratio": 0.03, "weight_decay": 0.1, "adam_beta1": 0.9, "adam_beta2": 0.95,
		"adam_epsilon": 1e-5, "max_grad_norm": 0, "logging_steps": 5, "eval_steps": 50, "save_steps": 25,
		"save_total_limit": 2, "resume_from_checkpoint": "latest", "seed": 0, "report_plots": false,
		"gradient_checkpointing": true, "max_length": 512,
	}
	decode := func(in map[string]any) (sftConfig, error) {
		var c sftConfig
		d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{ErrorUnused: true, WeaklyTypedInput: true, Result: &c})
		if err != nil {
			return c, err
		}
		return c, d.Decode(in)
	}
	c, err := decode(in)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Args.Defaults()
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.OutputDir != "runs/sft" || a.MaxSteps != 100 || a.NumTrainEpochs != 2.5 || a.PerDeviceTrainBatchSize != 4 ||
		a.PerDeviceEvalBatchSize != 2 || a.GradientAccumulationSteps != 8 || a.LearningRate != 2e-5 ||
		a.LRSchedulerType != "cosine_with_min_lr" || *a.LRSchedulerKwargs.MinLRRate != 0.1 || a.WarmupRatio != 0.03 ||
		a.WeightDecay != 0.1 || a.AdamBeta2 != 0.95 || a.AdamEpsilon != 1e-5 || *a.MaxGradNorm != 0 ||
		a.LoggingSteps != 5 || a.EvalSteps != 50 || a.SaveSteps != 25 || a.SaveTotalLimit != 2 ||
		a.ResumeFromCheckpoint != "latest" || *a.Seed != 0 || *a.ReportPlots || !a.GradientCheckpointing || c.MaxLength != 512 {
		t.Errorf("decoded %+v", a)
	}
	in["lr_scheduler_kwargs"] = map[string]any{"min_lr_ratio": 0.1}
	if _, err := decode(in); err == nil {
		t.Error("a misspelt lr_scheduler_kwargs key was accepted")
	}
}
