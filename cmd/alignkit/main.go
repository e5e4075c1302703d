// Command alignkit fine-tunes and aligns Llama-family models: SFT, reward modelling, best-of-K
// rejection sampling, DPO and Ghost Attention, each a subcommand driven by a YAML config.
//
// Every subcommand lives in its own file and only parses flags and config before calling a package
// API; no training or model logic lives here.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and turns every failure, a panic included, into one error line and
// a non-zero exit status. ALIGNKIT_DEBUG=1 prints the stack of a panic for bug reports.
//
// SIGINT and SIGTERM cancel the command's context: every phase (loading, tokenizing, training,
// generating, serving) stops at its next check, a trainer saves its checkpoint first, and the exit
// status is the shell's 128+signal (130 for SIGINT, 143 for SIGTERM) even when the command then
// returns cleanly. A second signal exits at once with the same status, and so does a command still
// running forceExitAfter after the first (a phase that does not check its context, such as a
// trainer's tokenizing, cannot keep the process alive; every write is atomic, so nothing is left
// half-written).
func run(args []string) (code int) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigc:
			cancel(interrupted{s})
			select {
			case s2 := <-sigc:
				fmt.Fprintf(os.Stderr, "alignkit: second %s: exiting at once\n", signalName(s2))
				os.Exit(signalStatus(s2))
			case <-time.After(forceExitAfter):
				fmt.Fprintf(os.Stderr, "alignkit: %s: still running %s later; exiting\n", signalName(s), forceExitAfter)
				os.Exit(signalStatus(s))
			case <-done:
			}
		case <-done:
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "alignkit: internal error: %v (set ALIGNKIT_DEBUG=1 for a stack trace)\n", r)
			if os.Getenv("ALIGNKIT_DEBUG") != "" {
				os.Stderr.Write(debug.Stack())
			}
			code = 2
		}
	}()
	root := newRoot()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var sig interrupted
	signalled := errors.As(context.Cause(ctx), &sig)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "alignkit: %s\n", strings.Join(strings.Fields(err.Error()), " "))
	case signalled:
		fmt.Fprintf(os.Stderr, "alignkit: stopped by %s\n", signalName(sig.sig))
	}
	switch {
	case signalled:
		return signalStatus(sig.sig)
	case err != nil:
		return 1
	}
	return 0
}

// forceExitAfter is how long a command may take to stop after SIGINT or SIGTERM: long enough for a
// trainer to save its checkpoint, short enough for a supervisor's kill timeout.
const forceExitAfter = 30 * time.Second

// interrupted is the context's cause when a signal stopped the command.
type interrupted struct{ sig os.Signal }

func (i interrupted) Error() string { return "stopped by " + signalName(i.sig) }

func signalName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

// signalStatus is the shell's exit status for a process ended by s: 128 + its number.
func signalStatus(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 130
}
