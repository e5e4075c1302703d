package quant

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/alignkit/alignkit/model/blas"
	"github.com/alignkit/alignkit/model/ops"
)

// Matrix is a frozen (out, in) linear weight held in one storage format: row r is the bytes
// data[r·rowBytes : (r+1)·rowBytes], ceil(in/block) blocks, exactly as ggml lays out a GGUF tensor
// (whose rows never need padding; a quantised row here may end in a zero-padded block). F32 keeps the
// float32 slice itself. It implements [ops.Frozen]; it is immutable and safe for concurrent use.
type Matrix struct {
	format   Format
	out, in  int
	rowBytes int
	data     []byte    // (out, rowBytes); nil for F32
	dense    []float32 // (out, in); F32 only
}

var _ ops.Frozen = (*Matrix)(nil)

// FromBlocks wraps encoded rows, as a GGUF tensor stores them, without copying: data must hold exactly
// out rows of in values in format f, and in must be a whole number of blocks. The caller must not
// modify data afterwards.
func FromBlocks(f Format, out, in int, data []byte) (*Matrix, error) {
	if !f.valid() {
		return nil, fmt.Errorf("unknown storage format %d", int(f))
	}
	if out <= 0 || in <= 0 {
		return nil, fmt.Errorf("%s matrix of shape (%d, %d): dimensions must be positive", f, out, in)
	}
	if in%f.BlockSize() != 0 {
		return nil, fmt.Errorf("%s matrix of shape (%d, %d): rows of %d values are not whole blocks of %d", f, out, in, in, f.BlockSize())
	}
	m := &Matrix{format: f, out: out, in: in, rowBytes: f.RowBytes(in)}
	if want := int64(out) * int64(m.rowBytes); int64(len(data)) != want {
		return nil, fmt.Errorf("%s matrix of shape (%d, %d) needs %d bytes, got %d", f, out, in, want, len(data))
	}
	if f == F32 {
		m.dense = make([]float32, out*in)
		decodeF32(m.dense, data)
		return m, nil
	}
	m.data = data
	return m, nil
}

// New encodes the (out, in) float32 matrix w in format f (F32 keeps w itself, uncopied). Values must
// be finite; a row whose length is not a multiple of the block size ends in a zero-padded block.
func New(f Format, out, in int, w []float32) (*Matrix, error) {
	if !f.CanEncode() {
		return nil, fmt.Errorf("cannot encode %s (encodable: F32, BF16, F16, Q8_0, NF4)", f)
	}
	if out <= 0 || in <= 0 || len(w) != out*in {
		return nil, fmt.Errorf("%d values for a matrix of shape (%d, %d)", len(w), out, in)
	}
	for i, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("value at (%d, %d) is %v: only finite weights can be stored", i/in, i%in, v)
		}
	}
	m := &Matrix{format: f, out: out, in: in, rowBytes: f.RowBytes(in)}
	if f == F32 {
		m.dense = w
		return m, nil
	}
	tr := formats[f]
	m.data = make([]byte, out*m.rowBytes)
	padded := (in + tr.block - 1) / tr.block * tr.block
	tmp := make([]float32, padded)
	for r := 0; r < out; r++ {
		copy(tmp, w[r*in:(r+1)*in]) // the pad stays zero
		tr.encode(m.data[r*m.rowBytes:(r+1)*m.rowBytes], tmp)
	}
	return m, nil
}

// Format is the storage format.
func (m *Matrix) Format() Format { return m.format }

// Shape is (out, in).
func (m *Matrix) Shape() (out, in int) { return m.out, m.in }

// Bytes is the memory the matrix holds (its encoded rows).
func (m *Matrix) Bytes() int64 {
	if m.format == F32 {
		return int64(len(m.dense)) * 4
	}
	return int64(len(m.data))
}

// Raw is the encoded rows (out·RowBytes(in) bytes; nil for F32), for writers. Do not modify it.
func (m *Matrix) Raw() []byte { return m.data }

// Dequantize decodes rows [r0, r1) into dst ((r1-r0), in).
func (m *Matrix) Dequantize(dst []float32, r0, r1 int) {
	for r := r0; r < r1; r++ {
		m.decodeRow(dst[(r-r0)*m.in:(r-r0+1)*m.in], r, 0, m.in)
	}
}

