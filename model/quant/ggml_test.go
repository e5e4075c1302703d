package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/hf"
)

// ggmlCodec runs conformance/llamacpp/ggml_codec.py, which calls ggml's own C code in node-llama-cpp's
// libggml-base.so, or skips the test when python3 or the npm install is missing.
func ggmlCodec(t *testing.T) func(kind string, in []byte, count int) []byte {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("ggml comparison skipped: python3 is not on PATH")
	}
	dir := filepath.Join(sharedtest.RepoRoot(t), "conformance", "llamacpp")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@node-llama-cpp")); err != nil {
		t.Skipf("ggml comparison skipped: %s/node_modules is missing; run `npm ci --omit=optional` there to enable it", dir)
	}
	tmp := t.TempDir()
	return func(kind string, in []byte, count int) []byte {
		t.Helper()
		src, dst := filepath.Join(tmp, "in"), filepath.Join(tmp, "out")
		if err := os.WriteFile(src, in, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(python, filepath.Join(dir, "ggml_codec.py"), kind, src, dst, fmt.Sprint(count))
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ggml_codec.py %s: %v: %s", kind, err, msg)
		}
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	encodeF32(b, x)
	return b
}

func bytesF32(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	decodeF32(x, b)
	return x
}

// weightLike is rows of Gaussian values whose scale changes every 32 values (so block scales differ), with
// outliers, an all-zero block and a block of tiny values.
func weightLike(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for b := 0; b < n/32; b++ {
		scale := math.Exp(rng.NormFloat64() * 1.5)
		if b == 3 {
			scale = 0
		}
		if b == 5 {
			scale = 1e-6
		}
		for j := 0; j < 32; j++ {
			x[b*32+j] = float32(rng.NormFloat64() * scale)
		}
		if b%7 == 1 {
			x[b*32+rng.IntN(32)] *= 20
		}
	}
	return x
}

// randomBlocks is nb blocks of random bytes with the fp16 scales (at the offsets in scales) replaced by
// random finite values, so that every bit of the packed quants and sub-block scales is exercised.
func randomBlocks(rng *rand.Rand, f Format, nb int, scales ...int) []byte {
	b := make([]byte, nb*f.BlockBytes())
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	for k := 0; k < nb; k++ {
		for _, off := range scales {
			binary.LittleEndian.PutUint16(b[k*f.BlockBytes()+off:], hf.F32ToF16(float32(rng.NormFloat64()*0.01)))
		}
	}
	return b
}

// TestDecodeMatchesGGML decodes the same blocks with this package and with ggml-quants.c's
// dequantize_row_* (and ggml's fp16/bf16 row converters) and requires bit-identical float32. The blocks are
// ggml's own quantisation of weight-like data (quantize_row_*_ref through ggml_quantize_chunk) and random
// bytes, which reach every sub-block scale and min bit pattern of Q4_K and Q6_K (negative int8 scales
// included). Where this package also encodes (BF16, F16, Q8_0) its bytes must equal ggml's.
func TestDecodeMatchesGGML(t *testing.T) {
	codec := ggmlCodec(t)
	cases := []struct {
		f      Format
		kind   string
		scales []int // fp16 fields of a block
	}{
		{F16, "f16", nil},
		{BF16, "bf16", nil},
		{Q8_0, "q8_0", []int{0}},
		{Q4_0, "q4_0", []int{0}},
		{Q4_K, "q4_k", []int{0, 2}},
		{Q6_K, "q6_k", []int{208}},
	}
	rng := rand.New(rand.NewPCG(7, 8))
	const perRow, rows = 512, 16
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			x := weightLike(rng, perRow*rows)
			blocks := codec(c.kind, f32Bytes(x), perRow)
			if c.f.CanEncode() {
				ours := make([]byte, len(blocks))
				formats[c.f].encode(ours, x)
				if i := firstDiff(ours, blocks); i >= 0 {
					t.Fatalf("encoding differs from ggml's first at byte %d: %#02x, ggml %#02x", i, ours[i], blocks[i])
				}
			}
			// ggml's blocks, then (for the block formats) random ones, decoded in one call.
			in := blocks
			if c.scales != nil {
				in = append(append([]byte(nil), blocks...), randomBlocks(rng, c.f, 64, c.scales...)...)
			}
			n := len(in) / c.f.BlockBytes() * c.f.BlockSize()
			want := bytesF32(codec("dequant-"+c.kind, in, n))
			got := make([]float32, n)
			formats[c.f].decode(got, in)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("value %d of %d decodes to %v (%#08x), ggml %v (%#08x)", i, n, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
