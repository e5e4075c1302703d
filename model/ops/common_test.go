package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestExpfAccuracy(t *testing.T) {
	worst := 0.0
	for x := -87.0; x <= 88.5; x += 0.001237 {
		got := float64(expf(float32(x)))
		want := math.Exp(float64(float32(x)))
		worst = math.Max(worst, math.Abs(got-want)/want)
	}
	// float32's unit roundoff is 6e-8; Cephes' expf is within about two of them.
	if worst > 2.5e-7 {
		t.Fatalf("worst relative error %g", worst)
	}
	for _, tc := range []struct{ x, want float32 }{{-100, 0}, {float32(math.Inf(-1)), 0}, {0, 1}} {
		if got := expf(tc.x); got != tc.want {
			t.Fatalf("expf(%g) = %g, want %g", tc.x, got, tc.want)
		}
	}
	if !math.IsInf(float64(expf(100)), 1) {
		t.Fatal("expf(100) is not +Inf")
	}
}

// notShape is a DimSizer that is not a tensor.Shape.
type notShape struct{}

func (notShape) DimSize(int) (int, error) { return 1, nil }

// shapes returns every input shape, and an error that names the op for an input that is not a
// tensor.Shape.
func TestShapesNamesTheOp(t *testing.T) {
	b := &base{name: "ops.Test"}
	sh, err := b.shapes([]G.DimSizer{tensor.Shape{2, 3}, tensor.Shape{4}})
	if err != nil || len(sh) != 2 || !sh[0].Eq(tensor.Shape{2, 3}) || !sh[1].Eq(tensor.Shape{4}) {
		t.Fatalf("shapes = %v, %v", sh, err)
	}
	_, err = b.shapes([]G.DimSizer{tensor.Shape{2, 3}, notShape{}})
	if err == nil || err.Error() != "ops.Test: input shape is a ops.notShape, not a tensor.Shape" {
		t.Fatalf("error %v", err)
	}
}

func TestTopKOrderAndTies(t *testing.T) {
	idx := make([]int, 3)
	topK([]float64{0.5, 2, 2, -1, 3}, idx)
	if idx[0] != 4 || idx[1] != 1 || idx[2] != 2 {
		t.Fatalf("topK = %v, want [4 1 2]", idx)
	}
}

func TestParallelHelpersCoverEveryItemOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 17, 1000} {
		seen := make([]int, n)
		parallelRange(n, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		parallelItems(n, func(_, i int) { seen[i]++ })
		for i, c := range seen {
			if c != 2 {
				t.Fatalf("n=%d: item %d visited %d times, want 2", n, i, c)
			}
		}
	}
}

func TestExpTo32MatchesExpf(t *testing.T) {
	var row []float32
	for x := -100.0; x <= 88.7; x += 0.0173 {
		row = append(row, float32(x))
	}
	row = append(row, float32(math.Inf(-1)))
	want := make([]float32, len(row))
	var sum float64
	for i, v := range row {
		want[i] = expf(v - 0.5)
		sum += float64(want[i])
	}
	got := append([]float32(nil), row...)
	s := expTo32(got, got, 0.5)
	if s2 := expTo32(nil, row, 0.5); s2 != s {
		t.Fatalf("sum without storing %g, with %g", s2, s)
	}
	for i := range got {
		if d := math.Abs(float64(got[i]-want[i])) / math.Max(float64(want[i]), 1e-38); d > 2.5e-7 {
			t.Fatalf("x=%g: %g vs expf %g", row[i]-0.5, got[i], want[i])
		}
	}
	if math.Abs(s-sum) > 1e-6*sum {
		t.Fatalf("sum %g vs %g", s, sum)
	}
}

// tiledGemm, parallelGemm and matmul equal one gemm for every transpose combination and shapes that cut into ragged tiles.
func TestTiledAndParallelGemmMatchGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, sh := range [][3]int{{1, 1, 1}, {70, 200, 33}, {130, 65, 300}, {64, 64, 64}, {3, 400, 500}} {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				a, b := make([]float64, m*k+3), make([]float64, n*k+5)
				for i := range a {
					a[i] = rng.NormFloat64()
				}
				for i := range b {
					b[i] = rng.NormFloat64()
				}
				lda, ldb := k+0, n
				if tA {
					lda = m
				}
				if tB {
					ldb = k
				}
				c1, c2 := make([]float64, m*n), make([]float64, m*n)
				for i := range c1 {
					c1[i] = rng.NormFloat64()
					c2[i] = c1[i]
				}
				c3 := append([]float64(nil), c1...)
				c4 := append([]float64(nil), c1...)
				gemm(tA, tB, m, n, k, 0.5, a, lda, b, ldb, 0.25, c1, n)
				tiledGemm(tA, tB, m, n, k, 0.5, a, lda, b, ldb, 0.25, c2, n)
				parallelGemm(tA, tB, m, n, k, 0.5, a, lda, b, ldb, 0.25, c3, n)
				matmul(tA, tB, m, n, k, 0.5, a, lda, b, ldb, 0.25, c4, n)
				for i := range c1 {
					tol := 1e-12 * (1 + math.Abs(c1[i]))
					if math.Abs(c1[i]-c2[i]) > tol || math.Abs(c1[i]-c3[i]) > tol || math.Abs(c1[i]-c4[i]) > tol {
						t.Fatalf("%v tA=%v tB=%v: element %d: tiled %g, parallel %g, matmul %g, gemm %g", sh, tA, tB, i, c2[i], c3[i], c4[i], c1[i])
					}
				}
			}
		}
	}
}

// SerialBLAS holds nest and overlap; the thread count comes back when the last one is released,
// and releasing twice is harmless.
func TestSerialBLASRestores(t *testing.T) {
	before := blasThreads()
	r1 := SerialBLAS()
	r2 := SerialBLAS()
	if before != 0 && blasThreads() != 1 {
		t.Fatalf("inside SerialBLAS: %d threads", blasThreads())
	}
	r1()
	r1()
	if before != 0 && blasThreads() != 1 {
		t.Fatalf("one holder left: %d threads", blasThreads())
	}
	r2()
	if blasThreads() != before {
		t.Fatalf("after release: %d threads, before %d", blasThreads(), before)
	}
}
