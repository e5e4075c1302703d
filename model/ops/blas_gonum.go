//go:build !openblas

package ops

// Tile limits for BLAS calls made from parallel workers (see tiledGemm). gonum's Sgemm runs serially
// (no goroutines of its own, full-length dot products) while the product has fewer than four 64×64
// blocks, so tiles are at most 64×192; the inner dimension is not limited.
const (
	tileM, tileN = 64, 192
	tileMNK      = 0
)

// splitMatmul is false: whole products are also cut into those serial tiles and spread over the
// workers (parallelGemm), which took a quarter less CPU per training step than gonum's own
// goroutine-per-block parallelism.
const splitMatmul = false

// SerialBLAS has nothing to do for gonum's BLAS, which is ordinary Go code; see the OpenBLAS build.
func SerialBLAS() (release func()) { return func() {} }

// blasThreads is 0: gonum's BLAS has no thread count (for tests).
func blasThreads() int { return 0 }
