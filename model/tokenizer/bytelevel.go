package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	ollama "github.com/ollama/ollama/tokenizer"
	"golang.org/x/text/unicode/norm"
)

// Pre-tokenizer regexes of models llama.cpp knows by name (tokenizer.ggml.pre).
const (
	// GPT-2's ByteLevel pre-tokenizer regex (use_regex=true).
	gpt2Regex = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// Llama 3's Split regex.
	llama3Regex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// Qwen2's Split regex: Llama 3's with single digits.
	qwen2Regex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func ggufPre(regexps []string) string {
	if len(regexps) != 1 {
		return ""
	}
	switch regexps[0] {
	case gpt2Regex:
		return "gpt-2"
	case llama3Regex:
		return "llama-bpe"
	case qwen2Regex:
		return "qwen2"
	}
	return ""
}

// bpeSpec is a byte-level BPE model as tokenizer.json describes it.
type bpeSpec struct {
	merges         []string
	regexps        []string // pre-tokenizer regexes, applied in order (each splits the last's pieces)
	addPrefixSpace bool
	normalize      *norm.Form
}

// tokenizerJSON is the part of a Hugging Face tokenizer.json read here.
type tokenizerJSON struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         json.RawMessage `json:"model"`
}

type bpeModelJSON struct {
	Type                    string           `json:"type"`
	Vocab                   map[string]int32 `json:"vocab"`
	Merges                  json.RawMessage  `json:"merges"`
	UnkToken                *string          `json:"unk_token"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
	ByteFallback            bool             `json:"byte_fallback"`
}

// parseTokenizerJSON reads a byte-level BPE tokenizer.json into a base. Errors name no file; the
// caller adds it.
func parseTokenizerJSON(data []byte) (*base, error) {
	var tj tokenizerJSON
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if isNull(tj.Model) {
		return nil, errors.New(`not a tokenizer.json: no "model" object`)
	}
	var m bpeModelJSON
	if err := json.Unmarshal(tj.Model, &m); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if m.Type == "" && m.Vocab != nil && len(m.Merges) > 0 {
		m.Type = "BPE" // tokenizers before 0.10 wrote no type
	}
	if m.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", m.Type)
	}
	if (m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "") || (m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "") {
		return nil, errors.New("model: continuing_subword_prefix / end_of_word_suffix are not supported")
	}
	spec := &bpeSpec{}
	byteLevel, err := spec.parsePreTokenizer(tj.PreTokenizer, true)
	if err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if !byteLevel || m.ByteFallback {
		return nil, errors.New("model: BPE without a ByteLevel pre-tokenizer (SentencePiece-style) is not supported; load its tokenizer.model")
	}
	if spec.normalize, err = parseNormalizer(tj.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	if spec.merges, err = parseMerges(m.Merges); err != nil {
		return nil, fmt.Errorf("model: merges: %w", err)
	}

	b := &base{kind: KindGPT2, added: map[int32]addedSpec{}, bos: -1, eos: -1, unk: -1, pad: -1, bpe: spec}
	n := 0
	for tok, id := range m.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("model: vocab %q: negative id %d", tok, id)
		}
		n = max(n, int(id)+1)
	}
	if n == 0 {
		return nil, errors.New("model: empty vocab")
	}
	if n > 1<<24 {
		return nil, fmt.Errorf("model: vocab id %d is implausibly large", n-1)
	}
	b.pieces = make([]string, n)
	b.types = make([]int32, n)
	b.fromModel = make([]bool, n)
	for tok, id := range m.Vocab {
		if b.fromModel[id] {
			return nil, fmt.Errorf("model: vocab id %d given to both %q and %q", id, b.pieces[id], tok)
		}
		b.pieces[id], b.types[id], b.fromModel[id] = tok, TypeNormal, true
	}
	for id := range n {
		if !b.fromModel[id] {
			// llama.cpp's converter fills holes the same way.
			b.pieces[id], b.types[id] = fmt.Sprintf("[PAD%d]", id), TypeUnused
		}
	}
	for i, a := range tj.AddedTokens {
		if a.ID == nil {
			return nil, fmt.Errorf("added_tokens[%d] %q: no id", i, a.Content)
		}
		if err := b.addToken(*a.ID, a.spec()); err != nil {
			return nil, fmt.Errorf("added_tokens[%d]: %w", i, err)
		}
	}
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model: unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		b.unk = id
	}
	if err := b.parsePostProcessor(tj.PostProcessor); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	return b, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// parseMerges reads merges as "a b" strings or, in newer files, ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		for i, s := range strs {
			if strings.Count(s, " ") != 1 {
				return nil, fmt.Errorf("merge %d %q is not two tokens separated by a space", i, s)
			}
		}
		return strs, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, errors.New(`want a list of "a b" strings or of ["a", "b"] pairs`)
	}
	strs = make([]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 || strings.Contains(p[0], " ") || strings.Contains(p[1], " ") {
			return nil, fmt.Errorf("merge %d %q is not a pair of tokens without spaces", i, p)
		}
		strs[i] = p[0] + " " + p[1]
	}
	return strs, nil
}

type typed struct {
	Type string `json:"type"`
}

// parsePreTokenizer collects the regexes of Split, ByteLevel and Digits pre-tokenizers in order
// and reports whether a ByteLevel one is among them. first says whether nothing has split the
// text yet, the only place ByteLevel's add_prefix_space can go in ollama's single-prefix model.
func (spec *bpeSpec) parsePreTokenizer(raw json.RawMessage, first bool) (byteLevel bool, err error) {
	if isNull(raw) {
		return false, nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return false, errors.New("want an object with a type")
	}
	switch t.Type {
	case "Sequence":
		var seq struct {
			Pretokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return false, fmt.Errorf("Sequence: %w", err)
		}
		for i, p := range seq.Pretokenizers {
			bl, err := spec.parsePreTokenizer(p, first && i == 0)
			if err != nil {
				return false, err
			}
			byteLevel = byteLevel || bl
		}
		return byteLevel, nil
	case "ByteLevel":
		var bl struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"` // absent means true
		}
		if err := json.Unmarshal(raw, &bl); err != nil {
			return false, fmt.Errorf("ByteLevel: %w", err)
		}
		if bl.AddPrefixSpace {
			if !first {
				return false, errors.New("ByteLevel add_prefix_space after another pre-tokenizer is not supported")
			}
			spec.addPrefixSpace = true
		}
		if bl.UseRegex == nil || *bl.UseRegex {
			spec.regexps = append(spec.regexps, gpt2Regex)
		}
		return true, nil
	case "Split":
		var sp struct {
			Pattern struct {
				Regex  *string `json:"Regex"`
				String *string `json:"String"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}
		if err := json.Unmarshal(raw, &sp); err != nil {
			return false, fmt.Errorf("Split: %w", err)
		}
		if sp.Behavior != "Isolated" || sp.Invert {
			return false, fmt.Errorf("Split behavior %q (invert %v) is not supported (only Isolated)", sp.Behavior, sp.Invert)
		}
		var re string
		switch {
		case sp.Pattern.Regex != nil:
			re = *sp.Pattern.Regex
		case sp.Pattern.String != nil:
			re = regexp2.Escape(*sp.Pattern.String)
		default:
			return false, errors.New("Split: pattern has neither Regex nor String")
		}
		// ollama compiles with MustCompile; a bad pattern must be an error here, not a panic there.
		if _, err := regexp2.Compile(re, regexp2.RE2); err != nil {
			return false, fmt.Errorf("Split: regex %q: %w", re, err)
		}
		spec.regexps = append(spec.regexps, re)
		return false, nil
	case "Digits":
		var d struct {
			IndividualDigits bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return false, fmt.Errorf("Digits: %w", err)
		}
		if d.IndividualDigits {
			spec.regexps = append(spec.regexps, `\p{N}`)
		} else {
			spec.regexps = append(spec.regexps, `\p{N}+`)
		}
		return false, nil
	}
	return false, fmt.Errorf("type %q is not supported", t.Type)
}

// parseNormalizer accepts no normalizer or Unicode normal forms (alone or in a Sequence).
func parseNormalizer(raw json.RawMessage) (*norm.Form, error) {
	if isNull(raw) {
		return nil, nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, errors.New("want an object with a type")
	}
	forms := map[string]norm.Form{"NFC": norm.NFC, "NFD": norm.NFD, "NFKC": norm.NFKC, "NFKD": norm.NFKD}
	if f, ok := forms[t.Type]; ok {
		return &f, nil
	}
	if t.Type == "Sequence" {
		var seq struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return nil, fmt.Errorf("Sequence: %w", err)
		}
		var out *norm.Form
		for _, n := range seq.Normalizers {
			f, err := parseNormalizer(n)
			if err != nil {
				return nil, err
			}
			if f != nil {
				if out != nil {
					return nil, errors.New("more than one Unicode normal form is not supported")
				}
				out = f
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("type %q is not supported", t.Type)
}

// parsePostProcessor takes BOS/EOS and whether to add them from TemplateProcessing (Llama 3),
// RobertaProcessing or BertProcessing; ByteLevel adds nothing.
func (b *base) parsePostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return errors.New("want an object with a type")
	}
	lookup := func(content string) (int32, error) {
		for id, p := range b.pieces {
			if p == content {
				return int32(id), nil
			}
		}
		return -1, fmt.Errorf("token %q is not in the vocabulary", content)
	}
	switch t.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		var seq struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return fmt.Errorf("Sequence: %w", err)
		}
		for _, p := range seq.Processors {
			if err := b.parsePostProcessor(p); err != nil {
				return err
			}
		}
		return nil
	case "TemplateProcessing":
		var tp struct {
			Single []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
		}
		if err := json.Unmarshal(raw, &tp); err != nil {
			return fmt.Errorf("TemplateProcessing: %w", err)
		}
		seen := false
		for _, item := range tp.Single {
			switch {
			case item.Sequence != nil:
				seen = true
			case item.SpecialToken != nil:
				id, err := lookup(item.SpecialToken.ID)
				if err != nil {
					return fmt.Errorf("TemplateProcessing: %w", err)
				}
				if !seen && !b.addBOS {
					b.bos, b.addBOS = id, true
				} else if seen && !b.addEOS {
					b.eos, b.addEOS = id, true
				}
			}
		}
		return nil
	case "RobertaProcessing", "BertProcessing":
		var rp struct {
			Sep []json.RawMessage `json:"sep"`
			Cls []json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &rp); err != nil || len(rp.Sep) != 2 || len(rp.Cls) != 2 {
			return fmt.Errorf("%s: want sep and cls as [token, id]", t.Type)
		}
		var cls, sep string
		if json.Unmarshal(rp.Cls[0], &cls) != nil || json.Unmarshal(rp.Sep[0], &sep) != nil {
			return fmt.Errorf("%s: want sep and cls as [token, id]", t.Type)
		}
		var err error
		if b.bos, err = lookup(cls); err != nil {
			return fmt.Errorf("%s: %w", t.Type, err)
		}
		if b.eos, err = lookup(sep); err != nil {
			return fmt.Errorf("%s: %w", t.Type, err)
		}
		b.addBOS, b.addEOS = true, true
		return nil
	}
	return fmt.Errorf("type %q is not supported", t.Type)
}

// bpeText is byte-level BPE encoding: optional Unicode normalization and prefix space, then
// ollama's pre-tokenizer split and merges.
type bpeText struct {
	enc            ollama.BytePairEncoding
	addPrefixSpace bool
	normalize      *norm.Form
}

// newBPEText gives ollama the byte-level vocabulary with added tokens hidden (they are matched by
// the Tokenizer itself), so that no pre-tokenized word can ever equal one.
func newBPEText(b *base) (*bpeText, error) {
	for _, re := range b.bpe.regexps {
		if _, err := regexp2.Compile(re, regexp2.RE2); err != nil {
			return nil, fmt.Errorf("pre-tokenizer regex %q: %w", re, err)
		}
	}
	n := len(b.pieces)
	vocab := &ollama.Vocabulary{
		Values: make([]string, n),
		Types:  make([]int32, n),
		Merges: b.bpe.merges,
	}
	for id := range n {
		vocab.Values[id], vocab.Types[id] = b.pieces[id], ollama.TOKEN_TYPE_NORMAL
		if _, isAdded := b.added[int32(id)]; isAdded || !b.fromModel[id] {
			vocab.Values[id] = unreachable(id)
		}
	}
	return &bpeText{
		enc:            ollama.NewBytePairEncoding(vocab, slices.Clone(b.bpe.regexps)...),
		addPrefixSpace: b.bpe.addPrefixSpace,
		normalize:      b.bpe.normalize,
	}, nil
}

func (e *bpeText) encode(s string) []int32 {
	if s == "" {
		return nil
	}
	s = validUTF8(s)
	if e.normalize != nil {
		s = e.normalize.String(s)
	}
	if e.addPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	// ollama v0.17.4's BytePairEncoding.Encode has no failing path (see spText.encode).
	ids, err := e.enc.Encode(s, false)
	if err != nil {
		return nil
	}
	return ids
}

// byteTable maps GPT-2's byte-level alphabet back to bytes: printable Latin-1 bytes stand for
// themselves, the other 68 bytes for U+0100 onwards in byte order (bytes_to_unicode in GPT-2's
// encoder.py).
type byteTable map[rune]byte

func byteDecoder() byteTable {
	dec := make(byteTable, 256)
	next := rune(256)
	for c := range 256 {
		printable := (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)
		if printable {
			dec[rune(c)] = byte(c)
		} else {
			dec[next] = byte(c)
			next++
		}
	}
	return dec
}

// decode turns a byte-level token string into its bytes; a character outside the alphabet
// (possible only in a malformed vocabulary) is kept as its UTF-8.
func (d byteTable) decode(tok string) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		if c, ok := d[r]; ok {
			out = append(out, c)
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}
