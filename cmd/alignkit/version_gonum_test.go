//go:build !openblas

package main

// wantBLAS is what `alignkit version` must name in a build without the openblas tag
// (`make BLAS=gonum`).
const wantBLAS = "BLAS: gonum (pure Go)"
