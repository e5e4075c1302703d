package checkpoint

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/gguf"
)

// sharedDir is ../shared; tests skip unless it holds stories260K.
func sharedDir(t *testing.T) string {
	t.Helper()
	return sharedtest.Dir(t, "models/stories260K")
}

// TestOpenHFAndGGUFAgree opens the same pretrained model from llama.cpp's GGUF and from the HF
// directory: weights (after un-permuting Q/K) and tokenizer ids must be identical.
func TestOpenHFAndGGUFAgree(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "models", "stories260K")
	hfm, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	gm, err := Open(filepath.Join(dir, "stories260K-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(hfm.Weights.Tensors) != len(gm.Weights.Tensors) {
		t.Fatalf("tensor counts differ: %d vs %d", len(hfm.Weights.Tensors), len(gm.Weights.Tensors))
	}
	for name, a := range hfm.Weights.Tensors {
		b := gm.Weights.Tensors[name]
		if b == nil {
			t.Fatalf("GGUF lacks %s", name)
		}
		for i := range a.Data {
			if a.Data[i] != b.Data[i] {
				t.Fatalf("%s[%d]: HF %v, GGUF %v", name, i, a.Data[i], b.Data[i])
			}
		}
	}
	for _, text := range []string{"Once upon a time", "  Lily   saw a </s> cat!\n", "ünïcödé 🤖"} {
		a, b := hfm.Tok.Encode(text, true), gm.Tok.Encode(text, true)
		if !slices.Equal(a, b) {
			t.Errorf("%q: HF %v, GGUF %v", text, a, b)
		}
	}
}

// TestSaveFromGGUF writes a GGUF-sourced model as an HF directory with a rebuilt tokenizer.model
// and reads it back unchanged.
func TestSaveFromGGUF(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "models", "stories260K")
	gm, err := Open(filepath.Join(dir, "stories260K-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := Save(out, gm, saveOpts()); err != nil {
		t.Fatal(err)
	}
	back, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Once upon a time", "The dog ran to the park."} {
		if a, b := gm.Tok.Encode(text, true), back.Tok.Encode(text, true); !slices.Equal(a, b) {
			t.Errorf("%q: GGUF %v, rebuilt %v", text, a, b)
		}
	}
	for name, a := range gm.Weights.Tensors {
		b := back.Weights.Tensors[name]
		for i := range a.Data {
			if a.Data[i] != b.Data[i] {
				t.Fatalf("%s differs after save", name)
			}
		}
	}
}

func TestInit(t *testing.T) {
	tok := filepath.Join(sharedDir(t), "models", "stories260K", "tokenizer.model")
	cases := []struct {
		name string
		spec InitSpec
		want func(model.Config) bool
	}{
		{"llama untied MHA", InitSpec{Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", HiddenSize: 32, IntermediateSize: 64,
			NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 4, RMSNormEps: 1e-5, MaxPositionEmbeddings: 128, Seed: 1, Tokenizer: tok},
			func(c model.Config) bool {
				return c.VocabSize == 512 && !c.TieWordEmbeddings && c.EOS() == 2 && c.BOSTokenID == 1
			}},
		{"mistral window", InitSpec{Architectures: []string{"MistralForCausalLM"}, ModelType: "mistral", HiddenSize: 32, IntermediateSize: 64,
			NumHiddenLayers: 1, NumAttentionHeads: 4, NumKeyValueHeads: 2, RMSNormEps: 1e-5, MaxPositionEmbeddings: 128, SlidingWindow: 16, Seed: 2, Tokenizer: tok},
			func(c model.Config) bool { return c.SlidingWindow == 16 && c.QueryGroups() == 2 }},
		{"mixtral", InitSpec{Architectures: []string{"MixtralForCausalLM"}, ModelType: "mixtral", HiddenSize: 32, IntermediateSize: 48,
			NumHiddenLayers: 1, NumAttentionHeads: 4, NumKeyValueHeads: 2, RMSNormEps: 1e-5, MaxPositionEmbeddings: 128, NumLocalExperts: 4, NumExpertsPerTok: 2, Seed: 3, Tokenizer: tok},
			func(c model.Config) bool { return c.IsMoE() && c.RouterAuxLossCoef == 0.001 && c.RopeTheta == 1e6 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m")
			m, err := Init(tc.spec, out)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(m.Weights.Config) {
				t.Fatalf("config %+v", m.Weights.Config)
			}
			again, err := Init(tc.spec, filepath.Join(t.TempDir(), "m2"))
			if err != nil {
				t.Fatal(err)
			}
			for name, a := range m.Weights.Tensors {
				if b := again.Weights.Tensors[name]; b.Data[len(b.Data)-1] != a.Data[len(a.Data)-1] {
					t.Fatalf("%s: the same seed gave different weights", name)
				}
			}
		})
	}
	bad := cases[0].spec
	bad.VocabSize = 100
	if _, err := Init(bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "vocab_size 100 differs from the tokenizer's 512 tokens") {
		t.Fatalf("got %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notGGUF := filepath.Join(dir, "x.gguf")
	os.WriteFile(notGGUF, []byte("not a gguf at all, just text"), 0o644)
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "opening model: stat " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{notGGUF, notGGUF + ": "},
	} {
		_, err := Open(tc.path)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Open(%s): got %v, want prefix %q", tc.path, err, tc.want)
		}
	}
}

