package tokenizer

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

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
	ignoreMerges   bool
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
	IgnoreMerges            bool             `json:"ignore_merges"`
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
	spec := &bpeSpec{ignoreMerges: m.IgnoreMerges}
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
	if n > len(m.Vocab)+maxIDGap {
		return nil, fmt.Errorf("model: vocab id %d leaves %d ids unassigned (%d tokens); at most %d may be", n-1, n-len(m.Vocab), len(m.Vocab), maxIDGap)
	}
	b.pieces = make([]string, n)
	b.types = make([]int32, n)
	b.fromModel = make([]bool, n)
	for tok, id := range m.Vocab {
		if b.fromModel[id] {
			first, second := min(b.pieces[id], tok), max(b.pieces[id], tok) // map order is random
			return nil, fmt.Errorf("model: vocab id %d given to both %q and %q", id, first, second)
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
			return false, fmt.Errorf("type Sequence: %w", err)
		}
		for i, p := range seq.Pretokenizers {
			bl, err := spec.parsePreTokenizer(p, first && i == 0)
			if err != nil {
				return false, fmt.Errorf("pretokenizers[%d]: %w", i, err)
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
			return false, fmt.Errorf("type Split: %w", err)
		}
		if sp.Behavior != "Isolated" || sp.Invert {
			return false, fmt.Errorf("type Split: behavior %q (invert %v) is not supported (only Isolated)", sp.Behavior, sp.Invert)
		}
		var re string
		switch {
		case sp.Pattern.Regex != nil:
			re = *sp.Pattern.Regex
		case sp.Pattern.String != nil:
			re = regexp.QuoteMeta(*sp.Pattern.String)
		default:
			return false, errors.New("type Split: pattern has neither Regex nor String")
		}
		if _, err := newSplitter(re); err != nil {
			return false, fmt.Errorf("type Split: %w", err)
		}
		spec.regexps = append(spec.regexps, re)
		return false, nil
	case "Digits":
		var d struct {
			IndividualDigits bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return false, fmt.Errorf("type Digits: %w", err)
		}
		if d.IndividualDigits {
			spec.regexps = append(spec.regexps, `\p{N}`)
		} else {
			spec.regexps = append(spec.regexps, `\p{N}+`)
		}
		return false, nil
	}
	return false, fmt.Errorf("type %q is not supported (supported: ByteLevel, Split, Digits, Sequence)", t.Type)
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
			return nil, fmt.Errorf("type Sequence: %w", err)
		}
		var out *norm.Form
		for i, n := range seq.Normalizers {
			f, err := parseNormalizer(n)
			if err != nil {
				return nil, fmt.Errorf("normalizers[%d]: %w", i, err)
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
	return nil, fmt.Errorf("type %q is not supported (supported: NFC, NFD, NFKC, NFKD, Sequence)", t.Type)
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
			return fmt.Errorf("type Sequence: %w", err)
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
	return fmt.Errorf("type %q is not supported (supported: ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing, Sequence)", t.Type)
}

// bpeText is byte-level BPE as Hugging Face's tokenizers runs it: optional Unicode
// normalization and prefix space, the pre-tokenizer regexes, GPT-2's byte-to-character map, then
// merges by rank (lowest first, leftmost on ties). ollama's BytePairEncoding always takes a
// pre-token that is itself in the vocabulary whole, which is Hugging Face's ignore_merges=true
// (Llama 3) but not GPT-2's default; so this package merges itself, honouring the flag.
type bpeText struct {
	splitters      []splitter
	addPrefixSpace bool
	normalize      *norm.Form
	ignoreMerges   bool
	vocab          map[string]int32 // byte-level strings of the model vocabulary (no added tokens)
	byteID         [256]int32       // id of each byte's character, -1 if the vocabulary lacks it
	merges         map[uint64]bpeMerge
}

type bpeMerge struct {
	rank, id int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// newBPEText indexes the model vocabulary and merges. Added tokens are not in it: the Tokenizer
// matches them itself, so no pre-token can ever become one.
func newBPEText(b *base) (*bpeText, error) {
	e := &bpeText{
		addPrefixSpace: b.bpe.addPrefixSpace,
		normalize:      b.bpe.normalize,
		ignoreMerges:   b.bpe.ignoreMerges,
		vocab:          make(map[string]int32, len(b.pieces)),
		merges:         make(map[uint64]bpeMerge, len(b.bpe.merges)),
	}
	for _, re := range b.bpe.regexps {
		sp, err := newSplitter(re)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer: %w", err)
		}
		e.splitters = append(e.splitters, sp)
	}
	for id, p := range b.pieces {
		if b.fromModel[id] {
			e.vocab[p] = int32(id)
		}
	}
	chars := byteChars()
	for c := range 256 {
		e.byteID[c] = -1
		if id, ok := e.vocab[string(chars[c])]; ok {
			e.byteID[c] = id
		}
	}
	for rank, m := range b.bpe.merges {
		left, right, _ := strings.Cut(m, " ")
		a, okA := e.vocab[left]
		c, okB := e.vocab[right]
		id, okM := e.vocab[left+right]
		if !okA || !okB || !okM {
			return nil, fmt.Errorf("model: merge %d %q: a token or the merged token is not in the vocabulary", rank, m)
		}
		if _, dup := e.merges[pairKey(a, c)]; !dup {
			e.merges[pairKey(a, c)] = bpeMerge{rank: int32(rank), id: id}
		}
	}
	return e, nil
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
	var ids []int32
	for _, word := range e.split(s) {
		ids = e.encodeWord(ids, word)
	}
	return ids
}

// split applies the pre-tokenizer splitters in turn, each to the pieces of the last, keeping both
// matches and the text between them (Split with behavior Isolated).
func (e *bpeText) split(s string) []string {
	parts := []string{s}
	for _, sp := range e.splitters {
		next := make([]string, 0, len(parts)+len(s)/4)
		for _, part := range parts {
			next = sp.split(part, next)
		}
		parts = next
	}
	return parts
}

// bpeSym is a symbol of a word being merged, in a linked list by index.
type bpeSym struct {
	id         int32
	prev, next int
	gone       bool
}

// encodeWord appends the ids of one pre-token.
func (e *bpeText) encodeWord(ids []int32, word string) []int32 {
	if e.ignoreMerges {
		if id, ok := e.vocab[byteLevelString(word)]; ok {
			return append(ids, id)
		}
	}
	syms := make([]bpeSym, 0, len(word))
	for i := 0; i < len(word); i++ {
		id := e.byteID[word[i]]
		if id < 0 {
			// Hugging Face's BPE without unk_token drops a character it has no token for.
			continue
		}
		syms = append(syms, bpeSym{id: id, prev: len(syms) - 1, next: len(syms) + 1})
	}
	if len(syms) == 0 {
		return ids
	}
	syms[len(syms)-1].next = -1
	q := &mergeQueue{}
	push := func(pos int) {
		if pos < 0 || syms[pos].next < 0 {
			return
		}
		if m, ok := e.merges[pairKey(syms[pos].id, syms[syms[pos].next].id)]; ok {
			heap.Push(q, mergeCand{rank: m.rank, pos: pos, id: m.id})
		}
	}
	for pos := range syms {
		push(pos)
	}
	for q.Len() > 0 {
		c := heap.Pop(q).(mergeCand)
		left := &syms[c.pos]
		if left.gone || left.next < 0 {
			continue
		}
		// The pair may have changed since it was queued: merge only if it still gives this id.
		if m, ok := e.merges[pairKey(left.id, syms[left.next].id)]; !ok || m.id != c.id {
			continue
		}
		right := &syms[left.next]
		left.id, right.gone = c.id, true
		left.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = c.pos
		}
		push(left.prev)
		push(c.pos)
	}
	for pos := 0; pos >= 0; pos = syms[pos].next {
		ids = append(ids, syms[pos].id)
	}
	return ids
}

type mergeCand struct {
	rank int32
	pos  int
	id   int32
}

// mergeQueue orders merge candidates by rank, then position, as Hugging Face's BPE does.
type mergeQueue []mergeCand

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	return q[i].rank < q[j].rank || (q[i].rank == q[j].rank && q[i].pos < q[j].pos)
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(mergeCand)) }
func (q *mergeQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	*q = old[:len(old)-1]
	return c
}

// byteCharTable is byteChars(), computed once; it is never written after.
var byteCharTable = byteChars()

// byteChars is GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other
// 68 bytes for U+0100 onwards in byte order.
func byteChars() [256]rune {
	var out [256]rune
	next := rune(256)
	for c := range 256 {
		if (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF) {
			out[c] = rune(c)
		} else {
			out[c] = next
			next++
		}
	}
	return out
}

// byteLevelString maps a string's bytes to their byte-level characters.
func byteLevelString(s string) string {
	chars := &byteCharTable
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteRune(chars[s[i]])
	}
	return b.String()
}

// byteTable maps GPT-2's byte-level characters back to bytes.
type byteTable map[rune]byte

func byteDecoder() byteTable {
	dec := make(byteTable, 256)
	for c, r := range byteChars() {
		dec[r] = byte(c)
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
