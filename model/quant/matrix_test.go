package quant

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// testMatrix builds an (out, in) matrix in format f: encodable formats quantise Gaussian weights,
// decode-only ones (Q4_0, Q4_K, Q6_K) wrap random blocks with finite scales.
func testMatrix(t *testing.T, rng *rand.Rand, f Format, out, in int) *Matrix {
	t.Helper()
	if f.CanEncode() {
		w := make([]float32, out*in)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.05)
		}
		m, err := New(f, out, in, w)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	scales := map[Format][]int{Q4_0: {0}, Q4_K: {0, 2}, Q6_K: {208}}[f]
	m, err := FromBlocks(f, out, in, randomBlocks(rng, f, out*in/f.BlockSize(), scales...))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func randVec(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// TestProductsMatchDense checks MulT and MulAdd of every format against float64 products of the
// matrix's own dequantised values (Dequantize), for batch sizes on the one-row fused kernels (n = 1),
// the decode-a-row path (n <= 4) and the tiled sgemm path (n = 70 also cuts gonum's products into
// 64-row tiles), small enough to run inline and large enough to fan out, with row lengths that are and
// are not whole blocks. The bound is float32 accumulation: |err| <= 1e-5 · Σ|x·w| + 1e-6.
func TestProductsMatchDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	type shape struct{ out, in int }
	for _, f := range Formats() {
		shapes := []shape{{70, 512}, {300, 1024}}
		if f.BlockSize() <= 64 && f.CanEncode() {
			shapes = append(shapes, shape{33, 100}) // a zero-padded last block
		}
		for _, s := range shapes {
			m := testMatrix(t, rng, f, s.out, s.in)
			w := make([]float32, s.out*s.in)
			m.Dequantize(w, 0, s.out)
			for _, n := range []int{1, 3, 5, 37, 70} {
				x := randVec(rng, n*s.in)
				y := randVec(rng, n*s.out) // overwritten
				m.MulT(y, x, n)
				for i := 0; i < n; i++ {
					for r := 0; r < s.out; r++ {
						var want, mag float64
						for c := 0; c < s.in; c++ {
							p := float64(x[i*s.in+c]) * float64(w[r*s.in+c])
							want += p
							mag += math.Abs(p)
						}
						if d := math.Abs(float64(y[i*s.out+r]) - want); d > 1e-5*mag+1e-6 {
							t.Fatalf("%s %v n=%d: MulT y[%d,%d] = %v, dense %v", f, s, n, i, r, y[i*s.out+r], want)
						}
					}
				}
				dy := randVec(rng, n*s.out)
				dx := randVec(rng, n*s.in)
				dx0 := append([]float32(nil), dx...)
				m.MulAdd(dx, dy, n)
				for i := 0; i < n; i++ {
					for c := 0; c < s.in; c++ {
						want, mag := float64(dx0[i*s.in+c]), math.Abs(float64(dx0[i*s.in+c]))
						for r := 0; r < s.out; r++ {
							p := float64(dy[i*s.out+r]) * float64(w[r*s.in+c])
							want += p
							mag += math.Abs(p)
						}
						if d := math.Abs(float64(dx[i*s.in+c]) - want); d > 1e-5*mag+1e-6 {
							t.Fatalf("%s %v n=%d: MulAdd dx[%d,%d] = %v, dense %v", f, s, n, i, c, dx[i*s.in+c], want)
						}
					}
				}
			}
		}
	}
}

// TestMulAddIsGradient checks by central finite differences that MulAdd is the gradient of MulT with
// respect to x: for L(x) = Σ g ⊙ MulT(x), ∂L/∂x = MulAdd(0, g). L is linear in x, so the differences
// carry only float32 rounding: with a step of 0.05, |FD - analytic| <= 2e-3 · (1 + |analytic|).
func TestMulAddIsGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, f := range []Format{F32, BF16, Q8_0, Q4_K, Q6_K, NF4} {
		const n, out, in = 3, 40, 256
		m := testMatrix(t, rng, f, out, in)
		x, g := randVec(rng, n*in), randVec(rng, n*out)
		y := make([]float32, n*out)
		loss := func() float64 {
			m.MulT(y, x, n)
			var s float64
			for i, v := range y {
				s += float64(g[i]) * float64(v)
			}
			return s
		}
		grad := make([]float32, n*in)
		m.MulAdd(grad, g, n)
		const h = 0.05
		for _, j := range []int{0, 1, 77, 255, 256, 400, n*in - 1} {
			orig := x[j]
			x[j] = orig + h
			lp := loss()
			x[j] = orig - h
			lm := loss()
			x[j] = orig
			fd := (lp - lm) / (2 * h)
			if d := math.Abs(fd - float64(grad[j])); d > 2e-3*(1+math.Abs(fd)) {
				t.Errorf("%s: ∂L/∂x[%d]: finite difference %v, MulAdd %v", f, j, fd, grad[j])
			}
		}
	}
}

