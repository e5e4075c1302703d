package tokenizer

import (
	"fmt"
	"slices"
	"strings"
)

// addedSpec is an added token as tokenizer.json's added_tokens and tokenizer_config.json's
// added_tokens_decoder describe it.
type addedSpec struct {
	content        string
	special        bool
	lstrip, rstrip bool
}

// base is a vocabulary with its model's defaults, before it becomes a Tokenizer.
type base struct {
	kind   string
	pieces []string
	scores []float32 // nil for byte-level BPE
	types  []int32
	// added are tokens matched as whole strings before the model's algorithm runs, by id.
	added map[int32]addedSpec
	// fromModel marks byte-level ids whose text is a byte-level vocabulary string (decoded through
	// the byte table) rather than raw added-token text.
	fromModel []bool

	bos, eos, unk, pad int32
	addBOS, addEOS     bool

	sp  *spModel // SentencePiece model, for KindLlama
	bpe *bpeSpec // byte-level BPE model, for KindGPT2
}

func addedType(special bool) int32 {
	if special {
		return TypeControl
	}
	return TypeUserDefined
}

// maxIDGap bounds the unused ids a vocabulary may leave before a token id (each becomes a
// "[PADn]" token), so that a file naming id 2^31-1 is an error, not gigabytes of padding. Real
// vocabularies are dense.
const maxIDGap = 1 << 16

// addToken puts an added token into the vocabulary. Inside the model's range it keeps the model's
// text and type where they agree with it, as llama.cpp's converter does, so that exported GGUF
// vocabularies match; past the end it appends, filling gaps with unused "[PADn]" tokens.
func (b *base) addToken(id int32, a addedSpec) error {
	if id < 0 {
		return fmt.Errorf("added token %q: negative id %d", a.content, id)
	}
	if a.content == "" {
		return fmt.Errorf("added token %d: empty content", id)
	}
	if int(id) < len(b.pieces) {
		switch {
		case b.pieces[id] != a.content:
			b.pieces[id] = a.content
			b.types[id] = addedType(a.special)
			if b.fromModel != nil {
				b.fromModel[id] = false
			}
		case b.types[id] == TypeNormal || b.types[id] == TypeUnused:
			b.types[id] = addedType(a.special)
		}
		b.added[id] = a
		return nil
	}
	if gap := int(id) - len(b.pieces); gap > maxIDGap {
		return fmt.Errorf("added token %q: id %d lies %d ids past the end of the vocabulary (%d tokens); at most %d may", a.content, id, gap, len(b.pieces), maxIDGap)
	}
	for int(id) > len(b.pieces) {
		b.appendToken(fmt.Sprintf("[PAD%d]", len(b.pieces)), TypeUnused, 0)
	}
	// llama.cpp's converter scores tokens added past a SentencePiece vocabulary -1000.
	b.appendToken(a.content, addedType(a.special), -1000)
	b.added[id] = a
	return nil
}

func (b *base) appendToken(text string, typ int32, score float32) {
	b.pieces = append(b.pieces, text)
	b.types = append(b.types, typ)
	if b.scores != nil {
		b.scores = append(b.scores, score)
	}
	if b.fromModel != nil {
		b.fromModel = append(b.fromModel, false)
	}
}

// isSpecial says whether id is matched only inside Special spans.
func (b *base) isSpecial(id int32) bool {
	if a, ok := b.added[id]; ok && a.special {
		return true
	}
	t := b.types[id]
	return t == TypeControl || t == TypeUnknown
}

