package hf

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

// f16Reference rounds through github.com/x448/float16, an independent binary16 implementation
// (round to nearest even, verified by its author over all 2^32 inputs).
func f16Reference(x float32) float32 { return float16.Fromfloat32(x).Float32() }

func sameFloat(a, b float32) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func TestF16AllBitPatterns(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got := F16ToF32(uint16(h))
		want := float16.Frombits(uint16(h)).Float32()
		if !sameFloat(got, want) {
			t.Fatalf("F16ToF32(%#04x) = %v, want %v", h, got, want)
		}
		if got != got {
			continue
		}
		// Every binary16 value widens exactly, so narrowing it again must give the same bits.
		if back := F32ToF16(got); back != uint16(h) {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x", h, back)
		}
		// The midpoint to the next value up (exactly representable as float32) is a tie: it must go
		// to whichever of the two has an even last bit, as x448 and IEEE say.
		if h&0x7fff < 0x7bff {
			next := F16ToF32(uint16(h + 1))
			mid := float32((float64(got) + float64(next)) / 2)
			if g, w := F32ToF16(mid), float16.Fromfloat32(mid).Bits(); g != w {
				t.Fatalf("tie %v between %#04x and %#04x: got %#04x, want %#04x", mid, h, h+1, g, w)
			}
		}
	}
}

func TestF32ToF16MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65519.99, 65520, -65520, 1e-8, 5.960464477539063e-08,
		2.9802322387695312e-08, 2.98023259e-08, 6.103515625e-05, float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.MaxFloat32, math.SmallestNonzeroFloat32}
	for _, x := range special {
		if g, w := F32ToF16(x), float16.Fromfloat32(x).Bits(); g != w {
			t.Errorf("F32ToF16(%v) = %#04x, want %#04x", x, g, w)
		}
	}
	for i := 0; i < 2_000_000; i++ {
		x := math.Float32frombits(rng.Uint32())
		if g, w := F32ToF16(x), float16.Fromfloat32(x).Bits(); g != w {
			t.Fatalf("F32ToF16(%v [%#08x]) = %#04x, want %#04x", x, math.Float32bits(x), g, w)
		}
	}
}

func TestBF16(t *testing.T) {
	// Hand-derived: bfloat16 keeps float32's top 16 bits; 1.0 is 0x3f800000, and its last kept
	// mantissa bit is worth 2^-7, so 1+2^-8 is exactly halfway between 0x3f80 and 0x3f81.
	cases := []struct {
		x    float32
		want uint16
	}{
		{1, 0x3f80},
		{1 + 1.0/256, 0x3f80},               // tie, 0x3f80 is even: down
		{1 + 3.0/256, 0x3f82},               // tie between 0x3f81 and 0x3f82: up to even
		{1 + 1.0/256 + 1.0/(1<<20), 0x3f81}, // just past the tie: up
		{-2, 0xc000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{float32(math.Inf(-1)), 0xff80},
		{math.MaxFloat32, 0x7f80},                  // rounds past bfloat16's largest finite value
		{math.Float32frombits(0x7f800001), 0x7fc0}, // a NaN whose payload sits in the dropped bits stays NaN
	}
	for _, c := range cases {
		if got := f32ToBF16(c.x); got != c.want {
			t.Errorf("f32ToBF16(%v) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 1_000_000; i++ {
		x := math.Float32frombits(rng.Uint32())
		if x != x || math.IsInf(float64(x), 0) || math.Abs(float64(x)) > 3.38e38 {
			continue
		}
		if got, want := BF16ToF32(f32ToBF16(x)), bf16Nearest(x); !sameFloat(got, want) {
			t.Fatalf("bf16(%v) = %v, want %v", x, got, want)
		}
	}
	for h := 0; h < 1<<16; h++ {
		if v := BF16ToF32(uint16(h)); v == v && f32ToBF16(v) != uint16(h) {
			t.Fatalf("bf16 %#04x does not round-trip", h)
		}
	}
}

func TestParseDtype(t *testing.T) {
	cases := []struct {
		in   string
		want dtype
		err  string
	}{
		{"", dtF32, ""}, {"f32", dtF32, ""}, {"F32", dtF32, ""}, {"float32", dtF32, ""},
		{"bf16", dtBF16, ""}, {"BF16", dtBF16, ""}, {"bfloat16", dtBF16, ""},
		{"f16", dtF16, ""}, {"fp16", dtF16, ""}, {"float16", dtF16, ""},
		{"q4_0", "", `unknown dtype "q4_0" (want f32, bf16 or f16)`},
		{"f64", "", `unknown dtype "f64" (want f32, bf16 or f16)`},
	}
	for _, c := range cases {
		got, err := parseDtype(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("parseDtype(%q) error %v, want %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseDtype(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
