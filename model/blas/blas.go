// Package blas selects the BLAS implementation that alignkit's matrix products use: OpenBLAS through
// cgo when built with the `openblas` tag (the Makefile sets it when libopenblas is installed), and
// gonum's pure-Go implementation otherwise.
package blas

import gblas "gonum.org/v1/gonum/blas"

// Implementation is what both the Gorgonia graph and the inference engine need. It is the whole of
// gonum's BLAS, complex routines included, because that is what Gorgonia's G.Use accepts.
type Implementation interface {
	gblas.Float32
	gblas.Float64
	gblas.Complex64
	gblas.Complex128
}

// Impl returns the implementation chosen at build time. It holds no state, so sharing it is safe.
func Impl() Implementation { return impl() }

// Name says which BLAS is in use, for `alignkit version` and benchmark reports.
func Name() string { return name }
