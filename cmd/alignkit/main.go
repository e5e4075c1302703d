// Command alignkit fine-tunes and aligns Llama-family models: SFT, reward modelling, best-of-K
// rejection sampling, DPO and Ghost Attention, each a subcommand driven by a YAML config.
//
// Every subcommand lives in its own file and only parses flags and config before calling a package
// API; no training or model logic lives here.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/alignkit/alignkit/dist"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and turns every failure, a panic included, into one error line and
// a non-zero exit status. ALIGNKIT_DEBUG=1 prints the stack of a panic for bug reports.
func run(args []string) (code int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errOut := os.Stderr
	defer quietFollower()()
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
	if err := root.ExecuteContext(ctx); err != nil {
		// A failed rank exits without MPI_Finalize, which waits for its peers: mpirun then stops
		// the whole job and names this rank.
		fmt.Fprintf(errOut, "alignkit: %s%s\n", rankPrefix(), strings.Join(strings.Fields(err.Error()), " "))
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

// rankPrefix is "rank N: " in a job of several processes (mpirun), "" otherwise.
func rankPrefix() string {
	if c, err := dist.World(); err == nil && c.Size() > 1 {
		return fmt.Sprintf("rank %d: ", c.Rank())
	}
	return ""
}
