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
	Q4_0: dotQ4_0,
	Q4_K: dotQ4_K,
	Q6_K: dotQ6_K,
	NF4:  dotNF4,
	F32:  nil, // the dense matrix goes to BLAS
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

func dotQ4_0(row []byte, x []float32) float32 {
	var sum float32
	for b := 0; b < len(x)/32; b++ {
		blk := row[b*18 : b*18+18]
		q, lo, hi := blk[2:18], x[b*32:b*32+16], x[b*32+16:b*32+32]
		var a0, a1, a2, a3 float32
		for j := 0; j < 16; j += 2 {
			a0 += float32(int(q[j]&0x0f)-8) * lo[j]
			a1 += float32(int(q[j]>>4)-8) * hi[j]
			a2 += float32(int(q[j+1]&0x0f)-8) * lo[j+1]
			a3 += float32(int(q[j+1]>>4)-8) * hi[j+1]
		}
		sum += f16(blk) * ((a0 + a1) + (a2 + a3))
	}
	return sum
}

// dotQ4_K uses y = d·sc·q - dmin·m per sub-block of 32: Σ y·x = d·sc·Σ q·x - dmin·m·Σ x.
func dotQ4_K(row []byte, x []float32) float32 {
	var sum float32
	for b := 0; b < len(x)/256; b++ {
		blk := row[b*144 : b*144+144]
		d, dmin := f16(blk[0:]), f16(blk[2:])
		scales, qs := blk[4:16], blk[16:144]
		xb := x[b*256 : b*256+256]
		for j := 0; j < 4; j++ {
			q := qs[32*j : 32*j+32]
			xl, xh := xb[64*j:64*j+32], xb[64*j+32:64*j+64]
			var ql0, ql1, qh0, qh1, sl, sh float32
			for l := 0; l < 32; l += 2 {
				ql0 += float32(q[l]&0x0f) * xl[l]
				ql1 += float32(q[l+1]&0x0f) * xl[l+1]
				qh0 += float32(q[l]>>4) * xh[l]
				qh1 += float32(q[l+1]>>4) * xh[l+1]
				sl += xl[l] + xl[l+1]
				sh += xh[l] + xh[l+1]
			}
			sc, m := scaleMinK4(2*j, scales)
			sum += d*float32(sc)*(ql0+ql1) - dmin*float32(m)*sl
			sc, m = scaleMinK4(2*j+1, scales)
			sum += d*float32(sc)*(qh0+qh1) - dmin*float32(m)*sh
		}
	}
	return sum
}

// dotQ6_K sums q·x over each 16 values that share a scale, then scales: Σ y·x = d·Σ_s sc_s·Σ q·x.
func dotQ6_K(row []byte, x []float32) float32 {
	var sum float32
	for b := 0; b < len(x)/256; b++ {
		blk := row[b*210 : b*210+210]
		d := f16(blk[208:])
		for half := 0; half < 2; half++ {
			ql := blk[64*half : 64*half+64]
			qh := blk[128+32*half : 128+32*half+32]
			sc := blk[192+8*half : 192+8*half+8]
			xs := x[b*256+128*half : b*256+128*half+128]
			var acc float32
			for is := 0; is < 2; is++ {
				var a1, a2, a3, a4 float32
				for l := 16 * is; l < 16*is+16; l++ {
					a1 += float32(int(ql[l]&0x0f|(qh[l]&3)<<4)-32) * xs[l]
					a2 += float32(int(ql[l+32]&0x0f|(qh[l]>>2&3)<<4)-32) * xs[l+32]
					a3 += float32(int(ql[l]>>4|(qh[l]>>4&3)<<4)-32) * xs[l+64]
					a4 += float32(int(ql[l+32]>>4|(qh[l]>>6&3)<<4)-32) * xs[l+96]
				}
				acc += float32(int8(sc[is]))*a1 + float32(int8(sc[is+2]))*a2 + float32(int8(sc[is+4]))*a3 + float32(int8(sc[is+6]))*a4
			}
			sum += d * acc
		}
	}
	return sum
}
