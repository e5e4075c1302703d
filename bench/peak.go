package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	gblas "gonum.org/v1/gonum/blas"

	"github.com/alignkit/alignkit/model/blas"
)

// Peak is a measured fp32 matrix-multiply throughput.
type Peak struct {
	Kind   string  `json:"kind"` // "peak"
	GFLOPS float64 `json:"peak_gflops"`
	N      int     `json:"n"`
	Reps   int     `json:"reps"`
	BLAS   string  `json:"blas"`
	Core   string  `json:"openblas_coretype"`
}

// MeasurePeak times reps square n×n×n sgemms (C = A·B, 2·n³ FLOPs each) through the BLAS alignkit
// uses and returns the best rate, after one untimed call that warms the caches and the BLAS's threads.
// It is the "machine's fp32 peak" the benchmark reports achieved GFLOP/s against: a large sgemm is
// the best any fp32 code reaches on the machine, so it stands for the peak of the cores that the
// BLAS's threads (OPENBLAS_NUM_THREADS) are allowed to use.
func MeasurePeak(n, reps int) (Peak, error) {
	if n < 64 || reps < 1 {
		return Peak{}, fmt.Errorf("peak sgemm: n %d must be >= 64 and reps %d >= 1", n, reps)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	a := make([]float32, n*n)
	b := make([]float32, n*n)
	c := make([]float32, n*n)
	for i := range a {
		a[i] = rng.Float32() - 0.5
		b[i] = rng.Float32() - 0.5
	}
	impl := blas.Impl()
	run := func() time.Duration {
		start := time.Now()
		impl.Sgemm(gblas.NoTrans, gblas.NoTrans, n, n, n, 1, a, n, b, n, 0, c, n)
		return time.Since(start)
	}
	run()
	best := time.Duration(1<<63 - 1)
	for range reps {
		best = min(best, run())
	}
	flops := 2 * float64(n) * float64(n) * float64(n)
	return Peak{Kind: "peak", GFLOPS: flops / best.Seconds() / 1e9, N: n, Reps: reps, BLAS: blas.Name(), Core: os.Getenv("OPENBLAS_CORETYPE")}, nil
}
