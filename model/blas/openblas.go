//go:build openblas

package blas

import "gonum.org/v1/netlib/blas/netlib"

const name = "OpenBLAS (cgo)"

func impl() Implementation { return netlib.Implementation{} }
