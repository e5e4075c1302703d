package main

import (
	"strings"
	"testing"

	"github.com/alignkit/alignkit/dist"
)

// TestVersionSaysMPI: `alignkit version` names the MPI library compiled in, or says there is none
// and how to build with it.
func TestVersionSaysMPI(t *testing.T) {
	r := runCLI(t, "version")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	want := "MPI: not compiled in (make build MPI=1)"
	if impl := dist.Implementation(); impl != "" {
		want = "MPI: " + impl
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 3 || lines[2] != want || !strings.HasPrefix(lines[1], "BLAS: ") {
		t.Errorf("version printed %q, want its third line %q", r.Stdout, want)
	}
}
