package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// f32ToF16 converts to IEEE binary16 with round-to-nearest-even, as numpy's astype(float16) (what
// convert_hf_to_gguf.py uses) and ggml's GGML_FP32_TO_FP16 do: overflow gives ±Inf, values below half the
// smallest subnormal give ±0, and any NaN becomes ggml's canonical quiet NaN 0x7e00.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // the binary16 biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal in binary16: the value in units of 2^-24, rounded to even. Multiplying by a power of
		// two is exact in float64; a result of 1024 is the smallest normal, whose bits are also 1024.
		v := math.RoundToEven(math.Abs(float64(f)) * (1 << 24))
		return sign | uint16(v)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry out of the mantissa bumps the exponent, and 0x7bff+1 is Inf, as it should be
	}
	return sign | uint16(h)
}

// f16ToF32 widens binary16 exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		// Subnormal (or zero): mant * 2^-24, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// bf16ToF32 widens bfloat16, the top half of a float32.
func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// q8Block is the number of values in one Q8_0 block (ggml's QK8_0).
const q8Block = 32

// quantizeQ8_0 encodes len(x) values (a multiple of 32) as llama.cpp's quantize_row_q8_0_ref does, block by
// block: d = max|x|/127 in float32, q = roundf(x * (1/d)) with ties away from zero, and d stored as fp16
// ahead of the 32 int8 values (34 bytes a block). An all-zero block gets d = 0 and q = 0.
func quantizeQ8_0(dst []byte, x []float32) {
	for b := 0; b < len(x)/q8Block; b++ {
		blk := x[b*q8Block : (b+1)*q8Block]
		out := dst[b*34 : (b+1)*34]
		var amax float32
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(out[0:2], f32ToF16(d))
		for j, v := range blk {
			out[2+j] = byte(int8(math.Round(float64(float32(v * id)))))
		}
	}
}

// dequantizeQ8_0 decodes Q8_0 blocks: x = fp16(d) * q.
func dequantizeQ8_0(dst []float32, src []byte) {
	for b := 0; b < len(dst)/q8Block; b++ {
		in := src[b*34 : (b+1)*34]
		d := f16ToF32(binary.LittleEndian.Uint16(in[0:2]))
		for j := 0; j < q8Block; j++ {
			dst[b*q8Block+j] = d * float32(int8(in[2+j]))
		}
	}
}

// encode converts float32 values into the bytes of a tensor of type t.
func encode(t GGMLType, x []float32) ([]byte, error) {
	switch t {
	case TypeF32:
		out := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
		return out, nil
	case TypeF16:
		out := make([]byte, 2*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint16(out[2*i:], f32ToF16(v))
		}
		return out, nil
	case TypeQ8_0:
		if len(x)%q8Block != 0 {
			return nil, fmt.Errorf("Q8_0 needs a multiple of %d values, got %d", q8Block, len(x))
		}
		out := make([]byte, len(x)/q8Block*34)
		quantizeQ8_0(out, x)
		return out, nil
	}
	return nil, fmt.Errorf("cannot encode ggml type %s", t)
}

// decode converts the bytes of a tensor of type t into float32 values; len(dst) is the element count and
// src must hold exactly its encoded size.
func decode(t GGMLType, dst []float32, src []byte) error {
	switch t {
	case TypeF32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case TypeF16:
		for i := range dst {
			dst[i] = f16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case TypeBF16:
		for i := range dst {
			dst[i] = bf16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case TypeQ8_0:
		dequantizeQ8_0(dst, src)
	default:
		return fmt.Errorf("type %s cannot be read (alignkit reads F32, F16, BF16 and Q8_0)", t)
	}
	return nil
}
