package tokenizer

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Token types, numbered as both SentencePiece's ModelProto and llama.cpp's GGUF token_type do.
const (
	TypeNormal      int32 = 1
	TypeUnknown     int32 = 2
	TypeControl     int32 = 3
	TypeUserDefined int32 = 4
	TypeUnused      int32 = 5
	TypeByte        int32 = 6
)

// Kinds, the GGUF tokenizer.ggml.model values.
const (
	KindLlama = "llama" // SentencePiece BPE with scores
	KindGPT2  = "gpt2"  // byte-level BPE with merges
)

// Span is a piece of text for EncodeSpans. Special=true means special-token strings inside it
// (e.g. "<s>", "<|im_start|>") become their ids; text from Special=false spans never does.
type Span struct {
	Text    string
	Special bool
}

// textEncoder encodes ordinary text that holds no added tokens: the model's own algorithm with its
// normalizer and pre-tokenizer.
type textEncoder interface {
	encode(s string) []int32
}

// Tokenizer turns text into token ids and back. It is immutable after it is built and safe for
// concurrent use.
type Tokenizer struct {
	kind   string
	pieces []string  // by id: the GGUF token text (SentencePiece piece, byte-level string, added token)
	scores []float32 // by id; nil for byte-level BPE, whose GGUF has no scores
	types  []int32   // by id, Type* constants
	merges []string  // byte-level BPE merges "a b"; nil for SentencePiece

	decoded [][]byte // by id: the bytes the token stands for; nil for control tokens
	index   map[string]int32

	text    textEncoder
	always  matcher // added tokens that split all text (non-special added tokens)
	special matcher // special tokens, recognised only inside Special spans

	// stripPrefixSpace: Decode removes one leading space, the SentencePiece dummy prefix.
	stripPrefixSpace bool
	addSpacePrefix   bool // SentencePiece normalizer add_dummy_prefix (GGUF add_space_prefix)
	removeExtraWS    bool // SentencePiece normalizer remove_extra_whitespaces
	pre              string

	bos, eos, unk, pad int32 // -1 when the tokenizer has none
	eosIDs             []int32
	addBOS, addEOS     bool
	chatTemplate       string
	chatTemplateFile   string
	files              []string
}

// Encode encodes plain text. Special-token strings in it stay text; BOS is prepended when addBOS is
// true and the tokenizer has one. EOS is never added here (see AddEOS).
func (t *Tokenizer) Encode(text string, addBOS bool) []int32 {
	var ids []int32
	if addBOS && t.bos >= 0 {
		ids = append(ids, t.bos)
	}
	return append(ids, t.encodePlain(text)...)
}

// EncodeSpans encodes a rendered chat template. Special spans are split at special tokens, and each
// maximal run of ordinary text, joined across span boundaries, is encoded as one string, so the ids
// equal tokenizing the whole rendered string with special-token parsing, except that text from
// Special=false spans never becomes a special token.
func (t *Tokenizer) EncodeSpans(spans []Span, addBOS bool) []int32 {
	var ids []int32
	if addBOS && t.bos >= 0 {
		ids = append(ids, t.bos)
	}
	var run strings.Builder
	stripLeft := false // the previous special token rstrips: drop whitespace at the start of this run
	flush := func(lstrip bool) {
		s := run.String()
		run.Reset()
		if stripLeft {
			s = strings.TrimLeftFunc(s, unicode.IsSpace)
		}
		if lstrip {
			s = strings.TrimRightFunc(s, unicode.IsSpace)
		}
		ids = append(ids, t.encodePlain(s)...)
	}
	for _, sp := range spans {
		if !sp.Special {
			run.WriteString(sp.Text)
			continue
		}
		rest := sp.Text
		for {
			start, tok, ok := t.special.find(rest)
			if !ok {
				run.WriteString(rest)
				break
			}
			run.WriteString(rest[:start])
			flush(tok.lstrip)
			ids = append(ids, tok.id)
			stripLeft = tok.rstrip
			rest = rest[start+len(tok.content):]
		}
	}
	flush(false)
	return ids
}

// encodePlain splits text at the added tokens that apply to all text, then encodes the rest with
// the model's own algorithm.
func (t *Tokenizer) encodePlain(s string) []int32 {
	var ids []int32
	stripLeft := false
	for {
		start, tok, ok := t.always.find(s)
		seg := s
		if ok {
			seg = s[:start]
		}
		if stripLeft {
			seg = strings.TrimLeftFunc(seg, unicode.IsSpace)
		}
		if ok && tok.lstrip {
			seg = strings.TrimRightFunc(seg, unicode.IsSpace)
		}
		ids = append(ids, t.text.encode(seg)...)
		if !ok {
			return ids
		}
		ids = append(ids, tok.id)
		stripLeft = tok.rstrip
		s = s[start+len(tok.content):]
	}
}

// Decode turns ids into text. Control ids (BOS, EOS, chat special tokens) are dropped, byte pieces
// become their bytes, and for SentencePiece one leading space (the dummy prefix) is removed. Ids out
// of range are skipped.
func (t *Tokenizer) Decode(ids []int32) string {
	var b []byte
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.decoded) {
			b = append(b, t.decoded[id]...)
		}
	}
	if t.stripPrefixSpace && len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return string(b)
}

// DecodeToken is the text one token stands for, for streaming: byte pieces are their raw byte (so
// a character split over byte pieces arrives over several calls), SentencePiece "▁" is a space
// (the dummy prefix is not removed), control tokens and ids out of range are "".
func (t *Tokenizer) DecodeToken(id int32) string {
	if id < 0 || int(id) >= len(t.decoded) {
		return ""
	}
	return string(t.decoded[id])
}