// finish applies the Hugging Face configs to a model's vocabulary and builds the Tokenizer.
func finish(b *base, cfg *hfConfig) (*Tokenizer, error) {
	added := slices.Clone(cfg.added)
	slices.SortStableFunc(added, func(x, y configAdded) int { return int(x.id - y.id) })
	for _, a := range added {
		if err := b.addToken(a.id, a.spec); err != nil {
			return nil, fmt.Errorf("%s: %w", a.source, err)
		}
	}
	index := make(map[string]int32, len(b.pieces))
	for id, p := range b.pieces {
		if _, dup := index[p]; !dup {
			index[p] = int32(id)
		}
	}
	for _, s := range cfg.additionalSpecial {
		id, ok := index[s.content]
		if !ok {
			return nil, fmt.Errorf("%s: additional special token %q is not in the vocabulary", s.source, s.content)
		}
		if _, isAdded := b.added[id]; !isAdded {
			if err := b.addToken(id, addedSpec{content: s.content, special: true}); err != nil {
				return nil, fmt.Errorf("%s: %w", s.source, err)
			}
		}
	}
	for _, r := range []struct {
		ref tokenRef
		dst *int32
	}{{cfg.bos, &b.bos}, {cfg.eos, &b.eos}, {cfg.unk, &b.unk}, {cfg.pad, &b.pad}} {
		if !r.ref.set {
			continue
		}
		if r.ref.null {
			*r.dst = -1
			continue
		}
		id, ok := index[r.ref.content]
		if !ok {
			return nil, fmt.Errorf("%s: %s %q is not in the vocabulary", r.ref.source, r.ref.field, r.ref.content)
		}
		*r.dst = id
	}
	if cfg.addBOS != nil {
		b.addBOS = *cfg.addBOS
	}
	if cfg.addEOS != nil {
		b.addEOS = *cfg.addEOS
	}

	t := &Tokenizer{
		kind:         b.kind,
		pieces:       b.pieces,
		scores:       b.scores,
		types:        b.types,
		index:        index,
		bos:          b.bos,
		eos:          b.eos,
		unk:          b.unk,
		pad:          b.pad,
		addBOS:       b.addBOS,
		addEOS:       b.addEOS,
		chatTemplate: cfg.chatTemplate,
		files:        cfg.files,

		chatTemplateFile: cfg.chatTemplateFile,
	}
	if t.eos >= 0 {
		t.eosIDs = append(t.eosIDs, t.eos)
	}
	for _, id := range cfg.genEOS {
		if id < 0 || int(id) >= len(b.pieces) {
			return nil, fmt.Errorf("%s: eos_token_id %d out of range [0, %d)", cfg.genSource, id, len(b.pieces))
		}
		if !slices.Contains(t.eosIDs, id) {
			t.eosIDs = append(t.eosIDs, id)
		}
	}
	if t.eos < 0 && len(t.eosIDs) > 0 {
		t.eos = t.eosIDs[0]
	}

	var always, special []addedToken
	for id := range b.pieces {
		id := int32(id)
		a, isAdded := b.added[id]
		if !isAdded {
			if b.isSpecial(id) {
				special = append(special, addedToken{content: b.pieces[id], id: id})
			}
			continue
		}
		tok := addedToken{content: a.content, id: id, lstrip: a.lstrip, rstrip: a.rstrip}
		if b.isSpecial(id) {
			special = append(special, tok)
		} else {
			always = append(always, tok)
		}
	}
	t.always, t.special = newMatcher(always), newMatcher(special)

	t.decoded = make([][]byte, len(b.pieces))
	switch b.kind {
	case KindLlama:
		t.text = newSPText(b)
		t.stripPrefixSpace = b.sp.addDummyPrefix
		t.addSpacePrefix = b.sp.addDummyPrefix
		t.removeExtraWS = b.sp.removeExtraWS
		t.pre = "default"
		for id, p := range b.pieces {
			switch b.types[id] {
			case TypeControl:
			case TypeByte:
				c, _ := byteOfPiece(p) // validated by checkModelProto
				t.decoded[id] = []byte{c}
			default:
				t.decoded[id] = []byte(strings.ReplaceAll(p, "▁", " "))
			}
		}
	case KindGPT2:
		enc, err := newBPEText(b)
		if err != nil {
			if len(cfg.files) > 0 {
				err = fmt.Errorf("%s: %w", cfg.files[0], err) // the model file, first in files
			}
			return nil, err
		}
		t.text = enc
		t.merges = b.bpe.merges
		t.pre = ggufPre(b.bpe.regexps)
		dec := byteDecoder()
		for id, p := range b.pieces {
			switch {
			case b.types[id] == TypeControl:
			case b.fromModel[id]:
				t.decoded[id] = dec.decode(p)
			default:
				t.decoded[id] = []byte(p)
			}
		}
	}
	if err := t.checkChatTemplate(); err != nil {
		return nil, err
	}
	return t, nil
}
