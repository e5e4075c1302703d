package quant

import (
	"encoding/binary"
	"math"

	"github.com/alignkit/alignkit/model/hf"
)

// Decoders follow ggml-quants.c's dequantize_row_* (llama.cpp, ggml/src/ggml-quants.c) operation for
// operation in float32, with no fused multiply-adds, so that the values are bit-identical to ggml's:
// the tests compare them with ggml's own functions from libggml-base.so.

// f16Table maps every binary16 bit pattern to its float32 value (256 KiB, built once, read-only), as
// ggml's table_f32_f16 does: a load instead of bit surgery in the decode loops.
var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = hf.F16ToF32(uint16(h))
	}
	return &t
}()

func f16(b []byte) float32 { return f16Table[binary.LittleEndian.Uint16(b)] }

func decodeF32(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func decodeBF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
	}
}

func decodeF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = f16Table[binary.LittleEndian.Uint16(src[2*i:])]
	}
}

// decodeQ8_0 is dequantize_row_q8_0: block_q8_0 {ggml_half d; int8_t qs[32]}, y = d·q.
func decodeQ8_0(dst []float32, src []byte) {
	for b := 0; b < len(dst)/32; b++ {
		blk := src[b*34 : b*34+34]
		d := f16(blk)
		y := dst[b*32 : b*32+32]
		for j, q := range blk[2:34] {
			y[j] = d * float32(int8(q))
		}
	}
}

// decodeQ4_0 is dequantize_row_q4_0: block_q4_0 {ggml_half d; uint8_t qs[16]}; byte j holds value j in
// its low nibble and value j+16 in its high nibble, each offset by 8: y = (q-8)·d.
func decodeQ4_0(dst []float32, src []byte) {
	for b := 0; b < len(dst)/32; b++ {
		blk := src[b*18 : b*18+18]
		d := f16(blk)
		y := dst[b*32 : b*32+32]
		for j, q := range blk[2:18] {
			y[j] = float32(int(q&0x0f)-8) * d
			y[j+16] = float32(int(q>>4)-8) * d
		}
	}
}

// scaleMinK4 is get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K super-block, packed into 12
// bytes (scales[0:4] and mins[4:8] hold the low 6 bits of sub-blocks 0-3; bytes 8-11 hold the low 4
// bits of sub-blocks 4-7, whose top 2 bits are the spare top bits of bytes 0-7).
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0x0f | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// decodeQ4_K is dequantize_row_q4_K: block_q4_K {ggml_half d; ggml_half dmin; uint8_t scales[12];
// uint8_t qs[128]}. Each 64 values are two sub-blocks of 32 sharing 32 bytes of qs: the first in the low
// nibbles, the second in the high; y = d·sc·q - dmin·m.
func decodeQ4_K(dst []float32, src []byte) {
	for b := 0; b < len(dst)/256; b++ {
		blk := src[b*144 : b*144+144]
		d, dmin := f16(blk[0:]), f16(blk[2:])
		scales, qs := blk[4:16], blk[16:144]
		y := dst[b*256 : b*256+256]
		for j := 0; j < 4; j++ {
			sc, m := scaleMinK4(2*j, scales)
			d1, m1 := d*float32(sc), dmin*float32(m)
			sc, m = scaleMinK4(2*j+1, scales)
			d2, m2 := d*float32(sc), dmin*float32(m)
			q := qs[32*j : 32*j+32]
			lo, hi := y[64*j:64*j+32], y[64*j+32:64*j+64]
			for l, v := range q {
				lo[l] = float32(d1*float32(v&0x0f)) - m1 // explicit conversions: no FMA, as ggml
				hi[l] = float32(d2*float32(v>>4)) - m2
			}
		}
	}
}

