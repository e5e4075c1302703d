package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/alignkit/alignkit/model/ops/internal/vecmath"
)

// expTo32 (vector body plus scalar tail) agrees with the scalar loop and with math.Exp on every
// length around the 8-lane blocks, on values that hit each special case: below lo (exp is 0), -Inf,
// NaN, and a block above the vector body's 88.3 limit, which hands the rest to the scalar loop.
func TestExpTo32VectorMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	random := func(n int) []float32 {
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(-40 * rng.Float64())
		}
		return row
	}
	special := func(n int, pos int, v float32) []float32 {
		row := random(n)
		row[pos] = v
		return row
	}
	cases := []struct {
		name     string
		row      []float32
		m        float32
		wantDone int // elements the vector body must take on an AVX2 machine
	}{
		{"empty", nil, 0, 0},
		{"one", random(1), 0, 0},
		{"seven", random(7), 0.25, 0},
		{"eight", random(8), 0.25, 8},
		{"nine", random(9), -1, 8},
		{"4099", random(4099), 3, 4096},
		{"below lo", special(24, 5, -95), 0, 24},
		{"minus inf", special(24, 17, float32(math.Inf(-1))), 0, 24},
		{"near hi", special(40, 19, 88.5), 0, 16},
		{"above hi", special(40, 3, 100), 0, 0},
		{"nan", special(16, 9, float32(math.NaN())), 0, 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := make([]float32, len(tc.row))
			wantSum := expScalar32(want, tc.row, tc.m)
			got := make([]float32, len(tc.row))
			sum := expTo32(got, tc.row, tc.m)
			if vecmath.HasExp {
				if _, done := vecmath.Exp(nil, tc.row, tc.m); done != tc.wantDone {
					t.Fatalf("vector body took %d elements, want %d", done, tc.wantDone)
				}
			}
			for i := range got {
				w, g := want[i], got[i]
				if math.IsNaN(float64(w)) != math.IsNaN(float64(g)) || math.IsInf(float64(w), 1) != math.IsInf(float64(g), 1) {
					t.Fatalf("x=%g: got %g, scalar %g", tc.row[i]-tc.m, g, w)
				}
				if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
					continue
				}
				if (w == 0) != (g == 0) {
					t.Fatalf("x=%g: got %g, scalar %g (exact zeros must agree)", tc.row[i]-tc.m, g, w)
				}
				ref := math.Exp(float64(tc.row[i] - tc.m))
				if ref < 1e-37 { // below lo both give 0
					continue
				}
				if d := math.Abs(float64(g)-ref) / ref; d > 2.5e-7 {
					t.Fatalf("x=%g: got %g, math.Exp %g (rel %.2g)", tc.row[i]-tc.m, g, ref, d)
				}
				if d := math.Abs(float64(g-w)) / float64(w); d > 2.5e-7 {
					t.Fatalf("x=%g: got %g, scalar %g (rel %.2g)", tc.row[i]-tc.m, g, w, d)
				}
			}
			if math.IsNaN(wantSum) != math.IsNaN(sum) || (!math.IsNaN(sum) && math.Abs(sum-wantSum) > 1e-6*math.Abs(wantSum)) {
				t.Fatalf("sum %g, scalar %g", sum, wantSum)
			}
			// Summing only (dst nil) and in place (dst = src) give the same sum and values.
			if s := expTo32(nil, tc.row, tc.m); s != sum && !(math.IsNaN(s) && math.IsNaN(sum)) {
				t.Fatalf("sum without storing %g, with %g", s, sum)
			}
			inPlace := append([]float32(nil), tc.row...)
			expTo32(inPlace, inPlace, tc.m)
			for i := range inPlace {
				if inPlace[i] != got[i] && !math.IsNaN(float64(got[i])) {
					t.Fatalf("in place [%d] = %g, into dst %g", i, inPlace[i], got[i])
				}
			}
		})
	}
}

func BenchmarkExpTo32(b *testing.B) {
	row := make([]float32, 4096)
	for i := range row {
		row[i] = float32(-20 * float64(i) / 4096)
	}
	dst := make([]float32, len(row))
	b.Run("vector", func(b *testing.B) {
		b.SetBytes(4 * int64(len(row)))
		for b.Loop() {
			expTo32(dst, row, 0)
		}
	})
	b.Run("scalar", func(b *testing.B) {
		b.SetBytes(4 * int64(len(row)))
		for b.Loop() {
			expScalar32(dst, row, 0)
		}
	})
}

// swigluFwd's vector body agrees with the scalar formula g·σ(g)·u (and keeps σ when asked) on
// lengths around the 8-lane blocks and on gates that saturate σ, -Inf, +Inf and NaN.
func TestSwiGLUVectorMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	inf := float32(math.Inf(1))
	for _, n := range []int{1, 7, 8, 9, 31, 1000} {
		for _, extreme := range []float32{0, 95, -95, inf, -inf, float32(math.NaN())} {
			g, u := make([]float32, n), make([]float32, n)
			for i := range g {
				g[i] = float32(6 * rng.NormFloat64())
				u[i] = float32(rng.NormFloat64())
			}
			if extreme != 0 {
				g[n/2] = extreme
			}
			y, sig := make([]float32, n), make([]float32, n)
			if done := vecmath.SwiGLU(y, g, u, sig); vecmath.HasExp && done != n&^7 {
				t.Fatalf("n=%d: vector body took %d, want %d", n, done, n&^7)
			}
			swigluFwd(y, g, u, sig) // the op's own path: vector body, then the scalar tail
			yNoSig := make([]float32, n)
			swigluFwd(yNoSig, g, u, nil)
			for i := range g {
				gi := float64(g[i])
				s := 1 / (1 + math.Exp(-gi))
				want := gi * s * float64(u[i])
				if math.IsNaN(gi) || math.IsInf(gi, 0) {
					// A non-finite gate must not turn into a finite output that hides it (the
					// scalar code gives NaN for -Inf, the vector body ±Inf: both reach the loss).
					if yi := float64(y[i]); !math.IsNaN(yi) && !math.IsInf(yi, 0) {
						t.Fatalf("n=%d g=%g: y %g, want NaN or ±Inf", n, gi, yi)
					}
					continue
				}
				if d := math.Abs(float64(y[i]) - want); d > 1e-6*math.Max(1, math.Abs(want)) {
					t.Fatalf("n=%d g=%g u=%g: y %g, want %g", n, gi, u[i], y[i], want)
				}
				if d := math.Abs(float64(sig[i]) - s); d > 1e-6*s && d > 1e-37 {
					t.Fatalf("n=%d g=%g: σ %g, want %g", n, gi, sig[i], s)
				}
				if yNoSig[i] != y[i] {
					t.Fatalf("n=%d: y without σ %g, with %g", n, yNoSig[i], y[i])
				}
			}
		}
	}
}