// decodeRow decodes values [c0, c1) of row r into dst (c1-c0); c0 is a multiple of the block size.
// A partial last block (padding, or c1 inside it) is decoded through a block-sized stack buffer.
func (m *Matrix) decodeRow(dst []float32, r, c0, c1 int) {
	if m.format == F32 {
		copy(dst, m.dense[r*m.in+c0:r*m.in+c1])
		return
	}
	tr := formats[m.format]
	row := m.data[r*m.rowBytes : (r+1)*m.rowBytes]
	b0 := c0 / tr.block
	full := (c1 - c0) / tr.block
	tr.decode(dst[:full*tr.block], row[b0*tr.bytes:(b0+full)*tr.bytes])
	if rest := c1 - c0 - full*tr.block; rest > 0 {
		var buf [256]float32 // the largest block
		b := b0 + full
		tr.decode(buf[:tr.block], row[b*tr.bytes:(b+1)*tr.bytes])
		copy(dst[full*tr.block:], buf[:rest])
	}
}

// Tiling: products dequantise tileRows rows at a time into a per-worker scratch buffer (tileRows·in
// float32) and hand the tile to BLAS, so no float32 copy of the whole matrix ever exists. 64 rows of a
// 4096-wide matrix are 1 MiB, which stays in L2 between the decode and the sgemm that reads it.
const tileRows = 64

// tileFloats bounds a worker's decode tile in a batch product (n > dotRows): 4 Mi float32, 16 MiB.
// With 64-row tiles OpenBLAS repacked the whole input for every 64 output columns (and MulAdd's
// sgemm had k = 64), which cost about half of a 1024-token product's time on Llama-3.2-1B's shapes;
// batch products take as many rows as fit, up to an even share of the matrix per worker.
const tileFloats = 4 << 20

// batchRows is how many of out rows (each of width floats) a batch product decodes per tile.
func batchRows(out, width, workers int) int {
	share := (out + workers - 1) / workers
	return max(1, min(out, max(tileRows, min(share, tileFloats/max(1, width)))))
}

// dotRows is the batch size up to which MulT works one row of W at a time (fused kernels for n = 1,
// decode-then-dot otherwise): sgemm's packing costs more than it saves there.
const dotRows = 4

// scratchPool holds per-worker decode buffers between calls, so that decoding steps do not allocate.
var scratchPool = sync.Pool{New: func() any { return new([]float32) }}

