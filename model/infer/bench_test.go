package infer

import (
	"context"
	"testing"
)

// BenchmarkDecode measures single-sequence decode throughput on the real stories260K model: one Step per
// iteration through the KV cache, restarting the session before the 512-token context is full.
func BenchmarkDecode(b *testing.B) {
	e := loadStories(b)
	prompt := []int32{1, 403, 407, 261, 378} // "Once upon a time"
	newSession := func() (*Session, []float32) {
		s := e.NewSession(0)
		l, err := s.Prefill(prompt, 0)
		if err != nil {
			b.Fatal(err)
		}
		return s, l
	}
	s, logits := newSession()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if s.Len() == s.MaxLen() {
			b.StopTimer()
			s, logits = newSession()
			b.StartTimer()
		}
		var err error
		if logits, err = s.Step(int32(argmax(logits))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkGenerateBatch measures batched decode: 8 prompts sampled together, 64 new tokens each.
func BenchmarkGenerateBatch(b *testing.B) {
	e := loadStories(b)
	prompts := make([][]int32, 8)
	for i := range prompts {
		prompts[i] = []int32{1, 403, 407, 261, 378}
	}
	p := Sampling{Temperature: 1, TopP: 0.9, MaxNewTokens: 64, Seed: 1}
	b.ResetTimer()
	tokens := 0
	for range b.N {
		out, err := e.Generate(context.Background(), prompts, p)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range out {
			tokens += len(o)
		}
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkPrefill measures a 512-token prompt's prefill on stories260K.
func BenchmarkPrefill(b *testing.B) {
	e := loadStories(b)
	toks := randomTokens(512, e.V, 1)
	b.ResetTimer()
	for range b.N {
		if _, err := e.NewSession(0).Prefill(toks, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(512*b.N)/b.Elapsed().Seconds(), "tok/s")
}
