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

	"github.com/alignkit/alignkit/dist"
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
	errOut := os.Stderr
	defer quietFollower()()
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigc:
			if s == syscall.SIGTERM {
				exitIfPeerLost(errOut)
			}
			cancel(interrupted{s})
			select {
			case s2 := <-sigc:
				fmt.Fprintf(errOut, "alignkit: %ssecond %s: exiting at once\n", rankPrefix(), signalName(s2))
				os.Exit(signalStatus(s2))
			case <-time.After(forceExitAfter):
				fmt.Fprintf(errOut, "alignkit: %s%s: still running %s later; exiting\n", rankPrefix(), signalName(s), forceExitAfter)
				os.Exit(signalStatus(s))
			case <-done:
			}
		case <-done:
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(errOut, "alignkit: internal error: %v (set ALIGNKIT_DEBUG=1 for a stack trace)\n", r)
			if os.Getenv("ALIGNKIT_DEBUG") != "" {
				errOut.Write(debug.Stack())
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
		// A failed rank exits without MPI_Finalize, which waits for its peers: mpirun then stops
		// the whole job and names this rank.
		fmt.Fprintf(errOut, "alignkit: %s%s\n", rankPrefix(), strings.Join(strings.Fields(err.Error()), " "))
	case signalled:
		fmt.Fprintf(errOut, "alignkit: %sstopped by %s\n", rankPrefix(), signalName(sig.sig))
	}
	switch {
	case signalled:
		return signalStatus(sig.sig)
	case err != nil:
		return 1
	}
	if err := dist.Finalize(); err != nil {
		fmt.Fprintf(errOut, "alignkit: %s%v\n", rankPrefix(), err)
		return 1
	}
	return 0
}

// quietFollower sends the output of ranks other than 0 of a job of several processes (mpirun) to
// the null device, because rank 0 speaks for the job and the others would repeat its data
// summaries and notes line for line; their error line is still written (run keeps the real
// stderr for it). It returns the function that restores the output.
func quietFollower() (restore func()) {
	c, err := dist.World()
	if err != nil || c.Rank() == 0 {
		return func() {}
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return func() {}
	}
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = null, null
	return func() {
		os.Stdout, os.Stderr = stdout, stderr
		null.Close()
	}
}

// exitIfPeerLost is the SIGTERM of a rank whose peer died: mpirun reaps the dead rank and sends
// SIGTERM to the others, with SIGKILL one second later, and their collectives could never complete
// anyway. If a rank on this machine is gone, the lowest surviving rank here says which, once, and
// every survivor exits at once (rank 0 writes checkpoints atomically, so the last one resumes).
func exitIfPeerLost(errOut *os.File) {
	c, err := dist.World()
	if err != nil || c.Size() == 1 {
		return
	}
	var lost []dist.Peer
	first := false
	for range 5 { // the signal may overtake the reaping by a moment
		if lost, first = dist.LostPeers(); len(lost) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(lost) == 0 {
		return // a SIGTERM of its own (mpirun's own signal or a user's): stop as usual
	}
	if first {
		for _, p := range lost {
			fmt.Fprintf(errOut, "alignkit: rank %d (pid %d on %s) died; the job stops (resume_from_checkpoint: latest continues from the last checkpoint)\n", p.Rank, p.PID, p.Host)
		}
	}
	os.Exit(1)
}

// rankPrefix is "rank N: " in a job of several processes (mpirun), "" otherwise.
func rankPrefix() string {
	if c, err := dist.World(); err == nil && c.Size() > 1 {
		return fmt.Sprintf("rank %d: ", c.Rank())
	}
	return ""
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
