package infer

import (
	"context"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/model"
)

// TestSessionMatchesForward runs prefill + one-token steps through the KV cache (the rolling buffer
// when the model has a sliding window) and compares every logit vector with the cache-free Forward.
func TestSessionMatchesForward(t *testing.T) {
	longWin := testConfig("MistralForCausalLM")
	longWin.MaxPositionEmbeddings, longWin.SlidingWindow = 256, 70
	wide := testConfig("MistralForCausalLM")
	wide.MaxPositionEmbeddings, wide.SlidingWindow, wide.HeadDim, wide.NumAttentionHeads = 256, 100, 16, 4
	wideLlama := testConfig("LlamaForCausalLM")
	wideLlama.MaxPositionEmbeddings, wideLlama.HeadDim = 256, 16
	cases := []struct {
		name    string
		cfg     model.Config
		T       int
		prefill int
		chunk   int
	}{
		{"llama", testConfig("LlamaForCausalLM"), 23, 6, 4},
		{"mistral W=5", testConfig("MistralForCausalLM"), 23, 6, 4},
		{"mistral W=5 prefill past the window", testConfig("MistralForCausalLM"), 23, 13, 3},
		{"mistral W=5 chunk larger than W", testConfig("MistralForCausalLM"), 23, 13, 8},
		{"mixtral", testConfig("MixtralForCausalLM"), 23, 6, 4},
		{"mistral W=70 long prefill", longWin, 160, 140, 0},
		{"mistral head_dim 16 (Sgemm attention)", wide, 240, 150, 37},
		{"llama head_dim 16 (Sgemm attention)", wideLlama, 240, 200, 0},
		{"llama3 rope scaling, biases", familyConfig("llama3"), 23, 6, 4},
		{"qwen2 biases", familyConfig("qwen2"), 23, 6, 4},
		{"qwen3 q/k norm", familyConfig("qwen3"), 23, 6, 4},
		{"qwen3moe unnormalised, dense layer", familyConfig("qwen3moe"), 23, 6, 4},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := randomEngine(t, tc.cfg, uint64(30+i))
			toks := randomTokens(tc.T, e.V, 100+i)
			full, err := e.Forward(toks, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := e.NewSession(0)
			got, err := s.Prefill(toks[:tc.prefill], tc.chunk)
			if err != nil {
				t.Fatal(err)
			}
			worst := maxAbsDiff(got, full[tc.prefill-1])
			for p := tc.prefill; p < tc.T; p++ {
				got, err := s.Step(toks[p])
				if err != nil {
					t.Fatal(err)
				}
				worst = max(worst, maxAbsDiff(got, full[p]))
			}
			if worst > 1e-5 {
				t.Errorf("cached logits differ from Forward by %.3g (> 1e-5)", worst)
			}
			if s.Len() != tc.T {
				t.Errorf("Len() = %d, want %d", s.Len(), tc.T)
			}
			if w := tc.cfg.SlidingWindow; w > 0 && s.cache.capacity > w {
				t.Errorf("rolling buffer holds %d slots, want at most W = %d", s.cache.capacity, w)
			}
		})
	}
}

// TestChunkedPrefill checks that the chunk size changes nothing: the last logits and the cache left
// behind (probed by the following steps) equal an unchunked prefill.
func TestChunkedPrefill(t *testing.T) {
	for _, arch := range []string{"LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM"} {
		e, _ := randomEngine(t, testConfig(arch), 7)
		toks := randomTokens(29, e.V, 3)
		prompt, rest := toks[:21], toks[21:]
		run := func(chunk int) [][]float32 {
			s := e.NewSession(0)
			l, err := s.Prefill(prompt, chunk)
			if err != nil {
				t.Fatal(err)
			}
			out := [][]float32{l}
			for _, tok := range rest {
				l, err := s.Step(tok)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, l)
			}
			return out
		}
		want := run(len(prompt))
		for _, chunk := range []int{1, 3, 5, 7, 13, 0} {
			got := run(chunk)
			for i := range want {
				if d := maxAbsDiff(got[i], want[i]); d > 1e-5 {
					t.Errorf("%s chunk %d: logits %d differ from the unchunked prefill by %.3g", arch, chunk, i, d)
				}
			}
		}
	}
}

// TestSlidingWindowReach checks that Forward honours Mistral's window exactly. With L layers of window W
// a position p sees tokens back to p - L(W-1): a change further back leaves p's logits bit-for-bit
// unchanged, a change at the edge of the reach (and inside the window) does not.
func TestSlidingWindowReach(t *testing.T) {
	const W, p = 5, 20
	for _, layers := range []int{1, 2} {
		c := testConfig("MistralForCausalLM")
		c.NumHiddenLayers = layers
		e, _ := randomEngine(t, c, 11)
		base := randomTokens(p+3, e.V, 5)
		ref, err := e.Forward(base, nil)
		if err != nil {
			t.Fatal(err)
		}
		reach := layers * (W - 1) // p - reach is the oldest token p can see
		cases := []struct {
			changed int
			effect  bool
		}{
			{p - reach - 1, false},
			{0, false},
			{p - reach, true},
			{p - W + 1, true},
		}
		for _, tc := range cases {
			toks := append([]int32(nil), base...)
			toks[tc.changed] = (toks[tc.changed] + 1) % int32(e.V)
			got, err := e.Forward(toks, nil)
			if err != nil {
				t.Fatal(err)
			}
			d := maxAbsDiff(got[p], ref[p])
			if tc.effect && d == 0 {
				t.Errorf("%d layers: changing token %d left position %d unchanged, but it is within reach", layers, tc.changed, p)
			}
			if !tc.effect && d != 0 {
				t.Errorf("%d layers: changing token %d moved position %d's logits by %.3g, but it is out of reach", layers, tc.changed, p, d)
			}
		}
	}
}

// TestCachedGenerationMatchesForward decodes greedily through the rolling buffer well past the window and
// compares with greedy decoding that recomputes Forward over the whole sequence at every step.
func TestCachedGenerationMatchesForward(t *testing.T) {
	e, _ := randomEngine(t, testConfig("MistralForCausalLM"), 21)
	prompt := randomTokens(4, e.V, 9)
	gen, err := e.Generate(context.Background(), [][]int32{prompt}, Sampling{MaxNewTokens: 20})
	if err != nil {
		t.Fatal(err)
	}
	seq := append([]int32(nil), prompt...)
	for range 20 {
		logits, err := e.Forward(seq, nil)
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, int32(argmax(logits[len(logits)-1])))
	}
	if !slices.Equal(gen[0], seq[len(prompt):]) {
		t.Errorf("cached greedy %v\n  Forward greedy %v", gen[0], seq[len(prompt):])
	}
}
