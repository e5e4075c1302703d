package train

import "math"

// WarmupSteps is transformers' TrainingArguments.get_warmup_steps: warmup_steps when set, otherwise
// ceil(warmup_ratio * totalSteps).
func WarmupSteps(args Args, totalSteps int) int {
	if args.WarmupSteps > 0 {
		return args.WarmupSteps
	}
	return int(math.Ceil(float64(totalSteps) * args.WarmupRatio))
}

// Schedule returns the learning rate for scheduler step `step` (0-based), as transformers'
// get_scheduler(name, optimizer, num_warmup_steps, num_training_steps) multiplies learning_rate by its
// LambdaLR factor. Optimizer step s (1-based) uses Schedule(s-1), so with warmup the first step has
// learning rate 0, exactly as in HF. Args are defaulted here; an lr_scheduler_type that Validate rejects
// yields NaN.
func Schedule(args Args, totalSteps int) func(step int) float64 {
	a := args.Defaults()
	lr := a.LearningRate
	warmup := WarmupSteps(a, totalSteps)
	// The warmup branch of every transformers schedule: step / max(1, warmup).
	warm := func(step int) (float64, bool) {
		if step < warmup {
			return float64(step) / float64(max(1, warmup)), true
		}
		return 0, false
	}
	progress := func(step int) float64 {
		return float64(step-warmup) / float64(max(1, totalSteps-warmup))
	}
	// cosine with num_cycles = 0.5: 0.5 * (1 + cos(pi * 2 * num_cycles * progress)).
	cosine := func(step int) float64 { return 0.5 * (1 + math.Cos(math.Pi*progress(step))) }

	switch a.LRSchedulerType {
	case "constant", "constant_with_warmup":
		return func(step int) float64 {
			if f, ok := warm(step); ok {
				return lr * f
			}
			return lr
		}
	case "linear":
		return func(step int) float64 {
			if f, ok := warm(step); ok {
				return lr * f
			}
			return lr * max(0, float64(totalSteps-step)/float64(max(1, totalSteps-warmup)))
		}
	case "cosine":
		return func(step int) float64 {
			if f, ok := warm(step); ok {
				return lr * f
			}
			return lr * max(0, cosine(step))
		}
	case "cosine_with_min_lr":
		rate := 0.0
		switch {
		case a.LRSchedulerKwargs.MinLRRate != nil:
			rate = *a.LRSchedulerKwargs.MinLRRate
		case a.LRSchedulerKwargs.MinLR != nil:
			rate = *a.LRSchedulerKwargs.MinLR / lr
		}
		return func(step int) float64 {
			if f, ok := warm(step); ok {
				return lr * f
			}
			return lr * max(0, cosine(step)*(1-rate)+rate)
		}
	}
	return func(int) float64 { return math.NaN() }
}
