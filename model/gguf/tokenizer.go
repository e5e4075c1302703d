package gguf

import (
	"fmt"
)

// TokenizerInfo is the tokenizer embedded in a GGUF (the tokenizer.ggml.* keys). The integrator fills it
// from model/tokenizer: Model and Tokens/Scores/Types from Kind() and Pieces(), Merges from Merges() (gpt2
// only), the special ids and add_bos/add_eos flags, and ChatTemplate().
type TokenizerInfo struct {
	Model  string    // "llama" (SentencePiece) or "gpt2" (byte-level BPE)
	Tokens []string  // piece text by id
	Scores []float32 // SentencePiece scores by id; may be empty
	Types  []int32   // llama.cpp token types by id (TokenNormal, TokenControl, TokenByte, ...); may be empty
	Merges []string  // gpt2 merges, "a b" per line
	// Special ids; -1 means none (the key is left out). Read from a file, a missing key reads as -1.
	BOS, EOS, UNK int32
	PAD           int32
	AddBOS        bool
	AddEOS        bool
	ChatTemplate  string // tokenizer.chat_template, written when non-empty

	// Optional extras that llama.cpp's tokenizer honours; empty or nil leaves the key out, and llama.cpp
	// then uses its defaults ("default" pre-tokenizer, a space prefix for SentencePiece, whitespace kept).
	Pre                    string // tokenizer.ggml.pre, the gpt2 pre-tokenizer name ("llama-bpe", ...)
	AddSpacePrefix         *bool  // tokenizer.ggml.add_space_prefix: SentencePiece's add_dummy_prefix
	RemoveExtraWhitespaces *bool  // tokenizer.ggml.remove_extra_whitespaces: SentencePiece's normalizer flag
}

// Padding pieces fill the vocabulary up to the embedding's row count when a checkpoint's vocab_size is
// larger than its tokenizer (a common rounding to a multiple of 64), as convert_hf_to_gguf.py does.
const padScore = -1000

// tokenizerKV validates tok against a vocabulary of vocab rows and returns its metadata entries.
func tokenizerKV(tok *TokenizerInfo, vocab int) ([]kv, error) {
	switch tok.Model {
	case "llama", "gpt2":
	default:
		return nil, fmt.Errorf("tokenizer model %q is not supported (want \"llama\" or \"gpt2\")", tok.Model)
	}
	n := len(tok.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer has no tokens")
	}
	if n > vocab {
		return nil, fmt.Errorf("tokenizer has %d tokens but the model's vocab_size is %d", n, vocab)
	}
	if len(tok.Scores) != 0 && len(tok.Scores) != n {
		return nil, fmt.Errorf("tokenizer has %d scores for %d tokens", len(tok.Scores), n)
	}
	if len(tok.Types) != 0 && len(tok.Types) != n {
		return nil, fmt.Errorf("tokenizer has %d token types for %d tokens", len(tok.Types), n)
	}
	if len(tok.Merges) != 0 && tok.Model != "gpt2" {
		return nil, fmt.Errorf("tokenizer model %q has no merges, got %d", tok.Model, len(tok.Merges))
	}
	seen := make(map[string]int, vocab)
	for i, t := range tok.Tokens {
		if j, dup := seen[t]; dup {
			return nil, fmt.Errorf("tokenizer tokens %d and %d are both %q", j, i, t)
		}
		seen[t] = i
	}
	for i, t := range tok.Types {
		if t < TokenNormal || t > TokenByte {
			return nil, fmt.Errorf("tokenizer token %d (%q) has type %d, want 1..6", i, tok.Tokens[i], t)
		}
	}
	ids := []struct {
		key string
		id  int32
	}{
		{"tokenizer.ggml.bos_token_id", tok.BOS}, {"tokenizer.ggml.eos_token_id", tok.EOS},
		{"tokenizer.ggml.unknown_token_id", tok.UNK}, {"tokenizer.ggml.padding_token_id", tok.PAD},
	}
	for _, s := range ids {
		if s.id < -1 || int(s.id) >= vocab {
			return nil, fmt.Errorf("%s %d is outside the vocabulary (%d tokens; -1 means none)", s.key, s.id, vocab)
		}
	}

	tokens := append([]string(nil), tok.Tokens...)
	scores := make([]float32, n, vocab)
	copy(scores, tok.Scores)
	types := make([]int32, n, vocab)
	for i := range types {
		types[i] = TokenNormal
	}
	copy(types, tok.Types)
	for i := n; i < vocab; i++ {
		pad := fmt.Sprintf("[PAD%d]", i)
		if _, dup := seen[pad]; dup {
			return nil, fmt.Errorf("tokenizer already has a token %q, needed to pad the vocabulary to %d", pad, vocab)
		}
		tokens = append(tokens, pad)
		scores = append(scores, padScore)
		types = append(types, TokenUnused)
	}

	out := []kv{{"tokenizer.ggml.model", tok.Model}}
	if tok.Pre != "" {
		out = append(out, kv{"tokenizer.ggml.pre", tok.Pre})
	}
	out = append(out, kv{"tokenizer.ggml.tokens", tokens})
	if tok.Model == "llama" || len(tok.Scores) > 0 {
		// SentencePiece needs scores; a gpt2 vocabulary has none and llama.cpp does not ask for them.
		out = append(out, kv{"tokenizer.ggml.scores", scores})
	}
	out = append(out, kv{"tokenizer.ggml.token_type", types})
	if len(tok.Merges) > 0 {
		out = append(out, kv{"tokenizer.ggml.merges", append([]string(nil), tok.Merges...)})
	}
	for _, s := range ids {
		if s.id >= 0 {
			out = append(out, kv{s.key, uint32(s.id)})
		}
	}
	out = append(out,
		kv{"tokenizer.ggml.add_bos_token", tok.AddBOS},
		kv{"tokenizer.ggml.add_eos_token", tok.AddEOS},
	)
	if tok.AddSpacePrefix != nil {
		out = append(out, kv{"tokenizer.ggml.add_space_prefix", *tok.AddSpacePrefix})
	}
	if tok.RemoveExtraWhitespaces != nil {
		out = append(out, kv{"tokenizer.ggml.remove_extra_whitespaces", *tok.RemoveExtraWhitespaces})
	}
	if tok.ChatTemplate != "" {
		out = append(out, kv{"tokenizer.chat_template", tok.ChatTemplate})
	}
	return out, nil
}

