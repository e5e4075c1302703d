package rlhf

import (
	"context"

	"github.com/alignkit/alignkit/train"
)

// RunAfterStage is Run calling afterStage after each stage is complete and recorded in state.json,
// so that tests can stop a run at a chosen point.
func RunAfterStage(ctx context.Context, cfg RunConfig, afterStage func(round int, stage string), opts ...train.Option) ([]RoundSummary, error) {
	return run(ctx, cfg, afterStage, opts...)
}
