//go:build openblas

package ops

// Tile limits for BLAS calls made from parallel workers (see tiledGemm). OpenBLAS threads a gemm
// over its shared pool once m·n·k exceeds 65536·4 (GEMM_MULTITHREAD_THRESHOLD); concurrent callers of
// pooled gemms then wait on each other in spin loops, which measured 4× slower than serial calls.
// Below the threshold it runs on the caller's thread, and concurrent calls scale.
const (
	tileM, tileN = 64, 64
	tileMNK      = 65536 * 4
)

// goParallelMatmul: whole products (matmul) go to OpenBLAS in one call, threaded over its pool. One
// core reaches about 118 GFLOP/s on the training shapes, against 70-85 for tiles small enough to stay
// on the calling thread.
const goParallelMatmul = false