// decodeQ6_K is dequantize_row_q6_K: block_q6_K {uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16];
// ggml_half d}. A 6-bit value is 4 low bits from ql and 2 high bits from qh, offset by 32; each 16
// values share an int8 scale: y = d·sc·(q-32), evaluated as (d·sc)·q like the C.
func decodeQ6_K(dst []float32, src []byte) {
	for b := 0; b < len(dst)/256; b++ {
		blk := src[b*210 : b*210+210]
		d := f16(blk[208:])
		for half := 0; half < 2; half++ {
			ql := blk[64*half : 64*half+64]
			qh := blk[128+32*half : 128+32*half+32]
			sc := blk[192+8*half : 192+8*half+8]
			y := dst[b*256+128*half : b*256+128*half+128]
			for l := 0; l < 32; l++ {
				is := l / 16
				q1 := int(ql[l]&0x0f|(qh[l]>>0&3)<<4) - 32
				q2 := int(ql[l+32]&0x0f|(qh[l]>>2&3)<<4) - 32
				q3 := int(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				q4 := int(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
				y[l] = float32(d*float32(int8(sc[is]))) * float32(q1)
				y[l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
				y[l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
				y[l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
			}
		}
	}
}

// nf4Levels is QLoRA's NormalFloat4 code book, the 16 values of bitsandbytes' get_4bit_type("nf4")
// (bitsandbytes/functional.py; Dettmers et al. 2023, appendix E): quantiles of N(0, 1) scaled to
// [-1, 1], with an exact zero.
var nf4Levels = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// decodeNF4: a block is its float32 absmax followed by 32 bytes of codes, two a byte with the first
// value in the high nibble (bitsandbytes' packing); y = level[code]·absmax.
func decodeNF4(dst []float32, src []byte) {
	for b := 0; b < len(dst)/64; b++ {
		blk := src[b*36 : b*36+36]
		a := math.Float32frombits(binary.LittleEndian.Uint32(blk))
		y := dst[b*64 : b*64+64]
		for j, q := range blk[4:36] {
			y[2*j] = nf4Levels[q>>4] * a
			y[2*j+1] = nf4Levels[q&0x0f] * a
		}
	}
}

func encodeF32(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

// f32ToBF16 rounds to nearest, ties to even (torch's and ggml's GGML_FP32_TO_BF16); callers have
// rejected NaN.
func f32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

func encodeBF16(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], f32ToBF16(v))
	}
}

func encodeF16(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], hf.F32ToF16(v))
	}
}

// encodeQ8_0 is quantize_row_q8_0_ref: d = amax/127 in float32, q = roundf(x·(1/d)) (ties away from
// zero), d stored as fp16. An all-zero block gets d = 0 and q = 0.
func encodeQ8_0(dst []byte, src []float32) {
	for b := 0; b < len(src)/32; b++ {
		x := src[b*32 : b*32+32]
		out := dst[b*34 : b*34+34]
		var amax float32
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(out, hf.F32ToF16(d))
		for j, v := range x {
			out[2+j] = byte(int8(math.Round(float64(v * id))))
		}
	}
}

// nf4Mid are the midpoints between consecutive NF4 levels, the thresholds of bitsandbytes'
// dQuantizeNF4 decision tree: a normalised value above nf4Mid[i] maps to code i+1 or higher (a value
// exactly on a midpoint takes the lower code, as there).
var nf4Mid = func() [15]float32 {
	var m [15]float32
	for i := range m {
		m[i] = (nf4Levels[i] + nf4Levels[i+1]) / 2
	}
	return m
}()

func nf4Code(x float32) byte {
	c := byte(0)
	for c < 15 && x > nf4Mid[c] {
		c++
	}
	return c
}

// encodeNF4 is bitsandbytes' blockwise NF4 quantisation (quantize_4bit with quant_type "nf4",
// blocksize 64, no double quantisation): absmax = max|x| in float32, each x/absmax mapped to the nearest
// level. An all-zero block stores absmax 0 and code 7 (the level 0).
func encodeNF4(dst []byte, src []float32) {
	for b := 0; b < len(src)/64; b++ {
		x := src[b*64 : b*64+64]
		out := dst[b*36 : b*36+36]
		var amax float32
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		binary.LittleEndian.PutUint32(out, math.Float32bits(amax))
		var inv float32
		if amax != 0 {
			inv = 1 / amax
		}
		for j := 0; j < 32; j++ {
			out[4+j] = nf4Code(x[2*j]*inv)<<4 | nf4Code(x[2*j+1]*inv)
		}
	}
}
