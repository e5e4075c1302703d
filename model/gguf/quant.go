package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/quant"
)

// f32ToF16 converts to IEEE binary16 with round-to-nearest-even, as numpy's astype(float16) (what
// convert_hf_to_gguf.py uses) and ggml's GGML_FP32_TO_FP16 do, through hf.F32ToF16, except that any NaN
// becomes ggml's canonical quiet NaN 0x7e00 (sign kept) where hf keeps the payload as torch does.
func f32ToF16(f float32) uint16 {
	h := hf.F32ToF16(f)
	if h&0x7fff > 0x7c00 {
		return h&0x8000 | 0x7e00
	}
	return h
}

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

// q4Block is the number of values in one Q4_0 block (ggml's QK4_0).
const q4Block = 32

// quantizeQ4_0 encodes len(x) values (a multiple of 32) as llama.cpp's quantize_row_q4_0_ref does, block
// by block: max is the value of largest magnitude (the first, on a tie), d = max/-8 in float32, and each
// value becomes q = min(15, (int8)(x·(1/d) + 8.5)), truncated toward zero as C's cast does; d is stored
// as fp16 ahead of 16 bytes holding value j in the low nibble of byte j and value j+16 in its high
// nibble (18 bytes a block). An all-zero block gets d = 0 and every q = 8.
func quantizeQ4_0(dst []byte, x []float32) {
	for b := 0; b < len(x)/q4Block; b++ {
		blk := x[b*q4Block : (b+1)*q4Block]
		out := dst[b*18 : (b+1)*18]
		var amax, mx float32
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); amax < a {
				amax, mx = a, v
			}
		}
		d := mx / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(out[0:2], f32ToF16(d))
		for j := 0; j < q4Block/2; j++ {
			q0 := min(15, uint8(int8(float32(blk[j]*id)+8.5)))
			q1 := min(15, uint8(int8(float32(blk[j+q4Block/2]*id)+8.5)))
			out[2+j] = q0 | q1<<4
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
	case TypeQ4_0:
		if len(x)%q4Block != 0 {
			return nil, fmt.Errorf("Q4_0 needs a multiple of %d values, got %d", q4Block, len(x))
		}
		out := make([]byte, len(x)/q4Block*18)
		quantizeQ4_0(out, x)
		return out, nil
	}
	return nil, fmt.Errorf("cannot encode ggml type %s", t)
}

// quantFormats are the ggml types alignkit reads, as model/quant storage formats: ReadTensor decodes them
// to float32 and LoadWeightsWith keeps them as they are for a frozen base.
var quantFormats = map[GGMLType]quant.Format{
	TypeF32: quant.F32, TypeF16: quant.F16, TypeBF16: quant.BF16, TypeQ8_0: quant.Q8_0,
	TypeQ4_0: quant.Q4_0, TypeQ4_K: quant.Q4_K, TypeQ6_K: quant.Q6_K,
}

// readableTypes lists quantFormats' types for error messages.
const readableTypes = "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K"

// quantFormat maps a tensor's type to its storage format, or says which types can be read.
func quantFormat(t GGMLType) (quant.Format, error) {
	f, ok := quantFormats[t]
	if !ok {
		return 0, fmt.Errorf("type %s cannot be read (alignkit reads %s)", t, readableTypes)
	}
	return f, nil
}

// decode converts the bytes of a tensor of type t into float32 values with model/quant's decoders, which
// are bit-exact with ggml's dequantize_row_*; len(dst) is the element count and src must hold exactly
// its encoded size.
func decode(t GGMLType, dst []float32, src []byte) error {
	f, err := quantFormat(t)
	if err != nil {
		return err
	}
	return f.Decode(dst, src)
}
