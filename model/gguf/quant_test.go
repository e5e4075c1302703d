package gguf

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/hf"
)

// TestF16Rounding checks f32 -> f16 on hand-derived cases. binary16 has 10 mantissa bits: near 1 the
// spacing is 2^-10, subnormals are multiples of 2^-24, the largest finite value is 65504 and 65520 is the
// halfway point to the next (infinite) step. Ties go to the even mantissa, as numpy and ggml do.
func TestF16Rounding(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{0.1, 0x2e66},     // 0.0999755859375 is nearest
		{1.0 / 3, 0x3555}, // 0.333251953125
		{65504, 0x7bff},   // largest finite
		{65519, 0x7bff},   // below the halfway point
		{65520, 0x7c00},   // halfway: the even neighbour is the overflow to Inf
		{1e6, 0x7c00},     // overflow
		{float32(math.Inf(-1)), 0xfc00},
		{float32(math.NaN()), 0x7e00},
		{0x1p-14, 0x0400},               // smallest normal
		{0x1p-24, 0x0001},               // smallest subnormal
		{0x1p-25, 0x0000},               // halfway between 0 and 2^-24: even is 0
		{0x3p-25, 0x0002},               // 1.5 * 2^-24: halfway between 1 and 2, even is 2
		{0x5p-25, 0x0002},               // 2.5 * 2^-24: halfway between 2 and 3, even is 2
		{1023.5 * 0x1p-24, 0x0400},      // halfway between the largest subnormal and the smallest normal
		{1 + 0x1p-11, 0x3c00},           // halfway between 1 and 1+2^-10: even is 1
		{1 + 0x3p-11, 0x3c02},           // halfway between 0x3c01 and 0x3c02: even is 0x3c02
		{1 + 0x1p-11 + 0x1p-20, 0x3c01}, // just above halfway rounds up
		{-0x1p-26, 0x8000},              // underflow keeps the sign
	}
	for _, c := range cases {
		if got := f32ToF16(c.in); got != c.want {
			t.Errorf("f32ToF16(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	// Every finite or infinite half value survives f16 -> f32 -> f16, and NaNs stay NaN.
	for h := 0; h < 1<<16; h++ {
		f := hf.F16ToF32(uint16(h))
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("hf.F16ToF32(%#04x) = %g, want NaN", h, f)
			}
			continue
		}
		if back := f32ToF16(f); back != uint16(h) {
			t.Fatalf("f16 %#04x -> %g -> %#04x", h, f, back)
		}
	}
}

