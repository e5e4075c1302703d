package train

import "testing"

// TestSampleSeed: the seed is 64-bit FNV-1a over the three values' little-endian bytes, pinned to
// the value Python computes from the FNV definition (offset 0xcbf29ce484222325, prime
// 0x100000001b3), so a change of rule, which would change what a resumed RL run samples, fails
// here; and each argument changes it.
func TestSampleSeed(t *testing.T) {
	base := SampleSeed(42, 3, 1)
	if base != SampleSeed(42, 3, 1) {
		t.Fatal("SampleSeed is not a pure function")
	}
	if base != 0x616a3a658ad2000d {
		t.Fatalf("SampleSeed(42, 3, 1) = %#x, want 0x616a3a658ad2000d", base)
	}
	for _, other := range []uint64{SampleSeed(43, 3, 1), SampleSeed(42, 4, 1), SampleSeed(42, 3, 0), SampleSeed(42, 1, 3)} {
		if other == base {
			t.Fatalf("SampleSeed ignores an argument: %#x", other)
		}
	}
}
