package checkpoint

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/hub"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// Model is a loaded checkpoint: weights, the tokenizer that goes with them, and where they came from.
type Model struct {
	Weights *model.Weights
	Tok     *tokenizer.Tokenizer
	// Dir is the HF directory the model was read from, "" for a GGUF source.
	Dir string
	// Source is the path given to Open, for messages.
	Source string
	// Adapter, when non-nil, is a LoRA adapter over Weights (OpenAdapter, or lora.New for a PEFT
	// run): graphs and the inference engine run it unmerged, and trainers train it alone.
	Adapter *model.Adapter
}

// Open reads an HF model directory, a .gguf file, or a PEFT adapter directory (the base it names
// in base_model_name_or_path, with the adapter, as PEFT's AutoPeftModelForCausalLM loads it). A
// path that does not exist but has the shape of a name (org/name[@revision], ollama:name[:tag]) is
// resolved offline by package hub.
func Open(path string) (*Model, error) { return OpenContext(context.Background(), path) }

// OpenContext is Open, stopping between tensors when ctx ends (hf.LoadContext,
// gguf.LoadWeightsContext): reading a large model takes long enough that a signal must be able to
// end it.
func OpenContext(ctx context.Context, path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil && hub.IsName(path) {
		return openName(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening model: %w", err)
	}
	if !st.IsDir() {
		return openGGUF(ctx, path)
	}
	if lora.IsAdapterDir(path) {
		return openAdapterDir(path, func(base string) (*Model, error) { return OpenContext(ctx, base) })
	}
	w, err := hf.LoadContext(ctx, path)
	if err != nil {
		return nil, err
	}
	return withHFTokenizer(path, w)
}

// withHFTokenizer pairs weights read from the HF directory path with its tokenizer files.
func withHFTokenizer(path string, w *model.Weights) (*Model, error) {
	tok, err := tokenizer.Load(path)
	if err != nil {
		return nil, err
	}
	if err := checkVocab(w, tok, path); err != nil {
		return nil, err
	}
	return &Model{Weights: w, Tok: tok, Dir: path, Source: path}, nil
}

// openName opens what a hub name resolves to; Source stays the name.
func openName(ctx context.Context, name string) (*Model, error) {
	path, err := hub.Model(name)
	if err != nil {
		return nil, fmt.Errorf("opening model: %w", err)
	}
	m, err := OpenContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m.Source = name
	return m, nil
}

func openGGUF(ctx context.Context, path string) (*Model, error) {
	w, info, err := gguf.LoadWeightsContext(ctx, path, gguf.LoadOptions{})
	if err != nil {
		return nil, err
	}
	return withGGUFTokenizer(path, w, info)
}

// withGGUFTokenizer pairs weights read from the GGUF at path with its embedded tokenizer.
func withGGUFTokenizer(path string, w *model.Weights, info *gguf.TokenizerInfo) (*Model, error) {
	if info == nil {
		return nil, fmt.Errorf("%s: the GGUF has no embedded tokenizer (tokenizer.ggml.* keys)", path)
	}
	tok, err := TokenizerFromGGUF(info)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkVocab(w, tok, path); err != nil {
		return nil, err
	}
	return &Model{Weights: w, Tok: tok, Source: path}, nil
}

// checkVocab refuses a tokenizer that can produce ids the embedding has no row for.
func checkVocab(w *model.Weights, tok *tokenizer.Tokenizer, source string) error {
	if tok.VocabSize() > w.Config.VocabSize {
		return fmt.Errorf("%s: the tokenizer has %d tokens but the model's vocab_size is %d", source, tok.VocabSize(), w.Config.VocabSize)
	}
	return nil
}

// TokenizerFromGGUF rebuilds a SentencePiece tokenizer from the pieces a GGUF embeds.
func TokenizerFromGGUF(info *gguf.TokenizerInfo) (*tokenizer.Tokenizer, error) {
	if info.Model != tokenizer.KindLlama {
		return nil, fmt.Errorf("embedded tokenizer %q: only SentencePiece (\"llama\") GGUF tokenizers can be loaded; use the HF directory for byte-level BPE models", info.Model)
	}
	pieces := make([]tokenizer.Piece, len(info.Tokens))
	for i, text := range info.Tokens {
		p := tokenizer.Piece{Text: text, Type: tokenizer.TypeNormal}
		if i < len(info.Scores) {
			p.Score = info.Scores[i]
		}
		if i < len(info.Types) {
			p.Type = info.Types[i]
		}
		pieces[i] = p
	}
	name := func(id int32) string {
		if id >= 0 && int(id) < len(info.Tokens) {
			return info.Tokens[id]
		}
		return ""
	}
	opts := tokenizer.SPOptions{
		ByteFallback:   hasBytePieces(pieces),
		AddDummyPrefix: info.AddSpacePrefix == nil || *info.AddSpacePrefix,
		UnkPiece:       name(info.UNK), BOSPiece: name(info.BOS), EOSPiece: name(info.EOS), PadPiece: name(info.PAD),
		ChatTemplate: info.ChatTemplate,
	}
	if info.RemoveExtraWhitespaces != nil {
		opts.RemoveExtraWhitespaces = *info.RemoveExtraWhitespaces
	}
	return tokenizer.NewSentencePiece(pieces, opts)
}

func hasBytePieces(pieces []tokenizer.Piece) bool {
	for _, p := range pieces {
		if p.Type == tokenizer.TypeByte {
			return true
		}
	}
	return false
}

// GGUFTokenizer is the tokenizer as a GGUF embeds it.
func GGUFTokenizer(tok *tokenizer.Tokenizer) *gguf.TokenizerInfo {
	tokens, scores, types := tok.Pieces()
	info := &gguf.TokenizerInfo{
		Model: tok.Kind(), Tokens: tokens, Scores: scores, Types: types, Merges: tok.Merges(),
		BOS: tok.BOS(), EOS: tok.EOS(), UNK: tok.UNK(), PAD: -1,
		AddBOS: tok.AddBOS(), AddEOS: tok.AddEOS(), ChatTemplate: tok.ChatTemplate(),
	}
	if pad, ok := tok.PAD(); ok {
		info.PAD = pad
	}
	if tok.Kind() == tokenizer.KindLlama {
		sp, ws := tok.AddSpacePrefix(), tok.RemoveExtraWhitespaces()
		info.AddSpacePrefix, info.RemoveExtraWhitespaces = &sp, &ws
	} else {
		info.Pre = tok.GGUFPre()
	}
	return info
}

// Save writes m as an HF directory: weights, config, and the tokenizer files. A model read from a
// GGUF gets a tokenizer.model and tokenizer_config.json rebuilt from the embedded pieces.
func Save(dir string, m *Model, opts hf.SaveOptions) error {
	if err := hf.Save(dir, m.Weights, opts); err != nil {
		return err
	}
	if m.Dir != "" {
		return hf.CopyTokenizerFiles(m.Dir, dir)
	}
	return WriteTokenizer(dir, m.Tok)
}

// WriteTokenizer writes a SentencePiece tokenizer.model and a tokenizer_config.json for tok.
func WriteTokenizer(dir string, tok *tokenizer.Tokenizer) error {
	if tok.Kind() != tokenizer.KindLlama {
		return fmt.Errorf("writing tokenizer to %s: only SentencePiece tokenizers can be rebuilt from a GGUF", dir)
	}
	tokens, scores, types := tok.Pieces()
	pieces := make([]tokenizer.Piece, len(tokens))
	for i := range tokens {
		pieces[i] = tokenizer.Piece{Text: tokens[i], Score: scores[i], Type: types[i]}
	}
	piece := func(id int32) string {
		if id >= 0 && int(id) < len(tokens) {
			return tokens[id]
		}
		return ""
	}
	pad, hasPad := tok.PAD()
	opts := tokenizer.SPOptions{
		ByteFallback: hasBytePieces(pieces), AddDummyPrefix: tok.AddSpacePrefix(), RemoveExtraWhitespaces: tok.RemoveExtraWhitespaces(),
		UnkPiece: piece(tok.UNK()), BOSPiece: piece(tok.BOS()), EOSPiece: piece(tok.EOS()),
	}
	if hasPad {
		opts.PadPiece = piece(pad)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing tokenizer: %w", err)
	}
	if err := tokenizer.WriteSentencePieceModel(filepath.Join(dir, "tokenizer.model"), pieces, opts); err != nil {
		return err
	}
	cfg := map[string]any{
		"add_bos_token": tok.AddBOS(), "add_eos_token": tok.AddEOS(),
		"bos_token": piece(tok.BOS()), "eos_token": piece(tok.EOS()), "unk_token": piece(tok.UNK()),
		"tokenizer_class": "LlamaTokenizer", "legacy": true, "clean_up_tokenization_spaces": false,
	}
	if hasPad {
		cfg["pad_token"] = piece(pad)
	} else {
		cfg["pad_token"] = nil
	}
	if t := tok.ChatTemplate(); t != "" {
		cfg["chat_template"] = t
	}
	return atomicfile.WriteJSON(filepath.Join(dir, "tokenizer_config.json"), cfg)
}

// IsGGUF reports whether path names a GGUF file by its extension.
func IsGGUF(path string) bool { return strings.EqualFold(filepath.Ext(path), ".gguf") }
