package main

import (
	"strings"
	"testing"

	"github.com/alignkit/alignkit/dist"
)

// TestVersionNamesBLASAndMPI: the version output says which BLAS the binary was built with, so a
// `make BLAS=gonum build` binary is told apart from the OpenBLAS one, and names the MPI library
// compiled in, or says there is none and how to build with it.
func TestVersionNamesBLASAndMPI(t *testing.T) {
	res := runCLI(t, "version")
	want := "MPI: not compiled in (make build MPI=1)"
	if impl := dist.Implementation(); impl != "" {
		want = "MPI: " + impl
	}
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if res.Code != 0 || len(lines) != 3 || lines[1] != wantBLAS || lines[2] != want || !strings.HasPrefix(lines[0], "alignkit ") {
		t.Fatalf("version: exit %d %q, want second line %q and third %q", res.Code, res.Stdout, wantBLAS, want)
	}
}
