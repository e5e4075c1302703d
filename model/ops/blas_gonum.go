//go:build !openblas

package ops

// Tile limits for BLAS calls made from parallel workers (see tiledGemm). gonum's Sgemm runs serially
// (no goroutines of its own, full-length dot products) while the product has fewer than four 64×64
// blocks, so tiles are at most 64×192; the inner dimension is not limited.
const (
	tileM, tileN = 64, 192
	tileMNK      = 0
)

// goParallelMatmul: whole products (matmul) are also cut into serial tiles spread over the workers,
// which took a quarter less CPU per training step than gonum's own goroutine-per-block parallelism.
const goParallelMatmul = true
