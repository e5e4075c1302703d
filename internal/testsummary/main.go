// Command testsummary runs `go test -json ...`, prints what plain `go test` would (each package's
// ok/FAIL line, the output of failed tests, build errors), and ends with every skipped test and
// the message it skipped with, so `make test` says what it did not check and why.
//
//	testsummary go test -json -count=1 ./...
//
// Its exit status is the command's, or 1 when the command exited 0 but a test or build failed.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs args as a command, summarising its stdout into stdout; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: testsummary go test -json [flags] [packages]")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stderr = os.Stdin, stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 2
	}
	s := newSummary(stdout)
	readErr := s.read(out)
	// Drain what is left so the command never blocks on a full pipe after a read error.
	_, _ = io.Copy(io.Discard, out)
	waitErr := cmd.Wait()
	s.report()
	return exitCode(waitErr, readErr, s.failed, stderr)
}

// exitCode is the command's status when it failed; otherwise 1 when its output could not be read
// or reported a failure, so a failure is never lost on the way through the pipe.
func exitCode(waitErr, readErr error, failed bool, stderr io.Writer) int {
	if waitErr != nil {
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) && ee.ExitCode() > 0 {
			return ee.ExitCode()
		}
		fmt.Fprintln(stderr, "testsummary:", waitErr)
		return 1
	}
	if readErr != nil {
		fmt.Fprintln(stderr, "testsummary: reading go test's output:", readErr)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}
