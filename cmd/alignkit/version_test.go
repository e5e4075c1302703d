package main

import (
	"strings"
	"testing"
)

// TestVersionNamesBLAS: the version output says which BLAS the binary was built with, so a
// `make BLAS=gonum build` binary is told apart from the OpenBLAS one.
func TestVersionNamesBLAS(t *testing.T) {
	res := runCLI(t, "version")
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if res.Code != 0 || len(lines) != 2 || lines[1] != wantBLAS || !strings.HasPrefix(lines[0], "alignkit ") {
		t.Fatalf("version: exit %d %q, want second line %q", res.Code, res.Stdout, wantBLAS)
	}
}