// TestTokenizerChecks: a byte-level GGUF tokenizer cannot be rebuilt, and a tokenizer with more tokens
// than the embedding has rows is refused (stories260K's tokenizer has 512 tokens).
func TestTokenizerChecks(t *testing.T) {
	_, err := TokenizerFromGGUF(&gguf.TokenizerInfo{Model: "gpt2", Tokens: []string{"a"}})
	if want := `embedded tokenizer "gpt2": only SentencePiece ("llama") GGUF tokenizers can be loaded; use the HF directory for byte-level BPE models`; err == nil || err.Error() != want {
		t.Errorf("gpt2 tokenizer: error %v, want %s", err, want)
	}
	dir := filepath.Join(sharedDir(t), "models", "stories260K")
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Weights.Config.VocabSize = 500
	if err := checkVocab(m.Weights, m.Tok, dir); err == nil || err.Error() != dir+": the tokenizer has 512 tokens but the model's vocab_size is 500" {
		t.Errorf("tokenizer larger than the vocabulary: error %v", err)
	}
}

// TestInitTokenizerDirectory builds Qwen3-MoE and Llama 3 models around ../shared's tokenizer
// directories (tokenizer.json and tokenizer_config.json only): both files are copied in, vocab_size is
// the tokenizer's, EOS comes from tokenizer_config.json, and Qwen's missing BOS becomes the EOS id.
func TestInitTokenizerDirectory(t *testing.T) {
	shared := sharedDir(t)
	for _, tc := range []struct {
		name     string
		spec     InitSpec
		vocab    int
		bos, eos int
	}{
		{"qwen3moe", InitSpec{Architectures: []string{"Qwen3MoeForCausalLM"}, ModelType: "qwen3_moe", HiddenSize: 16, IntermediateSize: 32,
			NumHiddenLayers: 1, NumAttentionHeads: 2, NumKeyValueHeads: 1, HeadDim: 16, RMSNormEps: 1e-6, MaxPositionEmbeddings: 64,
			NumExperts: 4, NumExpertsPerTok: 3, MoEIntermediateSize: 8, NormTopKProb: true, Seed: 1,
			Tokenizer: filepath.Join(shared, "tokenizers", "qwen3")}, 151669, 151645, 151645},
		{"llama3", InitSpec{Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", HiddenSize: 16, IntermediateSize: 32,
			NumHiddenLayers: 1, NumAttentionHeads: 2, RMSNormEps: 1e-5, MaxPositionEmbeddings: 64, TieWordEmbeddings: true, AttentionBias: true,
			RopeScaling: map[string]any{"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
			Seed:        2, Tokenizer: filepath.Join(shared, "tokenizers", "llama3")}, 128256, 128000, 128009},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.spec.Tokenizer); err != nil {
				t.Skipf("tokenizer directory absent: %v", err)
			}
			out := filepath.Join(t.TempDir(), "m")
			m, err := Init(tc.spec, out)
			if err != nil {
				t.Fatal(err)
			}
			c := m.Weights.Config
			if c.VocabSize != tc.vocab || c.BOSTokenID != tc.bos || c.EOS() != tc.eos {
				t.Errorf("vocab %d bos %d eos %d, want %d %d %d", c.VocabSize, c.BOSTokenID, c.EOS(), tc.vocab, tc.bos, tc.eos)
			}
			if c.ModelType == "qwen3_moe" && (c.NumLocalExperts != 4 || c.NumExpertsPerTok != 3 || c.MoEIntermediateSize != 8 || !c.NormTopKProb) {
				t.Errorf("Qwen3-MoE keys lost: %+v", c)
			}
			if c.ModelType == "llama" && (c.RopeScaling == nil || c.RopeScaling.Factor != 32 || !c.AttentionBias) {
				t.Errorf("Llama 3 keys lost: %+v", c)
			}
			for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
				a, _ := os.ReadFile(filepath.Join(tc.spec.Tokenizer, f))
				b, err := os.ReadFile(filepath.Join(out, f))
				if err != nil || !bytes.Equal(a, b) {
					t.Errorf("%s not copied verbatim: %v", f, err)
				}
			}
		})
	}
}
