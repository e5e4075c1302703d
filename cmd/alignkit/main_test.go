package main

// Shared helpers for the command-line tests of every subcommand: run the real command line
// in-process (main's run function: cobra root, one error line, exit status). The repository root and
// ../shared come from internal/sharedtest.

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// cliResult is what one command line did.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

// ErrorLine is the last line of stderr, where run writes "alignkit: <error>".
func (r cliResult) ErrorLine() string {
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	return lines[len(lines)-1]
}

// runCLI runs `alignkit args...` in-process through run (as main does) with the working directory
// set to the repository root, so that shipped configs' relative paths resolve as they do for a user
// there. It swaps os.Stdout, os.Stderr and the working directory for the call: tests that use it
// must not run in parallel.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	root := sharedtest.RepoRoot(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(root); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)

	capture := func(f **os.File) (restore func() string) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		old := *f
		*f = w
		var buf bytes.Buffer
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(&buf, r)
		}()
		return func() string {
			*f = old
			w.Close()
			wg.Wait()
			r.Close()
			return buf.String()
		}
	}
	outDone := capture(&os.Stdout)
	errDone := capture(&os.Stderr)
	code := run(args)
	return cliResult{Stdout: outDone(), Stderr: errDone(), Code: code}
}
