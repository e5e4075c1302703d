package ops

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/alignkit/alignkit/model/ops/internal/vecmath"

	gblas "gonum.org/v1/gonum/blas"

	"github.com/alignkit/alignkit/model/blas"
)

// Float is the element type of every differentiable tensor: float32 in training, float64 in tests.
type Float interface{ ~float32 | ~float64 }

// base carries the Op methods that are the same for every op here. Its address is part of the op's
// hash, so that two op instances never collapse into one node (they hold state).
type base struct{ name string }

func (b *base) ReturnsPtr() bool      { return false }
func (b *base) CallsExtern() bool     { return false }
func (b *base) OverwritesInput() int  { return -1 }
func (b *base) String() string        { return b.name }
func (b *base) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s@%p", b.name, b) }
func (b *base) Hashcode() uint32 {
	h := fnv.New32a()
	b.WriteHash(h)
	return h.Sum32()
}

// errorf formats an op's error: one line that starts with the op's name.
func (b *base) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s", b.name, fmt.Sprintf(format, args...))
}

var tvA = hm.TypeVariable('a')

// floatT is a tensor of the graph's float dtype; intT an Int32 tensor (ids, positions, segments).
func floatT(dims int) G.TensorType { return G.TensorType{Dims: dims, Of: tvA} }
func intT(dims int) G.TensorType   { return G.TensorType{Dims: dims, Of: G.Int32} }

func fnType(ts ...hm.Type) hm.Type { return hm.NewFnType(ts...) }

// shapeOf reads a child's shape at graph-building time.
func shapeOf(d G.DimSizer) (tensor.Shape, error) {
	s, ok := d.(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("input shape is a %T, not a tensor.Shape", d)
	}
	return s, nil
}

// shapes reads all of an op's input shapes at graph-building time (InferShape's argument); an error
// names the op.
func (b *base) shapes(ds []G.DimSizer) ([]tensor.Shape, error) {
	sh := make([]tensor.Shape, len(ds))
	for i, d := range ds {
		s, err := shapeOf(d)
		if err != nil {
			return nil, b.errorf("%v", err)
		}
		sh[i] = s
	}
	return sh, nil
}

// denseOf returns the dense tensor behind a value.
func denseOf(v G.Value) (*tensor.Dense, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("input is a %T, want a dense tensor", v)
	}
	return d, nil
}

// floats returns the backing slice of a float tensor.
func floats[T Float](v G.Value) []T { return v.(*tensor.Dense).Data().([]T) }

// int32s returns the backing slice of an Int32 tensor.
func int32s(v G.Value) ([]int32, error) {
	d, err := denseOf(v)
	if err != nil {
		return nil, err
	}
	s, ok := d.Data().([]int32)
	if !ok {
		return nil, fmt.Errorf("index input has dtype %v, want int32", d.Dtype())
	}
	return s, nil
}

// scalarOf reads a scalar value (the upstream gradient of a scalar loss).
func scalarOf(v G.Value) (float64, error) {
	switch s := v.(type) {
	case *G.F32:
		return float64(*s), nil
	case *G.F64:
		return float64(*s), nil
	case *tensor.Dense:
		if s.Shape().TotalSize() != 1 {
			return 0, fmt.Errorf("want a scalar, got shape %v", s.Shape())
		}
		switch d := s.Data().(type) {
		case []float32:
			return float64(d[0]), nil
		case []float64:
			return d[0], nil
		case float32:
			return float64(d), nil
		case float64:
			return d, nil
		}
	}
	return 0, fmt.Errorf("want a float scalar, got %T", v)
}

// checkFloat verifies that the float inputs share one supported dtype and returns it.
func checkFloat(vs ...G.Value) (tensor.Dtype, error) {
	if len(vs) == 0 {
		return tensor.Float32, nil
	}
	dt := vs[0].Dtype()
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return dt, fmt.Errorf("dtype %v is not supported (want float32 or float64)", dt)
	}
	for _, v := range vs[1:] {
		if _, ok := v.(*tensor.Dense); !ok {
			return dt, fmt.Errorf("input is a %T, want a dense tensor", v)
		}
		if v.Dtype() != dt {
			return dt, fmt.Errorf("inputs mix dtypes %v and %v", dt, v.Dtype())
		}
	}
	if _, ok := vs[0].(*tensor.Dense); !ok {
		return dt, fmt.Errorf("input is a %T, want a dense tensor", vs[0])
	}
	return dt, nil
}

// buf is an op's persistent output (or cache) tensor, reallocated only when the shape or dtype changes.
type buf struct{ t *tensor.Dense }

func (b *buf) get(dt tensor.Dtype, shape ...int) *tensor.Dense {
	if b.t != nil && b.t.Dtype() == dt && slices.Equal([]int(b.t.Shape()), shape) {
		return b.t
	}
	b.t = tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
	return b.t
}

// scratch is per-worker working memory of element type T, kept between runs.
type scratch[T Float] struct{ s [][]T }

