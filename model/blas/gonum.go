//go:build !openblas

package blas

import "gonum.org/v1/gonum/blas/gonum"

const name = "gonum (pure Go)"

func impl() Implementation { return gonum.Implementation{} }
