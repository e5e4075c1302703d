//go:build !openblas

package docs

// openblas is false: the tests, and the CLI they build, use gonum's pure-Go BLAS.
const openblas = false