func (w *scratch[T]) get(worker, n int) []T {
	for len(w.s) <= worker {
		w.s = append(w.s, nil)
	}
	if cap(w.s[worker]) < n {
		w.s[worker] = make([]T, n)
	}
	return w.s[worker][:n]
}

// workers is how many goroutines an op splits its work over.
func workers() int { return runtime.GOMAXPROCS(0) }

// parallelRange splits [0, n) into one contiguous chunk per worker, with at least grain items per
// chunk, and waits for all of them.
func parallelRange(n, grain int, fn func(lo, hi int)) {
	if grain < 1 {
		grain = 1
	}
	w := min(workers(), n/grain)
	if w <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	chunk := (n + w - 1) / w
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// parallelItems hands items 0..n-1 to the workers one at a time (for items of uneven cost); fn gets
// the worker's index (for its scratch memory) and the item.
func parallelItems(n int, fn func(worker, item int)) {
	w := min(workers(), n)
	if w <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(k, i)
			}
		}()
	}
	wg.Wait()
}

func trans(t bool) gblas.Transpose {
	if t {
		return gblas.Trans
	}
	return gblas.NoTrans
}

// gemm computes c = alpha*op(a)*op(b) + beta*c (row-major, as gonum's BLAS) with the build's BLAS.
// A zero inner dimension only scales c.
func gemm[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row) // not 0·c: c may hold anything
				continue
			}
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	switch av := any(a).(type) {
	case []float32:
		blas.Impl().Sgemm(trans(tA), trans(tB), m, n, k, float32(alpha), av, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		blas.Impl().Dgemm(trans(tA), trans(tB), m, n, k, float64(alpha), av, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// matmul computes a whole product from one goroutine's point of view (Linear, the experts), using
// every worker: OpenBLAS builds split it into a few large row (or column) chunks, each one serial
// OpenBLAS call (see SerialBLAS); gonum builds into small serial tiles (parallelGemm).
func matmul[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if !splitMatmul {
		parallelGemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	defer SerialBLAS()()
	w := workers()
	if w == 1 || m*n*k < 1<<18 {
		gemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// Two chunks per worker, handed out one at a time, balance the cores when one is busy elsewhere.
	if m >= 32*w {
		step := (m + 2*w - 1) / (2 * w)
		parallelItems((m+step-1)/step, func(_, t int) {
			i0 := t * step
			aOff := i0 * lda
			if tA {
				aOff = i0
			}
			gemm(tA, tB, min(step, m-i0), n, k, alpha, a[aOff:], lda, b, ldb, beta, c[i0*ldc:], ldc)
		})
		return
	}
	step := max(16, (n+2*w-1)/(2*w))
	parallelItems((n+step-1)/step, func(_, t int) {
		j0 := t * step
		bOff := j0
		if tB {
			bOff = j0 * ldb
		}
		gemm(tA, tB, m, min(step, n-j0), k, alpha, a, lda, b[bOff:], ldb, beta, c[j0:], ldc)
	})
}

// parallelGemm computes a whole product on all workers: C is cut into tiles (tileM × tileN) that
// the workers take one at a time, each tile one serial BLAS call (see tiledGemm). Each C element is
// computed by one worker in a fixed order, so results do not depend on scheduling.
func parallelGemm[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	tm, tn := (m+tileM-1)/tileM, (n+tileN-1)/tileN
	if tm*tn <= 1 {
		tiledGemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	parallelItems(tm*tn, func(_, t int) {
		i0, j0 := (t/tn)*tileM, (t%tn)*tileN
		bm, bn := min(tileM, m-i0), min(tileN, n-j0)
		aOff, bOff := i0*lda, j0
		if tA {
			aOff = i0
		}
		if tB {
			bOff = j0 * ldb
		}
		tiledGemm(tA, tB, bm, bn, k, alpha, a[aOff:], lda, b[bOff:], ldb, beta, c[i0*ldc+j0:], ldc)
	})
}

// tiledGemm is gemm for callers that run on several goroutines at once (attention's per-head
// work, inside SerialBLAS): it cuts the product into tiles that the build's BLAS computes on the
// calling goroutine without threads of its own (tileM, tileN, tileMNK), so the workers' calls run
// side by side. The inner dimension is cut last (later chunks accumulate with beta 1).
func tiledGemm[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	mt, nt, kt := min(m, tileM), min(n, tileN), k
	if tileMNK > 0 && mt*nt*kt > tileMNK {
		kt = max(1, tileMNK/(mt*nt))
	}
	if mt == m && nt == n && kt == k {
		gemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	for i0 := 0; i0 < m; i0 += mt {
		bm := min(mt, m-i0)
		for j0 := 0; j0 < n; j0 += nt {
			bn := min(nt, n-j0)
			bt := beta
			for p0 := 0; p0 < k; p0 += kt {
				bk := min(kt, k-p0)
				aOff, bOff := i0*lda+p0, p0*ldb+j0
				if tA {
					aOff = p0*lda + i0
				}
				if tB {
					bOff = j0*ldb + p0
				}
				gemm(tA, tB, bm, bn, bk, alpha, a[aOff:], lda, b[bOff:], ldb, bt, c[i0*ldc+j0:], ldc)
				bt = 1
			}
		}
	}
}

// expf is a float32 exp with Cephes' range reduction and polynomial (about 1 ulp), several times
// faster than converting to float64 for math.Exp. Inputs below -87.3 give 0.
func expf(x float32) float32 {
	const (
		hi    = 88.72283
		lo    = -87.33654
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	if x > hi {
		return float32(math.Inf(1))
	}
	if x < lo {
		return 0
	}
	fx := x*log2e + 0.5
	n := int32(fx)
	if float32(n) > fx {
		n--
	}
	fn := float32(n)
	x = x - fn*c1 - fn*c2
	z := x * x
	y := ((((1.9875691500e-4*x+1.3981999507e-3)*x+8.3334519073e-3)*x+4.1665795894e-2)*x+1.6666665459e-1)*x + 5.0000001201e-1
	y = y*z + x + 1
	if n > 127 { // x near hi: 2^128 is not a float32, 2·2^127 is fine
		return 2 * y * math.Float32frombits(uint32(n+126)<<23)
	}
	return y * math.Float32frombits(uint32(n+127)<<23)
}

// exp is expf for float32 and math.Exp for float64 (whose tests need the accuracy).
func exp[T Float](x T) T {
	if _, ok := any(x).(float32); ok {
		return T(expf(float32(x)))
	}
	return T(math.Exp(float64(x)))
}

// expShift replaces row[j] by exp(row[j]-m) and returns the sum in float64.
func expShift[T Float](row []T, m T) float64 { return expTo(row, row, m) }

// expTo writes exp(src[j]-m) to dst[j] (dst may be src, or nil to only sum) and returns the sum
// in float64.
func expTo[T Float](dst, src []T, m T) float64 {
	switch s := any(src).(type) {
	case []float32:
		d, _ := any(dst).([]float32)
		return expTo32(d, s, float32(m))
	case []float64:
		d, _ := any(dst).([]float64)
		var sum float64
		mm := float64(m)
		for j, v := range s {
			e := math.Exp(v - mm)
			if d != nil {
				d[j] = e
			}
			sum += e
		}
		return sum
	}
	return 0
}

// expTo32 is expf over a slice (the softmaxes spend most of their time here): eight lanes at a time
// in assembly where the CPU has AVX2 and FMA, and the scalar loop for the rest.
func expTo32(dst, src []float32, m float32) float64 {
	if dst != nil {
		dst = dst[:len(src)]
	}
	s, done := vecmath.Exp(dst, src, m)
	if dst != nil {
		dst = dst[done:]
	}
	return s + expScalar32(dst, src[done:], m)
}

// expScalar32 is expTo32's scalar loop: all of it off amd64 or without AVX2, and on amd64 the tail
// and any block whose x - m is too large for the vector body. expf's body is inlined, and rounding
// to the nearest integer uses the 1.5·2^23 trick instead of a conversion.
func expScalar32(dst, src []float32, m float32) float64 {
	const (
		lo    = -87.33654
		hi    = 88.72283
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
		magic = 12582912 // 1.5·2^23: adding it rounds a float32 below 2^22 to an integer
	)
	store := dst != nil
	var s float64
	for j, v := range src {
		x := v - m
		var e float32
		switch {
		case x < lo:
			e = 0
		case x > hi:
			e = float32(math.Inf(1))
		default:
			t := x*log2e + magic
			fn := t - magic
			n := int32(math.Float32bits(t)) - int32(math.Float32bits(magic))
			x = x - fn*c1 - fn*c2
			z := x * x
			y := ((((1.9875691500e-4*x+1.3981999507e-3)*x+8.3334519073e-3)*x+4.1665795894e-2)*x+1.6666665459e-1)*x + 5.0000001201e-1
			y = y*z + x + 1
			if n > 127 {
				e = 2 * y * math.Float32frombits(uint32(n+126)<<23)
			} else {
				e = y * math.Float32frombits(uint32(n+127)<<23)
			}
		}
		if store {
			dst[j] = e
		}
		s += float64(e)
	}
	return s
}

// sigmoid is 1/(1+exp(-x)) without overflow.
func sigmoid[T Float](x T) T {
	if x >= 0 {
		return 1 / (1 + exp(-x))
	}
	e := exp(x)
	return e / (1 + e)
}

// Cause digs the op's own error out of Gorgonia's wrapping (pkg/errors causes and the VM's
// contextual error), so that callers can report the one line that names the problem.
func Cause(err error) error {
	for err != nil {
		switch e := err.(type) {
		case interface{ Cause() error }:
			if c := e.Cause(); c != nil && c != err {
				err = c
				continue
			}
		case interface{ Err() error }:
			if c := e.Err(); c != nil && c != err {
				err = c
				continue
			}
		}
		if c := errors.Unwrap(err); c != nil {
			err = c
			continue
		}
		return err
	}
	return nil
}
