package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json's TestEvent, plus the build events).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output and build-fail
	Test       string
	Output     string
}

// skipped is one skipped test and the lines it logged before skipping (its t.Skip message last).
type skipped struct {
	pkg, test string
	reason    []string
}

// summary turns the event stream back into plain `go test` output and collects the skips.
type summary struct {
	w       io.Writer
	pending map[string][]string // package + "\x00" + test -> output lines not yet printed
	skips   []skipped
	failed  bool
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, pending: map[string][]string{}}
}

// maxLine bounds one line of go test's output; a test printing more in one line is cut, not fatal.
const maxLine = 16 << 20

// read consumes the stream. A line that is not a JSON event (a test binary writing to stdout
// around the framework) is printed as it is.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(s.w, "%s\n", line)
			continue
		}
		s.handle(e)
	}
	return sc.Err()
}

func (s *summary) handle(e event) {
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.w, e.Output)
		return
	case "build-fail":
		s.failed = true
		return
	}
	if e.Test == "" {
		// Package level: ok/FAIL lines, panics and timeouts outside a test, "[no test files]".
		switch e.Action {
		case "output":
			if e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== ") {
				fmt.Fprint(s.w, e.Output)
			}
		case "fail":
			s.failed = true
			s.flushUnfinished(e.Package)
		}
		return
	}
	key := e.Package + "\x00" + e.Test
	switch e.Action {
	case "output":
		if !strings.HasPrefix(e.Output, "=== ") {
			s.pending[key] = append(s.pending[key], e.Output)
		}
	case "fail":
		s.failed = true
		for _, l := range s.pending[key] {
			fmt.Fprint(s.w, l)
		}
		delete(s.pending, key)
	case "skip":
		var reason []string
		for _, l := range s.pending[key] {
			l = strings.TrimSpace(l)
			if l != "" && !strings.HasPrefix(l, "--- SKIP: ") {
				reason = append(reason, l)
			}
		}
		s.skips = append(s.skips, skipped{pkg: e.Package, test: e.Test, reason: reason})
		delete(s.pending, key)
	case "pass":
		delete(s.pending, key)
	}
}

// flushUnfinished prints what the tests of pkg that never finished logged: the test binary died
// (a panic, a timeout) while they ran, and their lines are the context of its failure.
func (s *summary) flushUnfinished(pkg string) {
	var keys []string
	for k := range s.pending {
		if strings.HasPrefix(k, pkg+"\x00") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		_, test, _ := strings.Cut(k, "\x00")
		fmt.Fprintf(s.w, "--- %s did not finish; it logged:\n", test)
		for _, l := range s.pending[k] {
			fmt.Fprint(s.w, l)
		}
		delete(s.pending, k)
	}
}

// report prints the skipped tests, sorted by package and test, each with its t.Skip message: the
// last logged line that starts with a file:line position, and any continuation lines after it.
func (s *summary) report() {
	if len(s.skips) == 0 {
		fmt.Fprintln(s.w, "\nno test was skipped")
		return
	}
	sort.SliceStable(s.skips, func(i, j int) bool {
		if s.skips[i].pkg != s.skips[j].pkg {
			return s.skips[i].pkg < s.skips[j].pkg
		}
		return s.skips[i].test < s.skips[j].test
	})
	fmt.Fprintf(s.w, "\n%d skipped tests, and why:\n", len(s.skips))
	for _, k := range s.skips {
		fmt.Fprintf(s.w, "SKIP %s %s: %s\n", k.pkg, k.test, skipMessage(k.reason))
	}
}

// logPos matches the file:line prefix the testing package puts before each logged message.
var logPos = regexp.MustCompile(`^[^\s:]+\.go:\d+: `)

// skipMessage is the last logged message among lines, with its continuation lines joined.
func skipMessage(lines []string) string {
	if len(lines) == 0 {
		return "(no message)"
	}
	start := len(lines) - 1
	for i := len(lines) - 1; i >= 0; i-- {
		if logPos.MatchString(lines[i]) {
			start = i
			break
		}
	}
	return strings.Join(lines[start:], " ")
}
