package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// readVectors reads llama.cpp's tokenizer test vectors: the .inp strings separated by
// "\n__ggml_vocab_test__\n" and one line of ids per string in .out.
func readVectors(t *testing.T, dir, name string, n int) ([]string, [][]int32) {
	t.Helper()
	inp, err := os.ReadFile(filepath.Join(dir, name+".inp"))
	if err != nil {
		t.Skipf("reference file absent: %v", err)
	}
	out, err := os.ReadFile(filepath.Join(dir, name+".out"))
	if err != nil {
		t.Skipf("reference file absent: %v", err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	texts := strings.Split(strings.TrimSuffix(string(inp), sep), sep)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(texts) != n || len(lines) != n {
		t.Fatalf("%s: got %d strings and %d id lines, want %d of each", name, len(texts), len(lines), n)
	}
	want := make([][]int32, n)
	for i, line := range lines {
		for _, f := range strings.Fields(line) {
			id, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", name, i+1, err)
			}
			want[i] = append(want[i], int32(id))
		}
	}
	return texts, want
}

// TestByteLevelVectors checks llama.cpp's 46 test strings for each of Llama 3's and Qwen2's
// (Qwen3's) vocabularies, encoded without BOS and without special-token parsing, against the real
// tokenizer.json files. Byte-level BPE loses nothing, so each must also decode back exactly.
func TestByteLevelVectors(t *testing.T) {
	for _, tc := range []struct{ dir, name, pre string }{
		{"llama3", "ggml-vocab-llama-bpe.gguf", "llama-bpe"},
		{"qwen3", "ggml-vocab-qwen2.gguf", "qwen2"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := filepath.Join(sharedtest.Dir(t), "tokenizers", tc.dir)
			texts, want := readVectors(t, dir, tc.name, 46)
			tk, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tk.GGUFPre() != tc.pre {
				t.Errorf("GGUFPre = %q, want %q", tk.GGUFPre(), tc.pre)
			}
			for i, text := range texts {
				got := tk.Encode(text, false)
				if !slices.Equal(got, want[i]) {
					t.Errorf("string %d %q:\n got %v\nwant %v", i, text, got, want[i])
				}
				if dec := tk.Decode(got); dec != text {
					t.Errorf("string %d: decode = %q, want %q", i, dec, text)
				}
			}
		})
	}
}

// BenchmarkEncodeLarge encodes prose and one 100,000-byte word (no pre-tokenizer split: merging
// it must stay O(n log n), not quadratic) with the real Llama 3 and Qwen3 vocabularies.
func BenchmarkEncodeLarge(b *testing.B) {
	for _, fam := range []string{"llama3", "qwen3"} {
		tk, err := Load(filepath.Join(sharedtest.Dir(b), "tokenizers", fam))
		if err != nil {
			b.Fatal(err)
		}
		for _, tc := range []struct{ name, text string }{
			{"prose", strings.Repeat("The quick brown fox jumps over the lazy dog. It's 1234 o'clock! ", 2000)},
			{"word", strings.Repeat("a", 100000)},
		} {
			b.Run(fam+"/"+tc.name, func(b *testing.B) {
				b.SetBytes(int64(len(tc.text)))
				for b.Loop() {
					tk.Encode(tc.text, false)
				}
			})
		}
	}
}