func getScratch(n int) *[]float32 {
	p := scratchPool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// fanOut runs fn(task) for task in [0, tasks) on up to GOMAXPROCS goroutines, handing tasks out one at a
// time; fn gets its worker's scratch of scratchLen float32. With OpenBLAS it holds ops.SerialBLAS, so
// each sgemm runs on its caller's thread and the workers are the parallelism, as in model/ops.
func fanOut(tasks, scratchLen int, fn func(task int, scratch []float32)) {
	release := ops.SerialBLAS()
	defer release()
	nw := min(runtime.GOMAXPROCS(0), tasks)
	var next atomic.Int64
	loop := func() {
		s := getScratch(scratchLen)
		defer scratchPool.Put(s)
		for {
			t := int(next.Add(1) - 1)
			if t >= tasks {
				return
			}
			fn(t, *s)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < nw; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop()
		}()
	}
	loop()
	wg.Wait()
}

// minParallel is the number of multiply-adds below which a product runs on the calling goroutine.
const minParallel = 1 << 15

// MulT sets y (n, out) = x (n, in) · Wᵀ.
func (m *Matrix) MulT(y, x []float32, n int) {
	out, in := m.out, m.in
	x, y = x[:n*in], y[:n*out]
	bl := blas.Impl()
	if m.format == F32 {
		m.denseMulT(bl, y, x, n)
		return
	}
	if n <= dotRows {
		// Small batches go row by row: the fused kernels for one input row, otherwise a row decoded into
		// an in-length buffer (L1/L2 resident) and n dot products with it.
		rowsPer := max(1, (out+4*runtime.GOMAXPROCS(0)-1)/(4*runtime.GOMAXPROCS(0)))
		if out*in*n < minParallel {
			rowsPer = out
		}
		tasks := (out + rowsPer - 1) / rowsPer
		if fd := fusedDot[m.format]; n == 1 && fd != nil && in%m.format.BlockSize() == 0 {
			fanOut(tasks, 0, func(t int, _ []float32) {
				for r := t * rowsPer; r < min(out, (t+1)*rowsPer); r++ {
					y[r] = fd(m.data[r*m.rowBytes:(r+1)*m.rowBytes], x)
				}
			})
			return
		}
		fanOut(tasks, in, func(t int, row []float32) {
			for r := t * rowsPer; r < min(out, (t+1)*rowsPer); r++ {
				m.decodeRow(row, r, 0, in)
				for i := 0; i < n; i++ {
					y[i*out+r] = dot(x[i*in:(i+1)*in], row)
				}
			}
		})
		return
	}
	per := batchRows(out, in, runtime.GOMAXPROCS(0))
	tasks := (out + per - 1) / per
	fanOut(tasks, per*in, func(t int, tile []float32) {
		r0 := t * per
		rows := min(per, out-r0)
		m.Dequantize(tile, r0, r0+rows)
		gemm(bl, gblas.Trans, n, rows, in, x, in, tile[:rows*in], in, 0, y[r0:], out)
	})
}

// denseMulT is MulT for F32 storage: sgemm over blocks of output columns, one per worker.
func (m *Matrix) denseMulT(bl blas.Implementation, y, x []float32, n int) {
	out, in := m.out, m.in
	cols := max(tileRows, (out+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0))
	if n*out*in < minParallel {
		cols = out
	}
	tasks := (out + cols - 1) / cols
	fanOut(tasks, 0, func(t int, _ []float32) {
		c0 := t * cols
		c := min(cols, out-c0)
		if n == 1 {
			// sgemv streams the rows once; OpenBLAS's sgemm would pack them first (as in model/infer).
			bl.Sgemv(gblas.NoTrans, c, in, 1, m.dense[c0*in:(c0+c)*in], in, x, 1, 0, y[c0:c0+c], 1)
			return
		}
		gemm(bl, gblas.Trans, n, c, in, x, in, m.dense[c0*in:(c0+c)*in], in, 0, y[c0:], out)
	})
}

// MulAdd adds dy (n, out) · W to dx (n, in). The work is split over column ranges of dx (whole blocks
// of the rows), so workers never write the same element and each block is decoded once: a worker
// decodes its columns of tileRows rows at a time and adds dy[:, rows] · tile with sgemm.
func (m *Matrix) MulAdd(dx, dy []float32, n int) {
	out, in := m.out, m.in
	dx, dy = dx[:n*in], dy[:n*out]
	bl := blas.Impl()
	block := m.format.BlockSize()
	nblocks := (in + block - 1) / block
	chunks := min(nblocks, runtime.GOMAXPROCS(0))
	if n*out*in < minParallel {
		chunks = 1
	}
	per := (nblocks + chunks - 1) / chunks
	tasks := (nblocks + per - 1) / per
	width := per * block
	step := tileRows
	if n > dotRows {
		step = batchRows(out, width, 1)
	}
	fanOut(tasks, step*width, func(t int, tile []float32) {
		c0 := t * width
		c1 := min(in, c0+width)
		w := c1 - c0
		for r0 := 0; r0 < out; r0 += step {
			rows := min(step, out-r0)
			if m.format == F32 {
				gemm(bl, gblas.NoTrans, n, w, rows, dy[r0:], out, m.dense[r0*in+c0:], in, 1, dx[c0:], in)
				continue
			}
			for r := 0; r < rows; r++ {
				m.decodeRow(tile[r*w:(r+1)*w], r0+r, c0, c1)
			}
			gemm(bl, gblas.NoTrans, n, w, rows, dy[r0:], out, tile[:rows*w], w, 1, dx[c0:], in)
		}
	})
}

// gemm sets C (m, n) = A (m, k) · op(B) + beta·C, op(B) being B (n, k) transposed (tB = Trans) or B (k, n).
// gonum's Sgemm starts a goroutine per 64×64 block once a product has four of them; the workers here are
// already the parallelism, so with gonum the product is cut into serial tiles of at most 64×192, as
// model/ops does. OpenBLAS (serial under SerialBLAS) gets the whole product.
func gemm(bl blas.Implementation, tB gblas.Transpose, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if _, pureGo := bl.(gonum.Implementation); !pureGo {
		bl.Sgemm(gblas.NoTrans, tB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
		return
	}
	const tm, tn = 64, 192
	for i0 := 0; i0 < m; i0 += tm {
		bm := min(tm, m-i0)
		for j0 := 0; j0 < n; j0 += tn {
			bn := min(tn, n-j0)
			bj := b[j0:]
			if tB == gblas.Trans {
				bj = b[j0*ldb:]
			}
			bl.Sgemm(gblas.NoTrans, tB, bm, bn, k, 1, a[i0*lda:], lda, bj, ldb, beta, c[i0*ldc+j0:], ldc)
		}
	}
}

// dot is gonum's assembly float32 dot product (no cgo call per row, unlike OpenBLAS's sdot).
func dot(a, b []float32) float32 { return gonum.Implementation{}.Sdot(len(a), a, 1, b, 1) }
