package quant

import (
	"encoding/binary"
	"testing"
)

// TestDecodeHandBuiltBlocks decodes blocks assembled by hand from ggml-common.h's struct layouts and
// checks values derived by hand from ggml-quants.c's dequantize_row_q4_0, _q4_K (with get_scale_min_k4)
// and _q6_K, so the layouts are checked even where libggml-base.so is not installed (TestDecodeMatchesGGML
// then skips). Unset bytes are zero.
func TestDecodeHandBuiltBlocks(t *testing.T) {
	type want struct {
		i int
		v float32
	}
	cases := []struct {
		f     Format
		build func(b []byte)
		want  []want
	}{
		{Q4_0, func(b []byte) {
			// d = 0.5; qs[0] = 0x3c: value 0 is the low nibble 12, value 16 the high nibble 3, each minus 8.
			binary.LittleEndian.PutUint16(b[0:], 0x3800)
			b[2], b[2+15] = 0x3c, 0xf0
		}, []want{{0, (12 - 8) * 0.5}, {16, (3 - 8) * 0.5}, {15, (0 - 8) * 0.5}, {31, (15 - 8) * 0.5}, {1, -4}}},
		{Q4_K, func(b []byte) {
			// d = 1, dmin = 0.5. scales: byte 0 = 0xc1 gives sub-block 0 scale 1 and its top bits (3) become
			// the high bits of sub-block 4's scale; byte 4 = 0x42 gives sub-block 0 min 2 and (top bits 1)
			// the high bits of sub-block 4's min; byte 8 = 0x35 holds sub-block 4's low bits: scale
			// 5 | 3<<4 = 53, min 3 | 1<<4 = 19. Sub-blocks 0 and 1 share qs[0:32] (low, high nibbles);
			// sub-block 4 is the low nibbles of qs[64:96].
			binary.LittleEndian.PutUint16(b[0:], 0x3c00)
			binary.LittleEndian.PutUint16(b[2:], 0x3800)
			sc := b[4:16]
			sc[0], sc[4], sc[8] = 0xc1, 0x42, 0x35
			qs := b[16:]
			qs[0], qs[64] = 0x07, 0xf9
		}, []want{
			{0, 1*7 - 0.5*2},     // sub-block 0: d·1·7 - dmin·2
			{1, 1*0 - 0.5*2},     // q = 0
			{32, 0},              // sub-block 1: scale and min 0
			{128, 53*9 - 0.5*19}, // sub-block 4, low nibble of 0xf9
			{129, -0.5 * 19},
			{160, 0}, // sub-block 5: high nibble 15 but scale and min 0
		}},
		{Q6_K, func(b []byte) {
			// d = 0.25. Value l of the first 128 takes ql[l] low nibble + qh[l] bits 0-1 (q1), ql[l+32] low +
			// bits 2-3 (q2, value l+32), ql[l] high + bits 4-5 (q3, value l+64), ql[l+32] high + bits 6-7
			// (q4, value l+96), each minus 32, scaled by scales[l/16 + 0, 2, 4, 6]. ql[0] = 0x2a, qh[0] = 0x27
			// (bits 3, 1, 2, 0): q1 = 10|3<<4 = 58, q2 = 0|1<<4 = 16, q3 = 2|2<<4 = 34, q4 = 0.
			// The second 128 use ql[64:], qh[32:], scales[8:]: value 148 is l = 20, scale index 9.
			binary.LittleEndian.PutUint16(b[208:], 0x3400)
			ql, qh, sc := b[0:128], b[128:192], b[192:208]
			ql[0], qh[0] = 0x2a, 0x27
			sc[0], sc[2], sc[4], sc[6] = 3, 0xfe, 0xf9, 1 // 3, -2, -7, 1
			ql[64+20], sc[9] = 0x05, 4
		}, []want{
			{0, 0.25 * 3 * (58 - 32)},
			{32, 0.25 * -2 * (16 - 32)},
			{64, 0.25 * -7 * (34 - 32)},
			{96, 0.25 * 1 * (0 - 32)},
			{128 + 20, 0.25 * 4 * (5 - 32)},
			{1, 0.25 * 3 * (0 - 32)}, // all bits zero: q = -32
		}},
	}
	for _, c := range cases {
		blk := make([]byte, c.f.BlockBytes())
		c.build(blk)
		got := make([]float32, c.f.BlockSize())
		if err := c.f.Decode(got, blk); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if got[w.i] != w.v {
				t.Errorf("%s: value %d = %v, want %v", c.f, w.i, got[w.i], w.v)
			}
		}
	}
}
