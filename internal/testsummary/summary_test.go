package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestSummaryOfRealStream: testdata/mixed.jsonl is `go test -json ./...` (Time and Elapsed
// removed) of a module with a package that does not build and one whose tests pass, fail, skip
// with a one-line and a two-line message, and skip a subtest. The summary prints what plain
// `go test` prints and lists the three skips with their messages.
func TestSummaryOfRealStream(t *testing.T) {
	f, err := os.Open("testdata/mixed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	s := newSummary(&out)
	if err := s.read(f); err != nil {
		t.Fatal(err)
	}
	s.report()
	if !s.failed {
		t.Error("a failed test and a failed build were not counted as a failure")
	}
	want := `# x/q [x/q.test]
q/q.go:2:23: cannot use "s" (untyped string constant) as int value in return statement
FAIL	x/q [build failed]
    p_test.go:5: detail
    p_test.go:5: bad value 3
--- FAIL: TestF (0.00s)
FAIL
FAIL	x/p	0.025s

3 skipped tests, and why:
SKIP x/p TestM: p_test.go:7: line one line two
SKIP x/p TestS: p_test.go:4: no shared dir: see README
SKIP x/p TestSub/x: p_test.go:6: sub skip
`
	got := out.String()
	// The package's elapsed time varies between captures; compare the rest exactly.
	got = replaceElapsed(got)
	if got != replaceElapsed(want) {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

func replaceElapsed(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "FAIL\tx/p\t") || strings.HasPrefix(l, "ok  \t") {
			lines[i] = l[:strings.LastIndex(l, "\t")] + "\tTIME"
		}
	}
	return strings.Join(lines, "\n")
}

func TestSummaryPassesAndNonJSON(t *testing.T) {
	in := `{"Action":"start","Package":"a"}
{"Action":"run","Package":"a","Test":"TestX"}
{"Action":"output","Package":"a","Test":"TestX","Output":"=== RUN   TestX\n"}
{"Action":"output","Package":"a","Test":"TestX","Output":"    a_test.go:3: noise of a passing test\n"}
{"Action":"output","Package":"a","Test":"TestX","Output":"--- PASS: TestX (0.00s)\n"}
{"Action":"pass","Package":"a","Test":"TestX"}
written by a test binary straight to stdout
{"Action":"output","Package":"a","Output":"PASS\n"}
{"Action":"output","Package":"a","Output":"ok  \ta\t0.01s\n"}
{"Action":"pass","Package":"a"}
{"Action":"output","Package":"b","Output":"?   \tb\t[no test files]\n"}
{"Action":"skip","Package":"b"}
`
	var out bytes.Buffer
	s := newSummary(&out)
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	s.report()
	want := "written by a test binary straight to stdout\nok  \ta\t0.01s\n?   \tb\t[no test files]\n\nno test was skipped\n"
	if out.String() != want {
		t.Errorf("summary %q, want %q", out.String(), want)
	}
	if s.failed {
		t.Error("a passing stream counted as failed")
	}
}

// TestRunExitStatus: the command's own status comes through; a stream reporting a failure makes a
// command that exited 0 fail; a clean stream exits 0.
func TestRunExitStatus(t *testing.T) {
	for _, c := range []struct {
		name   string
		script string
		want   int
	}{
		{"command fails", `echo '{"Action":"output","Package":"a","Output":"FAIL\ta\t0.1s\n"}'; exit 3`, 3},
		{"stream fails", `echo '{"Action":"fail","Package":"a"}'`, 1},
		{"build fails", `echo '{"ImportPath":"a","Action":"build-fail"}'`, 1},
		{"clean", `echo '{"Action":"pass","Package":"a"}'`, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := run([]string{"sh", "-c", c.script}, &out, &errb); got != c.want {
				t.Errorf("exit status %d, want %d (stdout %q, stderr %q)", got, c.want, out.String(), errb.String())
			}
		})
	}
	var errb bytes.Buffer
	if got := run(nil, new(bytes.Buffer), &errb); got != 2 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("no command: status %d, stderr %q", got, errb.String())
	}
}

// TestSummaryUnfinishedTest: a test binary that panics while a test runs reports no fail event for
// that test; what it logged is printed when its package fails, and the run counts as failed.
func TestSummaryUnfinishedTest(t *testing.T) {
	in := `{"Action":"run","Package":"a","Test":"TestHang"}
{"Action":"output","Package":"a","Test":"TestHang","Output":"=== RUN   TestHang\n"}
{"Action":"output","Package":"a","Test":"TestHang","Output":"    a_test.go:9: waiting for the server\n"}
{"Action":"output","Package":"a","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"a","Output":"FAIL\ta\t1.01s\n"}
{"Action":"fail","Package":"a"}
`
	var out bytes.Buffer
	s := newSummary(&out)
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	want := "panic: test timed out after 1s\nFAIL\ta\t1.01s\n--- TestHang did not finish; it logged:\n    a_test.go:9: waiting for the server\n"
	if out.String() != want || !s.failed {
		t.Errorf("summary %q (failed %v), want %q", out.String(), s.failed, want)
	}
}
