package quant

import (
	"fmt"
	"math/rand/v2"
	"testing"

	gblas "gonum.org/v1/gonum/blas"

	"github.com/alignkit/alignkit/model/blas"
)

// BenchmarkMulT compares each format's MulT on a 2048×2048 matrix with the dense float32 product the
// inference engine makes (sgemv for one row, sgemm otherwise), for a decode step (n=1) and a prompt (n=64).
func BenchmarkMulT(b *testing.B) {
	const out, in = 2048, 2048
	rng := rand.New(rand.NewPCG(1, 2))
	w := randVec(rng, out*in)
	for _, n := range []int{1, 64} {
		x, y := randVec(rng, n*in), make([]float32, n*out)
		b.Run(fmt.Sprintf("dense/n=%d", n), func(b *testing.B) {
			bl := blas.Impl()
			for b.Loop() {
				if n == 1 {
					bl.Sgemv(gblas.NoTrans, out, in, 1, w, in, x, 1, 0, y, 1)
				} else {
					bl.Sgemm(gblas.NoTrans, gblas.Trans, n, out, in, 1, x, in, w, in, 0, y, out)
				}
			}
		})
		for _, f := range []Format{F32, BF16, F16, Q8_0, NF4} {
			m, err := New(f, out, in, w)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/n=%d", f, n), func(b *testing.B) {
				for b.Loop() {
					m.MulT(y, x, n)
				}
			})
		}
	}
}

// BenchmarkMulAdd is the backward product dx += dy·W on the same matrix, against the dense sgemm.
func BenchmarkMulAdd(b *testing.B) {
	const out, in, n = 2048, 2048, 64
	rng := rand.New(rand.NewPCG(3, 4))
	w := randVec(rng, out*in)
	dy, dx := randVec(rng, n*out), make([]float32, n*in)
	b.Run("dense", func(b *testing.B) {
		bl := blas.Impl()
		for b.Loop() {
			bl.Sgemm(gblas.NoTrans, gblas.NoTrans, n, in, out, 1, dy, out, w, in, 1, dx, in)
		}
	})
	for _, f := range []Format{F32, BF16, Q8_0, NF4} {
		m, err := New(f, out, in, w)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(f.String(), func(b *testing.B) {
			for b.Loop() {
				m.MulAdd(dx, dy, n)
			}
		})
	}
}
