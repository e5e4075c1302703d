package hf

import (
	"fmt"
	"math"
	"strings"
)

// dtype is a safetensors element type this package can read or write.
type dtype string

const (
	dtF32  dtype = "F32"
	dtF16  dtype = "F16"
	dtBF16 dtype = "BF16"
)

// size is the element size in bytes.
func (d dtype) size() int64 {
	if d == dtF32 {
		return 4
	}
	return 2
}

// torchName is the torch_dtype string transformers writes into config.json for this dtype.
func (d dtype) torchName() string {
	switch d {
	case dtF16:
		return "float16"
	case dtBF16:
		return "bfloat16"
	}
	return "float32"
}

// knownDtype reports whether a header's dtype string is one we can decode.
func knownDtype(s string) (dtype, bool) {
	switch dtype(s) {
	case dtF32, dtF16, dtBF16:
		return dtype(s), true
	}
	return "", false
}

// parseDtype maps the user-facing names ("f32", "bf16", "f16", also the torch spellings and the
// safetensors spellings) to a dtype; "" means F32.
func parseDtype(s string) (dtype, error) {
	switch strings.ToLower(s) {
	case "", "f32", "float32", "fp32":
		return dtF32, nil
	case "bf16", "bfloat16":
		return dtBF16, nil
	case "f16", "float16", "fp16", "half":
		return dtF16, nil
	}
	return "", fmt.Errorf("unknown dtype %q (want f32, bf16 or f16)", s)
}

// BF16ToF32 widens bfloat16 bits: bfloat16 is the top half of a float32, so this is exact. It and
// F16ToF32/F32ToF16 are exported for model/gguf, which stores the same formats.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// f32ToBF16 rounds to nearest, ties to even, as torch does. NaNs stay NaN (a quiet NaN with the sign
// kept); finite values beyond bfloat16's range become ±Inf, which the caller treats as an error.
func f32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 { // NaN: truncating could clear every mantissa bit and make it Inf
		return uint16(u>>16) | 0x0040
	}
	// Adding 0x7fff plus the lowest kept bit rounds the dropped half to nearest, ties to even.
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// F16ToF32 widens IEEE binary16 bits exactly.
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN: keep the payload's top bits
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias 15 -> 127
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: mant × 2^-24, exactly representable as a float32.
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// F32ToF16 rounds to the nearest binary16, ties to even, including into the subnormal range, as
// torch's .half() does. NaNs stay NaN (payload's top bits kept); finite values of magnitude >= 65520
// become ±Inf, which WriteSafetensors treats as an error.
func F32ToF16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	exp := int(u>>23) & 0xff
	mant := u & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // the binary16 biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal result: the value is m × 2^(e-14-10) with m the 24-bit significand, i.e.
		// (m >> (14-e)) units of 2^-24 plus a remainder to round.
		if e < -10 { // below 2^-25, half the smallest subnormal: rounds to zero
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		return sign | uint16(roundShift(m, shift))
	}
	// Normal result: keep 10 of 23 mantissa bits; a carry out of the mantissa correctly bumps the
	// exponent (and 0x7bff rounding up becomes 0x7c00, Inf).
	return sign | uint16(roundShift(uint32(e)<<23|mant, 13))
}

// roundShift returns v >> shift rounded to nearest, ties to even.
func roundShift(v uint32, shift uint) uint32 {
	q := v >> shift
	rem := v & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}
