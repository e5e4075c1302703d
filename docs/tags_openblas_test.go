//go:build openblas

package docs

// openblas is true when the tests were built with -tags openblas, so that the CLI they build and run
// uses the same BLAS as the rest of the build.
const openblas = true
