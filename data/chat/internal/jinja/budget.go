package jinja

import (
	"fmt"
	"time"
)

// Limits bound one render, so that a template from a model file can neither hang nor exhaust memory
// nor overflow the stack of the process rendering it. A zero field means the default.
type Limits struct {
	// MaxDepth bounds the nesting of calls (macros, caller blocks, functions): a macro that calls
	// itself without end stops here.
	MaxDepth int
	// MaxIterations bounds the loop iterations of one render, all loops together.
	MaxIterations int
	// MaxOutput bounds, in bytes, the output and every string or list built while rendering.
	MaxOutput int
	// Timeout bounds the wall-clock time of one render.
	Timeout time.Duration
}

// Default limits: far above what a chat template needs for a long conversation (one loop over the
// messages, a few nested calls), far below what would hurt the process.
const (
	DefaultMaxDepth      = 100
	DefaultMaxIterations = 1_000_000
	DefaultMaxOutput     = 64 << 20
	DefaultTimeout       = 10 * time.Second
)

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxIterations <= 0 {
		l.MaxIterations = DefaultMaxIterations
	}
	if l.MaxOutput <= 0 {
		l.MaxOutput = DefaultMaxOutput
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	return l
}

// LimitError reports a render stopped by one of its Limits.
type LimitError struct {
	msg string
}

func (e *LimitError) Error() string { return e.msg }

// budget is what one render has left; every evaluator of the render shares it.
type budget struct {
	depth, maxDepth int
	iterations      int
	maxIterations   int
	maxOutput       int
	timeout         time.Duration
	deadline        time.Time
	steps           int
}

func newBudget(l Limits) *budget {
	l = l.withDefaults()
	return &budget{
		maxDepth: l.MaxDepth, maxIterations: l.MaxIterations, maxOutput: l.MaxOutput,
		timeout: l.Timeout, deadline: time.Now().Add(l.Timeout),
	}
}

func (b *budget) outputErr() error {
	return &LimitError{fmt.Sprintf("output exceeds the limit of %d bytes", b.maxOutput)}
}

// tick is called for every node executed; it checks the clock every 64 steps.
func (b *budget) tick() error {
	b.steps++
	if b.steps&63 == 0 && time.Now().After(b.deadline) {
		return &LimitError{fmt.Sprintf("rendering took longer than the limit of %v", b.timeout)}
	}
	return nil
}

// iterate counts one loop iteration.
func (b *budget) iterate() error {
	b.iterations++
	if b.iterations > b.maxIterations {
		return &LimitError{fmt.Sprintf("loops ran more than the limit of %d iterations", b.maxIterations)}
	}
	return b.tick()
}

// call runs fn one level deeper.
func (b *budget) call(fn Value, args []Value, kwargs map[string]Value) (Value, error) {
	if b.depth >= b.maxDepth {
		return Undefined(), &LimitError{fmt.Sprintf("calls nest deeper than the limit of %d (unbounded recursion?)", b.maxDepth)}
	}
	if err := b.tick(); err != nil {
		return Undefined(), err
	}
	b.depth++
	defer func() { b.depth-- }()
	return fn.AsCallable().Fn(args, kwargs)
}

// checkSize refuses a +, ~ or * whose string or list result would exceed the output limit, before
// it is built.
func (b *budget) checkSize(left, right Value, op string) error {
	size := func(v Value) int64 {
		switch {
		case v.IsString():
			return int64(len(v.AsString()))
		case v.IsList():
			return int64(v.AsList().Len())
		}
		return 0
	}
	var n int64
	switch op {
	case "+":
		if left.IsList() && right.IsList() {
			// A list needs no more items than a render may iterate.
			if n := size(left) + size(right); n > int64(b.maxIterations) {
				return &LimitError{fmt.Sprintf("a list exceeds the limit of %d items", b.maxIterations)}
			}
			return nil
		}
		if !left.IsString() || !right.IsString() {
			return nil
		}
		n = size(left) + size(right)
	case "~":
		n = int64(len(printValue(left))) + int64(len(printValue(right)))
	case "*":
		if !left.IsString() || !right.IsInt() {
			return nil
		}
		count := right.AsInt()
		if count < 0 {
			count = 0
		}
		if count > 0 && size(left) > int64(b.maxOutput)/count {
			return &LimitError{fmt.Sprintf("a value exceeds the limit of %d bytes", b.maxOutput)}
		}
		n = size(left) * count
	}
	if n > int64(b.maxOutput) {
		return &LimitError{fmt.Sprintf("a value exceeds the limit of %d bytes", b.maxOutput)}
	}
	return nil
}
