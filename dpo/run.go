package dpo

import (
	"context"

	"github.com/alignkit/alignkit/train"
)

// Run trains the policy with DPO as cfg says: it builds the Task and hands it to the shared
// training loop, which writes output_dir (metrics.jsonl with TRL's rewards/*, logps/*, logits/*
// names, checkpoints, the final model).
func Run(ctx context.Context, cfg Config, opts ...Option) error {
	_, err := RunResult(ctx, cfg, opts...)
	return err
}

// RunResult is Run returning the training loop's result.
func RunResult(ctx context.Context, cfg Config, opts ...Option) (train.Result, error) {
	task, err := NewTask(cfg, opts...)
	if err != nil {
		return train.Result{}, err
	}
	cfg = cfg.Defaults()
	topts := append([]train.Option{train.WithLogWriter(task.o.log), train.WithBarMetrics("rewards/accuracies", "rewards/margins")}, task.o.train...)
	return train.Run(ctx, cfg.Args, task, topts...)
}
