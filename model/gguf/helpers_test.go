package gguf

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ollama/ollama/convert/sentencepiece"
	"google.golang.org/protobuf/proto"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/hf"
)

// storiesDir is ../shared/models/stories260K; tests skip unless its model.safetensors is there.
func storiesDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(sharedtest.Dir(t, "models/stories260K/model.safetensors"), "models", "stories260K")
}

// loadStories reads the HF checkpoint with model/hf.
func loadStories(t testing.TB) *model.Weights {
	t.Helper()
	w, err := hf.Load(storiesDir(t))
	if err != nil {
		t.Fatalf("loading stories260K: %v", err)
	}
	return w
}

// storiesTokenizer builds the TokenizerInfo the way an integrator would from the SentencePiece model and
// tokenizer_config.json (add_bos true, add_eos false, no chat template): pieces, scores and piece types
// (SentencePiece's type numbers are llama.cpp's), the normalizer's flags, and <unk>/<s>/</s> ids 0/1/2.
func storiesTokenizer(t testing.TB) *TokenizerInfo {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(storiesDir(t), "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	var mp sentencepiece.ModelProto
	if err := proto.Unmarshal(raw, &mp); err != nil {
		t.Fatalf("parsing tokenizer.model: %v", err)
	}
	tok := &TokenizerInfo{Model: "llama", BOS: 1, EOS: 2, UNK: 0, PAD: -1, AddBOS: true}
	for _, p := range mp.GetPieces() {
		tok.Tokens = append(tok.Tokens, p.GetPiece())
		tok.Scores = append(tok.Scores, p.GetScore())
		tok.Types = append(tok.Types, int32(p.GetType()))
	}
	dummy := mp.GetNormalizerSpec().GetAddDummyPrefix()
	extra := mp.GetNormalizerSpec().GetRemoveExtraWhitespaces()
	tok.AddSpacePrefix, tok.RemoveExtraWhitespaces = &dummy, &extra
	return tok
}

// syntheticTokenizer is a SentencePiece-style vocabulary of v pieces: <unk>, <s>, </s>, the 256 byte
// pieces, then "▁wN" words, so that llama.cpp's vocabulary loader finds everything it looks for.
func syntheticTokenizer(v int) *TokenizerInfo {
	tok := &TokenizerInfo{Model: "llama", BOS: 1, EOS: 2, UNK: 0, PAD: -1, AddBOS: true}
	add := func(s string, score float32, typ int32) {
		tok.Tokens = append(tok.Tokens, s)
		tok.Scores = append(tok.Scores, score)
		tok.Types = append(tok.Types, typ)
	}
	add("<unk>", 0, TokenUnknown)
	add("<s>", 0, TokenControl)
	add("</s>", 0, TokenControl)
	for b := 0; b < 256 && len(tok.Tokens) < v; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0, TokenByte)
	}
	for i := 0; len(tok.Tokens) < v; i++ {
		add(fmt.Sprintf("▁w%d", i), -float32(i), TokenNormal)
	}
	return tok
}

// randomWeights makes weights whose values are large enough that a wrong permutation, name or layout
// moves log-probs by far more than 1e-4: matrices ~N(0, std), norm gains 1 ± 0.3.
func randomWeights(t testing.TB, c model.Config, seed uint64, std float64) *model.Weights {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	w := model.InitRandom(c, seed, std)
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, name := range w.Names() {
		if tn := w.Tensors[name]; len(tn.Shape) == 1 {
			for i := range tn.Data {
				tn.Data[i] = float32(1 + 0.3*rng.NormFloat64())
			}
		}
	}
	return w
}

// mixtralConfig is a Mixtral-shaped model: 4 experts, top-2 routing, GQA 4:2, untied head.
func mixtralConfig() model.Config {
	return model.Config{
		Architectures: []string{"MixtralForCausalLM"}, ModelType: "mixtral",
		VocabSize: 300, HiddenSize: 64, IntermediateSize: 96, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 16,
		RMSNormEps: 1e-5, RopeTheta: 1e6, MaxPositionEmbeddings: 128,
		BOSTokenID: 1, EOSTokenIDs: []int{2},
		NumLocalExperts: 4, NumExpertsPerTok: 2, RouterAuxLossCoef: 0.02,
	}
}

// gqaConfig is a Llama with GQA 6:2, head_dim 16 != D/H = 8 (so key_length/value_length are written),
// tied embeddings, and a row length (80) that is not a multiple of 32 for the down projection.
func gqaConfig() model.Config {
	return model.Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 280, HiddenSize: 48, IntermediateSize: 80, NumHiddenLayers: 3,
		NumAttentionHeads: 6, NumKeyValueHeads: 2, HeadDim: 16,
		RMSNormEps: 1e-6, RopeTheta: 50000, MaxPositionEmbeddings: 64, TieWordEmbeddings: true,
		BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
}

// bitsEqual reports the first element where two tensors differ bit for bit, or -1.
func bitsEqual(a, b *model.Tensor) int {
	if len(a.Data) != len(b.Data) {
		return 0
	}
	for i := range a.Data {
		if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
			return i
		}
	}
	return -1
}

// requireSameWeights fails unless got has exactly want's tensors, shapes and bits.
func requireSameWeights(t *testing.T, got, want *model.Weights) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for _, name := range want.Names() {
		g, ok := got.Tensors[name]
		if !ok {
			t.Fatalf("tensor %s is missing", name)
		}
		if fmt.Sprint(g.Shape) != fmt.Sprint(want.Tensors[name].Shape) {
			t.Fatalf("tensor %s: shape %v, want %v", name, g.Shape, want.Tensors[name].Shape)
		}
		if i := bitsEqual(g, want.Tensors[name]); i >= 0 {
			t.Fatalf("tensor %s differs at element %d: %v vs %v", name, i, g.Data[i], want.Tensors[name].Data[i])
		}
	}
}
