package ctxerr

import (
	"context"
	"errors"
	"testing"
)

type sigErr struct{}

func (sigErr) Error() string { return "stopped by SIGINT" }

func TestErr(t *testing.T) {
	if err := Err(context.Background()); err != nil {
		t.Fatalf("live context: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Err(ctx); err != context.Canceled {
		t.Errorf("plain cancel: %v, want context.Canceled itself", err)
	}
	ctx, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(sigErr{})
	err := Err(ctx)
	var s sigErr
	if err == nil || err.Error() != "stopped by SIGINT" || !errors.Is(err, context.Canceled) || !errors.As(err, &s) {
		t.Errorf("cancel with cause: %v (Is Canceled %v, As cause %v)", err, errors.Is(err, context.Canceled), errors.As(err, &s))
	}
	ctx, cancel = context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	if err := Err(ctx); !errors.Is(err, context.DeadlineExceeded) || err.Error() != "context deadline exceeded" {
		t.Errorf("deadline: %v", err)
	}
}
