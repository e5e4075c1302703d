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
	if err := root.ExecuteContext(ctx); err != nil {
		// A failed rank exits without MPI_Finalize, which waits for its peers: mpirun then stops
		// the whole job and names this rank.
		fmt.Fprintf(os.Stderr, "alignkit: %s%s\n", rankPrefix(), strings.Join(strings.Fields(err.Error()), " "))
		return 1
	}
	if err := dist.Finalize(); err != nil {
		fmt.Fprintf(os.Stderr, "alignkit: %s%v\n", rankPrefix(), err)
		return 1
	}
	return 0
}

// rankPrefix is "rank N: " in a job of several processes (mpirun), "" otherwise.
func rankPrefix() string {
	if c, err := dist.World(); err == nil && c.Size() > 1 {
		return fmt.Sprintf("rank %d: ", c.Rank())
	}
	return ""
}
