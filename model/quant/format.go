package quant

import (
	"fmt"
	"strings"
)

// Format is how a frozen matrix stores its values.
type Format int

// The storage formats. Q4_0, Q4_K and Q6_K are read from GGUF files only (alignkit decodes them
// bit-exactly but does not encode them); the others can also be produced by [New] from float32.
const (
	F32  Format = iota // float32, the dense matrix itself
	BF16               // bfloat16: float32's top 16 bits, round-to-nearest-even
	F16                // IEEE binary16
	Q8_0               // ggml Q8_0: blocks of 32 int8 with an fp16 scale, 8.5 bits a value
	Q4_0               // ggml Q4_0: blocks of 32 4-bit values with an fp16 scale, 4.5 bits a value
	Q4_K               // ggml Q4_K: super-blocks of 256, 8 sub-blocks with 6-bit scales and mins, 4.5 bits
	Q6_K               // ggml Q6_K: super-blocks of 256, 16 sub-blocks with int8 scales, 6.5625 bits
	NF4                // QLoRA's 4-bit NormalFloat: blocks of 64 with a float32 absmax, 4.5 bits
)

// traits describe a format's block: block values are stored in bytes bytes and decoded by decode,
// which converts whole blocks (len(dst) a multiple of block, src exactly their bytes).
type traits struct {
	name         string
	block, bytes int
	decode       func(dst []float32, src []byte)
	encode       func(dst []byte, src []float32) // nil: decode only
}

var formats = [...]traits{
	F32:  {"F32", 1, 4, decodeF32, encodeF32},
	BF16: {"BF16", 1, 2, decodeBF16, encodeBF16},
	F16:  {"F16", 1, 2, decodeF16, encodeF16},
	Q8_0: {"Q8_0", 32, 34, decodeQ8_0, encodeQ8_0},
	Q4_0: {"Q4_0", 32, 18, decodeQ4_0, nil},
	Q4_K: {"Q4_K", 256, 144, decodeQ4_K, nil},
	Q6_K: {"Q6_K", 256, 210, decodeQ6_K, nil},
	NF4:  {"NF4", 64, 36, decodeNF4, encodeNF4},
}

func (f Format) valid() bool { return f >= 0 && int(f) < len(formats) }

// String is the format's name as ggml spells it ("Q8_0"), "NF4" for NF4.
func (f Format) String() string {
	if !f.valid() {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formats[f].name
}

// BlockSize is the number of values in one block (1 for the float formats).
func (f Format) BlockSize() int { return formats[f].block }

// BlockBytes is the encoded size of one block.
func (f Format) BlockBytes() int { return formats[f].bytes }

// CanEncode says whether [New] can produce the format from float32.
func (f Format) CanEncode() bool { return f.valid() && formats[f].encode != nil }

// RowBytes is the encoded size of one row of in values: whole blocks, the last one zero-padded when in
// is not a multiple of the block size.
func (f Format) RowBytes(in int) int {
	tr := formats[f]
	return (in + tr.block - 1) / tr.block * tr.bytes
}

// Formats lists every format, in the order of the constants.
func Formats() []Format {
	out := make([]Format, len(formats))
	for i := range out {
		out[i] = Format(i)
	}
	return out
}

// ParseFormat reads a format by name, case-insensitively ("q8_0", "nf4", "bf16").
func ParseFormat(s string) (Format, error) {
	names := make([]string, len(formats))
	for i, tr := range formats {
		if strings.EqualFold(s, tr.name) {
			return Format(i), nil
		}
		names[i] = strings.ToLower(tr.name)
	}
	return 0, fmt.Errorf("unknown storage format %q (supported: %s)", s, strings.Join(names, ", "))
}

// Decode converts whole blocks of format f to float32: len(dst) must be a multiple of the block size and
// src must hold exactly len(dst)/BlockSize blocks.
func (f Format) Decode(dst []float32, src []byte) error {
	if !f.valid() {
		return fmt.Errorf("unknown storage format %d", int(f))
	}
	tr := formats[f]
	if len(dst)%tr.block != 0 || len(src) != len(dst)/tr.block*tr.bytes {
		return fmt.Errorf("%s: %d bytes do not encode %d values", f, len(src), len(dst))
	}
	tr.decode(dst, src)
	return nil
}
