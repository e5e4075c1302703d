package quant

import (
	"encoding/binary"
	"math"
)

// Fused decode-and-dot kernels for one input row (n = 1, a decoding step): each reads a row's blocks
// once and accumulates x·w without storing the decoded values, with four independent accumulators so the
// additions overlap. The block formats sum q·x over a block and scale once, as ggml's vec_dot does; the
// result differs from decode-then-dot only in float32 rounding. Each takes a row of whole blocks (len(x)
// a multiple of the block size); nil means the format has none and MulT decodes the row first.
var fusedDot = [...]func(row []byte, x []float32) float32{
	BF16: dotBF16,
	F16:  dotF16,
	Q8_0: dotQ8_0,
	Q4_0: nil,
	Q4_K: nil,
	Q6_K: nil,
	NF4:  dotNF4,
	F32:  nil,
}

func dotBF16(row []byte, x []float32) float32 {
	row = row[:2*len(x)]
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		r, xs := row[2*i:2*i+8], x[i:i+4]
		a0 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(r[0:]))<<16) * xs[0]
		a1 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(r[2:]))<<16) * xs[1]
		a2 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(r[4:]))<<16) * xs[2]
		a3 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(r[6:]))<<16) * xs[3]
	}
	for ; i < len(x); i++ {
		a0 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(row[2*i:]))<<16) * x[i]
	}
	return (a0 + a1) + (a2 + a3)
}

func dotF16(row []byte, x []float32) float32 {
	row = row[:2*len(x)]
	t := f16Table
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		r, xs := row[2*i:2*i+8], x[i:i+4]
		a0 += t[binary.LittleEndian.Uint16(r[0:])] * xs[0]
		a1 += t[binary.LittleEndian.Uint16(r[2:])] * xs[1]
		a2 += t[binary.LittleEndian.Uint16(r[4:])] * xs[2]
		a3 += t[binary.LittleEndian.Uint16(r[6:])] * xs[3]
	}
	for ; i < len(x); i++ {
		a0 += t[binary.LittleEndian.Uint16(row[2*i:])] * x[i]
	}
	return (a0 + a1) + (a2 + a3)
}

func dotQ8_0(row []byte, x []float32) float32 {
	var sum float32
	for b := 0; b < len(x)/32; b++ {
		blk := row[b*34 : b*34+34]
		q, xs := blk[2:34], x[b*32:b*32+32]
		var a0, a1, a2, a3 float32
		for j := 0; j < 32; j += 4 {
			a0 += float32(int8(q[j])) * xs[j]
			a1 += float32(int8(q[j+1])) * xs[j+1]
			a2 += float32(int8(q[j+2])) * xs[j+2]
			a3 += float32(int8(q[j+3])) * xs[j+3]
		}
		sum += f16(blk) * ((a0 + a1) + (a2 + a3))
	}
	return sum
}

func dotNF4(row []byte, x []float32) float32 {
	var sum float32
	for b := 0; b < len(x)/64; b++ {
		blk := row[b*36 : b*36+36]
		q, xs := blk[4:36], x[b*64:b*64+64]
		var a0, a1, a2, a3 float32
		for j := 0; j < 32; j += 2 {
			a0 += nf4Levels[q[j]>>4] * xs[2*j]
			a1 += nf4Levels[q[j]&0x0f] * xs[2*j+1]
			a2 += nf4Levels[q[j+1]>>4] * xs[2*j+2]
			a3 += nf4Levels[q[j+1]&0x0f] * xs[2*j+3]
		}
		sum += math.Float32frombits(binary.LittleEndian.Uint32(blk)) * ((a0 + a1) + (a2 + a3))
	}
	return sum
}