// VocabSize is the number of token ids, added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// BOS is the beginning-of-sequence id, -1 if the tokenizer has none.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS is the first end-of-sequence id (the tokenizer's eos_token), -1 if none.
func (t *Tokenizer) EOS() int32 { return t.eos }

// EOSIDs are all ids that end generation: EOS first, then those generation_config.json adds.
func (t *Tokenizer) EOSIDs() []int32 { return slices.Clone(t.eosIDs) }

// UNK is the unknown-token id, -1 if none.
func (t *Tokenizer) UNK() int32 { return t.unk }

// PAD is the padding id and whether the tokenizer has one.
func (t *Tokenizer) PAD() (int32, bool) { return t.pad, t.pad >= 0 }

// AddBOS says whether sequences start with BOS (tokenizer_config.json add_bos_token, else the
// model's convention: true for SentencePiece, the post-processor's template for tokenizer.json).
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// AddEOS says whether sequences end with EOS (tokenizer_config.json add_eos_token).
func (t *Tokenizer) AddEOS() bool { return t.addEOS }

// IsControl says whether id is a control token: one Decode drops.
func (t *Tokenizer) IsControl(id int32) bool {
	return id >= 0 && int(id) < len(t.types) && t.types[id] == TypeControl
}

// Kind is "llama" (SentencePiece) or "gpt2" (byte-level BPE), GGUF's tokenizer.ggml.model value.
func (t *Tokenizer) Kind() string { return t.kind }

// Pieces returns, by id, the token texts, scores and llama.cpp token types for GGUF export. Scores
// is nil for byte-level BPE, whose GGUF carries no tokenizer.ggml.scores.
func (t *Tokenizer) Pieces() (tokens []string, scores []float32, types []int32) {
	return slices.Clone(t.pieces), slices.Clone(t.scores), slices.Clone(t.types)
}

// Merges are the BPE merges ("a b") of a byte-level tokenizer, nil for SentencePiece.
func (t *Tokenizer) Merges() []string { return slices.Clone(t.merges) }

// ChatTemplate is tokenizer_config.json's chat_template (or chat_template.jinja), "" if none.
func (t *Tokenizer) ChatTemplate() string { return t.chatTemplate }

// ChatTemplateFile is the file ChatTemplate came from (tokenizer_config.json or
// chat_template.jinja, as its path), "" if there is no template.
func (t *Tokenizer) ChatTemplateFile() string { return t.chatTemplateFile }

// Files are the tokenizer files it was loaded from, to copy into output model directories.
// generation_config.json, read only for extra EOS ids, is not among them.
func (t *Tokenizer) Files() []string { return slices.Clone(t.files) }

// AddSpacePrefix is the SentencePiece normalizer's add_dummy_prefix (GGUF
// tokenizer.ggml.add_space_prefix); false for byte-level BPE.
func (t *Tokenizer) AddSpacePrefix() bool { return t.addSpacePrefix }

// RemoveExtraWhitespaces is the SentencePiece normalizer's remove_extra_whitespaces (GGUF
// tokenizer.ggml.remove_extra_whitespaces); false for byte-level BPE.
func (t *Tokenizer) RemoveExtraWhitespaces() bool { return t.removeExtraWS }

// GGUFPre is llama.cpp's tokenizer.ggml.pre name: "default" for SentencePiece, "gpt-2", "llama-bpe"
// or "qwen2" for byte-level BPE whose pre-tokenizer regexes are those models' exactly, "" when the
// regexes match no name known here (an exporter must then refuse, as llama.cpp's converter does).
func (t *Tokenizer) GGUFPre() string { return t.pre }

// TokenID looks up the id of an exact token text: a piece ("▁the", "<0x0A>", byte-level "Ġthe")
// or an added token ("<|im_start|>").
func (t *Tokenizer) TokenID(piece string) (int32, bool) {
	id, ok := t.index[piece]
	return id, ok
}

// addedToken is a token matched as a whole string before the model's algorithm runs.
type addedToken struct {
	content        string
	id             int32
	lstrip, rstrip bool // swallow whitespace on the left / right, as Hugging Face's AddedToken
}

// matcher finds added tokens leftmost-longest, as Hugging Face's added-vocabulary trie and
// llama.cpp's special-token partition do.
type matcher struct {
	byFirst [256][]addedToken // by first byte, longest first
	n       int
}

func newMatcher(toks []addedToken) matcher {
	var m matcher
	for _, tok := range toks {
		if tok.content == "" {
			continue
		}
		c := tok.content[0]
		m.byFirst[c] = append(m.byFirst[c], tok)
		m.n++
	}
	for i := range m.byFirst {
		slices.SortStableFunc(m.byFirst[i], func(a, b addedToken) int { return len(b.content) - len(a.content) })
	}
	return m
}

// find returns the byte offset and token of the leftmost-longest match in s.
func (m *matcher) find(s string) (int, addedToken, bool) {
	if m.n == 0 {
		return 0, addedToken{}, false
	}
	for i := 0; i < len(s); i++ {
		for _, tok := range m.byFirst[s[i]] {
			if strings.HasPrefix(s[i:], tok.content) {
				return i, tok, true
			}
		}
	}
	return 0, addedToken{}, false
}

// validUTF8 replaces every byte of invalid UTF-8 with U+FFFD, as SentencePiece's normalizer does,
// so the encoders only ever see valid text.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