// TestProductsDoNotExpand multiplies a 4096×8192 Q8_0 matrix (34 MiB stored, 128 MiB as float32) and
// requires that MulT and MulAdd allocate far less than its float32 copy: at most the per-worker tile
// scratch (bounded by tileFloats each) plus a little, whatever the batch.
func TestProductsDoNotExpand(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const out, in = 4096, 8192
	w := make([]float32, out*in)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	m, err := New(Q8_0, out, in, w)
	if err != nil {
		t.Fatal(err)
	}
	w = nil
	dense := int64(out * in * 4)
	workers := runtime.GOMAXPROCS(0)
	tile := int64(max(batchRows(out, in, workers)*in, tileRows*in))
	if tile > tileFloats {
		t.Fatalf("a tile of %d floats exceeds tileFloats", tile)
	}
	scratch := int64(workers) * tile * 4
	for _, n := range []int{1, 16} {
		x, y := randVec(rng, n*in), make([]float32, n*out)
		dx, dy := make([]float32, n*in), randVec(rng, n*out)
		m.MulT(y, x, n) // warm the scratch pool
		m.MulAdd(dx, dy, n)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 3
		for range runs {
			m.MulT(y, x, n)
			m.MulAdd(dx, dy, n)
		}
		runtime.ReadMemStats(&after)
		per := int64(after.TotalAlloc-before.TotalAlloc) / runs
		// A GC may empty the pool, so one refill of every worker's scratch is allowed per run.
		if per > scratch+64<<10 || per > dense/4 {
			t.Errorf("n=%d: a MulT+MulAdd allocated %d bytes; the tile scratch is %d, the float32 matrix %d", n, per, scratch, dense)
		}
		t.Logf("n=%d: %d bytes allocated per MulT+MulAdd (float32 matrix: %d)", n, per, dense)
	}
}

// TestQuantizeErrorBound quantises Gaussian and heavy-tailed weights and checks each value's error against
// its format's bound: BF16 rounds to 8 significant bits (|e| <= 2^-8·|x|), F16 to 11 (|e| <= 2^-11·|x|
// in the normal range); Q8_0 is half a step of d = amax/127 plus 127 times d's fp16 rounding, relative
// 2^-11 or, for subnormal d, absolute 2^-25 (|e| <= 0.5·d + 127·(2^-11·d + 2^-25)); NF4 is half the widest gap between NF4 levels, the one between -1 and -0.6961928 (the
// negative side has one level fewer), 0.1519 of the block's absmax.
func TestQuantizeErrorBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	const out, in = 64, 512
	w := weightLike(rng, out*in)
	for i := range w {
		w[i] *= 0.05
	}
	blockMax := func(i, block int) float64 {
		r, c := i/in, i%in
		lo := r*in + c/block*block
		var a float64
		for _, v := range w[lo:min(lo+block, (r+1)*in)] {
			a = max(a, math.Abs(float64(v)))
		}
		return a
	}
	bounds := map[Format]func(i int) float64{
		F32:  func(int) float64 { return 0 },
		BF16: func(i int) float64 { return 0x1p-8 * math.Abs(float64(w[i])) },
		F16:  func(i int) float64 { return 0x1p-11*math.Abs(float64(w[i])) + 0x1p-25 },
		Q8_0: func(i int) float64 { d := blockMax(i, 32) / 127; return (0.5*d + 127*(0x1p-11*d+0x1p-25)) * 1.0001 },
		NF4:  func(i int) float64 { return (1 - 0.6961928009986877) / 2 * blockMax(i, 64) * 1.0001 },
	}
	for f, bound := range bounds {
		m, err := New(f, out, in, w)
		if err != nil {
			t.Fatal(err)
		}
		back := make([]float32, out*in)
		m.Dequantize(back, 0, out)
		var worst float64
		for i := range w {
			e := math.Abs(float64(back[i]) - float64(w[i]))
			if e > bound(i) {
				t.Fatalf("%s: value %d: %v came back as %v, error %g over the bound %g", f, i, w[i], back[i], e, bound(i))
			}
			worst = max(worst, e)
		}
		t.Logf("%s: %d bytes (%.3f bits a value), worst error %.3g", f, m.Bytes(), float64(8*m.Bytes())/float64(out*in), worst)
	}
}

// TestNF4Block checks NF4 encoding on hand-derived values. With absmax 2 every value is normalised by
// 1/2: 2 -> 1.0 (code 15), -2 -> -1.0 (code 0), 0 -> code 7, 1.4459136 = 2·0.7229568 -> code 14,
// 0.0795 -> 0.03975, just below the 0/0.0795803 midpoint 0.0397901 -> code 7, 0.0797 -> 0.03985, above it ->
// code 8, -0.5 -> -0.25, nearest level -0.2844414 (code 4; the 4/5 midpoint is -0.2346074). Codes pack
// two a byte, the first value in the high nibble, after the float32 absmax.
func TestNF4Block(t *testing.T) {
	x := make([]float32, 64)
	copy(x, []float32{2, -2, 0, 1.4459136, 0.0795, 0.0797, -0.5, 0})
	m, err := New(NF4, 1, 64, x)
	if err != nil {
		t.Fatal(err)
	}
	raw := m.Raw()
	if a := math.Float32frombits(uint32(raw[0]) | uint32(raw[1])<<8 | uint32(raw[2])<<16 | uint32(raw[3])<<24); a != 2 {
		t.Fatalf("absmax %v, want 2", a)
	}
	want := []byte{0xf0, 0x7e, 0x78, 0x47}
	for i, b := range want {
		if raw[4+i] != b {
			t.Errorf("byte %d = %#02x, want %#02x", i, raw[4+i], b)
		}
	}
	back := make([]float32, 64)
	m.Dequantize(back, 0, 1)
	for i, v := range []float32{2, -2, 0, 0.7229568362236023 * 2, 0, 0.07958029955625534 * 2, -0.28444138169288635 * 2} {
		if back[i] != v {
			t.Errorf("value %d decodes to %v, want %v", i, back[i], v)
		}
	}
}