// TestQ8_0Block checks llama.cpp's q8_0 on hand-derived blocks (quantize_row_q8_0_ref: d = amax/127,
// q = roundf(x/d) with ties away from zero, d stored as fp16).
func TestQ8_0Block(t *testing.T) {
	// Block 0: amax = 127/128, so d = 2^-7 exactly (fp16 0x2000) and 1/d = 128; every q is x*128
	// rounded. 0.5/128 -> 0.5 -> 1 and -0.5/128 -> -1 (roundf: ties away from zero; round-to-even
	// would give 0), 1.5/128 -> 2, 0.1*128 = 12.8 -> 13.
	// Block 1: all zeros -> d = 0, q = 0 (no division by zero).
	// Block 2: amax = 1, d = 1/127 = 0.0078740157, whose fp16 is 0x2008 = 2^-7 + 8*2^-17 =
	// 0.00787353515625; the q are computed with the float32 d (1 -> 127, -0.25 -> -31.75 -> -32), and
	// dequantising uses the fp16 d: 127 * 0.00787353515625 = 0.99993896484375.
	x := make([]float32, 96)
	copy(x[0:], []float32{127.0 / 128, -127.0 / 128, 0.5, 0.5 / 128, -0.5 / 128, 1.5 / 128, 0.1, 0})
	x[31] = -0.25
	x[64], x[65] = 1, -0.25
	b, err := encode(TypeQ8_0, x)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3*34 {
		t.Fatalf("3 blocks encode to %d bytes, want 102", len(b))
	}
	want := []struct {
		block int
		d     uint16
		q     map[int]int8
	}{
		{0, 0x2000, map[int]int8{0: 127, 1: -127, 2: 64, 3: 1, 4: -1, 5: 2, 6: 13, 7: 0, 31: -32}},
		{1, 0x0000, map[int]int8{0: 0, 31: 0}},
		{2, 0x2008, map[int]int8{0: 127, 1: -32, 2: 0}},
	}
	for _, w := range want {
		blk := b[w.block*34 : (w.block+1)*34]
		if d := binary.LittleEndian.Uint16(blk); d != w.d {
			t.Errorf("block %d: d = %#04x, want %#04x", w.block, d, w.d)
		}
		for j, q := range w.q {
			if got := int8(blk[2+j]); got != q {
				t.Errorf("block %d: q[%d] = %d, want %d", w.block, j, got, q)
			}
		}
	}
	back := make([]float32, 96)
	if err := decode(TypeQ8_0, back, b); err != nil {
		t.Fatal(err)
	}
	for i, w := range map[int]float32{0: 127.0 / 128, 3: 1.0 / 128, 4: -1.0 / 128, 6: 13.0 / 128, 64: 0.99993896484375, 65: -32 * 0.00787353515625} {
		if back[i] != w {
			t.Errorf("dequantised[%d] = %v, want %v", i, back[i], w)
		}
	}
	// On random data, q8_0's error is at most half a step, d/2, per value (plus d's fp16 rounding).
	rng := rand.New(rand.NewPCG(1, 2))
	r := make([]float32, 32*64)
	for i := range r {
		r[i] = float32(rng.NormFloat64())
	}
	rb, _ := encode(TypeQ8_0, r)
	rback := make([]float32, len(r))
	if err := decode(TypeQ8_0, rback, rb); err != nil {
		t.Fatal(err)
	}
	for blk := 0; blk < 64; blk++ {
		var amax float64
		for _, v := range r[blk*32 : (blk+1)*32] {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		bound := amax/127/2 + amax*0x1p-11 // half a step + fp16's relative error on d, times |q| <= 127
		for j := blk * 32; j < (blk+1)*32; j++ {
			if e := math.Abs(float64(rback[j] - r[j])); e > bound {
				t.Fatalf("value %d: error %g exceeds %g", j, e, bound)
			}
		}
	}
}

// TestDtypeRoundTrip writes the Mixtral-shaped model as f16 and q8_0 and checks each tensor's type and
// values against the rules in the package doc: 1-D tensors and the router F32 (exact), matrices F16
// (exactly the f16-rounded values) or Q8_0 (exactly quantise-then-dequantise); the GQA model's ffn_down
// has 80-wide rows, which do not split into 32-value blocks, so q8_0 falls back to F16 there.
func TestDtypeRoundTrip(t *testing.T) {
	for _, dtype := range []string{"f16", "q8_0"} {
		for _, cfg := range []model.Config{mixtralConfig(), gqaConfig()} {
			t.Run(dtype+"/"+cfg.ModelType, func(t *testing.T) {
				want := randomWeights(t, cfg, 5, 0.2)
				out := filepath.Join(t.TempDir(), "m.gguf")
				if err := Write(out, want, syntheticTokenizer(cfg.VocabSize), WriteOptions{Dtype: dtype}); err != nil {
					t.Fatal(err)
				}
				f, err := Open(out)
				if err != nil {
					t.Fatal(err)
				}
				wantFT := map[string]uint32{"f16": 1, "q8_0": 7}[dtype]
				if ft, _, _ := f.Uint("general.file_type"); ft != uint64(wantFT) {
					t.Errorf("general.file_type = %d, want %d", ft, wantFT)
				}
				for _, ti := range f.Tensors {
					want := TypeF16
					switch {
					case len(ti.Dims) == 1 || filepath.Ext(trimWeight(ti.Name)) == ".ffn_gate_inp":
						want = TypeF32
					case dtype == "q8_0" && ti.Dims[0]%32 == 0:
						want = TypeQ8_0
					}
					if ti.Type != want {
						t.Errorf("%s %v: type %s, want %s", ti.Name, ti.Dims, ti.Type, want)
					}
				}
				if dtype == "q8_0" && cfg.ModelType == "llama" {
					if ti, _ := f.Tensor("blk.0.ffn_down.weight"); ti.Type != TypeF16 {
						t.Errorf("80-wide rows: type %s, want the F16 fallback", ti.Type)
					}
				}
				got, _, err := LoadWeights(out)
				if err != nil {
					t.Fatal(err)
				}
				// Expected values: the HF tensor pushed through the same permutation and codec.
				ref := &model.Weights{Config: want.Config, Tensors: map[string]*model.Tensor{}}
				for _, ot := range modelTensors(want) {
					typ := tensorType(dtype, ot.name, ot.dims)
					b, err := encode(typ, ot.data)
					if err != nil {
						t.Fatal(err)
					}
					dec := make([]float32, len(ot.data))
					if err := decode(typ, dec, b); err != nil {
						t.Fatal(err)
					}
					ref.Tensors[ot.name] = &model.Tensor{Data: dec}
				}
				for _, ot := range modelTensors(got) {
					if i := bitsEqual(&model.Tensor{Data: ot.data}, ref.Tensors[ot.name]); i >= 0 {
						t.Fatalf("%s: element %d is %v, want %v", ot.name, i, ot.data[i], ref.Tensors[ot.name].Data[i])
					}
				}
			})
		}
	}
}

func trimWeight(name string) string {
	return name[:len(name)-len(".weight")]
}