// tokenizerFromKV reads the tokenizer.* keys; it returns nil when the file has no tokenizer.ggml.model.
// A missing add_bos_token reads as llama.cpp's default: true for "llama", false otherwise.
func (f *File) tokenizerFromKV() (*TokenizerInfo, error) {
	m, ok := f.KV["tokenizer.ggml.model"]
	if !ok {
		return nil, nil
	}
	model, ok := m.(string)
	if !ok {
		return nil, fmt.Errorf("%s: tokenizer.ggml.model is a %T, want a string", f.Path, m)
	}
	tok := &TokenizerInfo{Model: model, BOS: -1, EOS: -1, UNK: -1, PAD: -1, AddBOS: model == "llama"}
	var err error
	if tok.Tokens, err = f.stringArray("tokenizer.ggml.tokens", true); err != nil {
		return nil, err
	}
	if tok.Merges, err = f.stringArray("tokenizer.ggml.merges", false); err != nil {
		return nil, err
	}
	if v, ok := f.KV["tokenizer.ggml.scores"]; ok {
		s, ok := v.([]float32)
		if !ok {
			return nil, fmt.Errorf("%s: tokenizer.ggml.scores is a %T, want an array of float32", f.Path, v)
		}
		tok.Scores = s
	}
	if v, ok := f.KV["tokenizer.ggml.token_type"]; ok {
		ints, err := intArray(v)
		if err != nil {
			return nil, fmt.Errorf("%s: tokenizer.ggml.token_type: %w", f.Path, err)
		}
		tok.Types = make([]int32, len(ints))
		for i, t := range ints {
			tok.Types[i] = int32(t)
		}
	}
	n := len(tok.Tokens)
	if len(tok.Scores) != 0 && len(tok.Scores) != n || len(tok.Types) != 0 && len(tok.Types) != n {
		return nil, fmt.Errorf("%s: tokenizer has %d tokens, %d scores and %d token types", f.Path, n, len(tok.Scores), len(tok.Types))
	}
	for _, s := range []struct {
		key string
		dst *int32
	}{
		{"tokenizer.ggml.bos_token_id", &tok.BOS}, {"tokenizer.ggml.eos_token_id", &tok.EOS},
		{"tokenizer.ggml.unknown_token_id", &tok.UNK}, {"tokenizer.ggml.padding_token_id", &tok.PAD},
	} {
		id, ok, err := f.Uint(s.key)
		if err != nil {
			return nil, err
		}
		if ok {
			if id >= uint64(n) {
				return nil, fmt.Errorf("%s: %s %d is outside the vocabulary (%d tokens)", f.Path, s.key, id, n)
			}
			*s.dst = int32(id)
		}
	}
	for _, s := range []struct {
		key string
		dst *bool
	}{{"tokenizer.ggml.add_bos_token", &tok.AddBOS}, {"tokenizer.ggml.add_eos_token", &tok.AddEOS}} {
		if v, ok := f.KV[s.key]; ok {
			b, isBool := v.(bool)
			if !isBool {
				return nil, fmt.Errorf("%s: %s is a %T, want a bool", f.Path, s.key, v)
			}
			*s.dst = b
		}
	}
	for _, s := range []struct {
		key string
		dst **bool
	}{{"tokenizer.ggml.add_space_prefix", &tok.AddSpacePrefix}, {"tokenizer.ggml.remove_extra_whitespaces", &tok.RemoveExtraWhitespaces}} {
		if v, ok := f.KV[s.key]; ok {
			b, isBool := v.(bool)
			if !isBool {
				return nil, fmt.Errorf("%s: %s is a %T, want a bool", f.Path, s.key, v)
			}
			*s.dst = &b
		}
	}
	if tok.Pre, _, err = f.String("tokenizer.ggml.pre"); err != nil {
		return nil, err
	}
	if tok.ChatTemplate, _, err = f.String("tokenizer.chat_template"); err != nil {
		return nil, err
	}
	return tok, nil
}
