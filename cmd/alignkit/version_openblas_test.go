//go:build openblas

package main

// wantBLAS is what `alignkit version` must name in a build with -tags openblas (make's default
// where libopenblas is installed).
const wantBLAS = "BLAS: OpenBLAS (cgo)"
