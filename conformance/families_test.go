package conformance

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// TestConformanceFamilies runs the shipped tiny Llama 3.2, Qwen2.5, Qwen3 and Qwen3-MoE init configs end
// to end through the CLI: `alignkit init` around ../shared's real byte-level BPE tokenizer directories
// (128256 and 151669 tokens), `alignkit export --format gguf` (llama.cpp's llama, qwen2, qwen3 and
// qwen3moe architectures, the tokenizer embedded as gpt2), and llama.cpp on the export against
// `alignkit logits`: 1e-4 on every log-prob of every position of a story's first 6 tokens, and
// alignkit's argmax at each step of llama.cpp's 4-token greedy continuation. The sequences are short
// because every position's log-softmax over the whole 150k-token vocabulary crosses a JSON pipe
// (about 3 MB each way); model/gguf's TestLlamaCppFamilies covers 220 positions on the same
// architectures with a small vocabulary.
func TestConformanceFamilies(t *testing.T) {
	t.Parallel()
	requireLlamaCpp(t)
	sharedtest.Dir(t, "tokenizers/llama3/tokenizer.json", "tokenizers/qwen3/tokenizer.json")
	// initializer_range makes std·sqrt(hidden_size) 1.6 in every model, as 0.2 does for the 64-wide
	// ones: logits far from flat, yet no larger than float32 summation order can be trusted with to
	// 1e-4 (with 0.2 the 256-wide Llama's log-probs differ by ~1.2e-4 from llama.cpp's, with or
	// without rope scaling, while a 64-wide copy of it agrees to 1e-5).
	for _, tc := range []struct{ name, init string }{{"llama3.2", "0.1"}, {"qwen2.5", "0.2"}, {"qwen3", "0.2"}, {"qwen3-moe", "0.2"}} {
		name := tc.name
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "hf")
			t.Log(strings.TrimSpace(cli(t, "init", "--config", "configs/init/tiny-"+name+".yaml", "--out", src,
				"--set", "initializer_range="+tc.init, "--set", "num_hidden_layers=2")))
			out := filepath.Join(dir, name+".gguf")
			cli(t, "export", "--model", src, "--format", "gguf", "--out", out)

			seqs := [][]int32{firstN(t, tokenize(t, src, stories[0]), 6)}
			const greedy = 4
			runs := llamaCpp(t, out, seqs, greedy)
			d := compareAll(t, src, seqs, runs)
			rows := logProbs(t, src, append(slices.Clone(seqs[0]), runs[0].Greedy[:greedy-1]...))
			for k, want := range runs[0].Greedy {
				if got := argmax(rows[len(seqs[0])-1+k]); got != int(want) {
					t.Errorf("greedy step %d: llama.cpp picks %d, alignkit's argmax is %d", k, want, got)
					break
				}
			}
			report(t, "%s f32: %s; greedy %v", name, d, runs[0].Greedy)
			if d.Max > tol {
				t.Errorf("llama.cpp differs from alignkit logits: %s; tolerance %g", d, tol)
			}
		})
	}
}
