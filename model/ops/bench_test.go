package ops

import (
	"math/rand/v2"
	"testing"
)

func randF32(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// BenchmarkAttention runs the attention kernels' forward and backward at the reference training
// shape (batch 8 × 256, 8 query and 4 KV heads of 32).
func BenchmarkAttention(b *testing.B) {
	s := AttentionSpec{Batch: 8, SeqLen: 256, Heads: 8, KVHeads: 4, HeadDim: 32}
	n := s.Batch * s.SeqLen
	rng := rand.New(rand.NewPCG(1, 1))
	q, k, v := randF32(rng, n*256), randF32(rng, n*128), randF32(rng, n*128)
	do := randF32(rng, n*256)
	out, dq := make([]float32, n*256), make([]float32, n*256)
	dk, dv := make([]float32, n*128), make([]float32, n*128)
	seg := make([]int32, n)
	for i := range seg {
		seg[i] = 1
	}
	rowLo := make([]int32, n)
	var seen map[int32]int32
	computeRowLo(rowLo, &seen, seg, s)
	lse, dsum := make([]float64, n*8), make([]float64, n*8)
	var sa, sb, sc scratch[float32]
	op := &attentionOp{spec: s, rowLo: rowLo, keepLimit: attnKeepLimit}
	kept := make([]float32, op.planKeep())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		attnForward(s, out, q, k, v, seg, rowLo, lse, &sa, kept, op.pOff)
		attnBackward(s, dq, dk, dv, q, k, v, out, do, seg, rowLo, lse, dsum, &sb, &sc, kept, op.pOff)
	}
}

func BenchmarkExpShift(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := randF32(rng, 4096)
	row := make([]float32, 4096)
	for i := 0; i < b.N; i++ {
		copy(row, x)
		expShift(row, 3)
	}
	b.ReportMetric(float64(b.N*4096)/b.Elapsed().Seconds()/1e6, "Mexp/s")
}
