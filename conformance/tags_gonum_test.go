//go:build !openblas

package conformance

// openblas is false: the tests, and the CLI they build, use gonum's pure-Go BLAS.
const openblas = false
