package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRepoRoot finds this module's go.mod two levels above the package directory.
func TestRepoRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := RepoRoot(t), filepath.Dir(filepath.Dir(wd)); got != want {
		t.Fatalf("RepoRoot = %s, want %s", got, want)
	}
}

// recorder is a testing.TB whose Skipf records the message and stops the goroutine, as the real one
// does, so a test can see what Dir says when a file is absent.
type recorder struct {
	testing.TB
	skipped string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = format
	panic(r)
}

// skipOf runs f with a recorder and returns the format of the skip it asked for ("" when none).
func skipOf(t *testing.T, f func(tb testing.TB)) (msg string) {
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		msg = r.skipped
	}()
	f(r)
	return ""
}

// TestDirSkipsWhenAbsent: a path that cannot exist skips the test with the path named; where ../shared
// exists, a present path does not skip and Path joins it onto Dir.
func TestDirSkipsWhenAbsent(t *testing.T) {
	msg := skipOf(t, func(tb testing.TB) { Dir(tb, "no/such/file-for-sharedtest") })
	if msg != "../shared/%s is absent (%v): these tests need the reference files (see ../shared/README.md)" {
		t.Fatalf("skip message %q", msg)
	}
	shared := filepath.Join(filepath.Dir(RepoRoot(t)), "shared")
	if _, err := os.Stat(filepath.Join(shared, "README.md")); err != nil {
		t.Skipf("../shared is absent here (%v); the present-path case needs it", err)
	}
	if msg := skipOf(t, func(tb testing.TB) { Dir(tb, "README.md") }); msg != "" {
		t.Fatalf("present file skipped: %q", msg)
	}
	if got, want := Path(t, "README.md"), filepath.Join(shared, "README.md"); got != want {
		t.Fatalf("Path = %s, want %s", got, want)
	}
}
