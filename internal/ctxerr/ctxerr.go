// Package ctxerr is the error a long loop returns when its context ends: errors.Is finds
// ctx.Err() in it (context.Canceled, context.DeadlineExceeded), and it reads as the context's
// cause when one was given, so that the command line's "stopped by SIGINT" reaches the user
// instead of "context canceled".
package ctxerr

import "context"

// Err is nil while ctx is live; after, ctx.Err() joined with context.Cause(ctx) when the cause
// is another error.
func Err(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if c := context.Cause(ctx); c != nil && c != err {
		return causeError{err: err, cause: c}
	}
	return err
}

// causeError prints as its cause and unwraps to both the context's error and the cause.
type causeError struct{ err, cause error }

func (e causeError) Error() string   { return e.cause.Error() }
func (e causeError) Unwrap() []error { return []error{e.err, e.cause} }
