package tokenizer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ollama/ollama/convert/sentencepiece"
	ollama "github.com/ollama/ollama/tokenizer"
	"google.golang.org/protobuf/proto"

	"github.com/alignkit/alignkit/internal/atomicfile"
)

// Piece is one SentencePiece vocabulary entry; its id is its index in the slice.
type Piece struct {
	Text  string  // "▁the", "<0x0A>", "<s>"
	Score float32 // BPE merge priority: higher merges first
	Type  int32   // Type* constant
}

// SPOptions are the model-wide settings of a SentencePiece BPE model.
type SPOptions struct {
	ByteFallback           bool // unknown characters become <0xHH> byte pieces (all 256 must exist)
	AddDummyPrefix         bool // prepend "▁" to every non-empty input, as Llama's tokenizers do
	RemoveExtraWhitespaces bool // trim and collapse runs of spaces before encoding
	// The special pieces, by text. Empty means SentencePiece's defaults "<unk>", "<s>", "</s>",
	// "<pad>". UNK must exist (type TypeUnknown); BOS, EOS and PAD get id -1 when absent.
	UnkPiece, BOSPiece, EOSPiece, PadPiece string
	// ChatTemplate is the tokenizer's chat template (a GGUF's tokenizer.chat_template); NewSentencePiece
	// keeps it, WriteSentencePieceModel ignores it (tokenizer.model has no place for it).
	ChatTemplate string
}

// spModel is a parsed, validated SentencePiece BPE model.
type spModel struct {
	pieces             []string
	scores             []float32
	types              []int32
	unk, bos, eos, pad int32
	byteFallback       bool
	addDummyPrefix     bool
	removeExtraWS      bool
}

// errNotTokenizer marks input that is no tokenizer at all (as opposed to a broken one).
var errNotTokenizer = errors.New("not a tokenizer (neither a SentencePiece model nor a tokenizer.json)")

// parseSentencePiece decodes and validates a tokenizer.model.
func parseSentencePiece(data []byte) (*spModel, error) {
	var m sentencepiece.ModelProto
	// The protobuf error text is deliberately unstable across protobuf releases, so it is not
	// repeated: random bytes simply are not a tokenizer.
	if err := proto.Unmarshal(data, &m); err != nil || len(m.GetPieces()) == 0 {
		return nil, errNotTokenizer
	}
	return checkModelProto(&m)
}

// checkModelProto validates a ModelProto against what this package (and SentencePiece's BPE
// model) can encode faithfully.
func checkModelProto(m *sentencepiece.ModelProto) (*spModel, error) {
	ts, ns := m.GetTrainerSpec(), m.GetNormalizerSpec()
	if mt := ts.GetModelType(); mt != sentencepiece.TrainerSpec_BPE {
		return nil, fmt.Errorf("model type %s is not supported (only BPE)", mt)
	}
	if len(ns.GetPrecompiledCharsmap()) > 0 {
		return nil, fmt.Errorf("normalizer %q with a precompiled charsmap is not supported (only identity)", ns.GetName())
	}
	if !ns.GetEscapeWhitespaces() {
		return nil, errors.New("normalizer escape_whitespaces=false is not supported")
	}
	if ts.GetTreatWhitespaceAsSuffix() {
		return nil, errors.New("trainer_spec treat_whitespace_as_suffix=true is not supported")
	}
	sp := &spModel{
		byteFallback:   ts.GetByteFallback(),
		addDummyPrefix: ns.GetAddDummyPrefix(),
		removeExtraWS:  ns.GetRemoveExtraWhitespaces(),
	}
	n := len(m.GetPieces())
	seen := make(map[string]int, n)
	var bytePieces int
	for i, p := range m.GetPieces() {
		text, typ := p.GetPiece(), int32(p.GetType())
		if text == "" {
			return nil, fmt.Errorf("piece %d: empty text", i)
		}
		if typ < TypeNormal || typ > TypeByte {
			return nil, fmt.Errorf("piece %d %q: type %d out of range 1..6", i, text, typ)
		}
		if j, dup := seen[text]; dup {
			return nil, fmt.Errorf("piece %d %q: duplicate of piece %d", i, text, j)
		}
		seen[text] = i
		if typ == TypeByte {
			if _, ok := byteOfPiece(text); !ok {
				return nil, fmt.Errorf("piece %d %q: byte piece not of the form <0xHH>", i, text)
			}
			bytePieces++
		}
		sp.pieces = append(sp.pieces, text)
		sp.scores = append(sp.scores, p.GetScore())
		sp.types = append(sp.types, typ)
	}
	if sp.byteFallback {
		for b := range 256 {
			name := bytePieceName(byte(b))
			if i, ok := seen[name]; !ok || sp.types[i] != TypeByte {
				return nil, fmt.Errorf("byte_fallback needs byte piece %s of type BYTE", name)
			}
		}
	} else if bytePieces > 0 {
		return nil, fmt.Errorf("%d byte pieces but byte_fallback is false", bytePieces)
	}
	ids := []struct {
		field string
		id    int32
		dst   *int32
	}{
		{"unk_id", ts.GetUnkId(), &sp.unk},
		{"bos_id", ts.GetBosId(), &sp.bos},
		{"eos_id", ts.GetEosId(), &sp.eos},
		{"pad_id", ts.GetPadId(), &sp.pad},
	}
	for _, f := range ids {
		if f.id < -1 || int(f.id) >= n {
			return nil, fmt.Errorf("trainer_spec %s %d out of range [-1, %d)", f.field, f.id, n)
		}
		*f.dst = f.id
	}
	if sp.unk < 0 || sp.types[sp.unk] != TypeUnknown {
		return nil, fmt.Errorf("trainer_spec unk_id %d is not a piece of type UNKNOWN", sp.unk)
	}
	return sp, nil
}

// buildModelProto turns pieces and options into a ModelProto as SentencePiece's trainer writes it.
func buildModelProto(pieces []Piece, opts SPOptions) (*sentencepiece.ModelProto, error) {
	names := [4]string{opts.UnkPiece, opts.BOSPiece, opts.EOSPiece, opts.PadPiece}
	for i, def := range [4]string{"<unk>", "<s>", "</s>", "<pad>"} {
		if names[i] == "" {
			names[i] = def
		}
	}
	var ids [4]int32
	for i, name := range names {
		ids[i] = -1
		for j, p := range pieces {
			if p.Text == name {
				ids[i] = int32(j)
				break
			}
		}
	}
	if ids[0] < 0 {
		return nil, fmt.Errorf("no unknown piece %q", names[0])
	}
	m := &sentencepiece.ModelProto{
		TrainerSpec: &sentencepiece.TrainerSpec{
			ModelType:    sentencepiece.TrainerSpec_BPE.Enum(),
			VocabSize:    proto.Int32(int32(len(pieces))),
			ByteFallback: proto.Bool(opts.ByteFallback),
			UnkId:        proto.Int32(ids[0]),
			BosId:        proto.Int32(ids[1]),
			EosId:        proto.Int32(ids[2]),
			PadId:        proto.Int32(ids[3]),
			UnkPiece:     proto.String(names[0]),
			BosPiece:     proto.String(names[1]),
			EosPiece:     proto.String(names[2]),
			PadPiece:     proto.String(names[3]),
		},
		NormalizerSpec: &sentencepiece.NormalizerSpec{
			Name:                   proto.String("identity"),
			PrecompiledCharsmap:    []byte{},
			AddDummyPrefix:         proto.Bool(opts.AddDummyPrefix),
			RemoveExtraWhitespaces: proto.Bool(opts.RemoveExtraWhitespaces),
			EscapeWhitespaces:      proto.Bool(true),
		},
	}
	for _, p := range pieces {
		m.Pieces = append(m.Pieces, &sentencepiece.ModelProto_SentencePiece{
			Piece: proto.String(p.Text),
			Score: proto.Float32(p.Score),
			Type:  sentencepiece.ModelProto_SentencePiece_Type(p.Type).Enum(),
		})
	}
	return m, nil
}

// NewSentencePiece builds a SentencePiece tokenizer from pieces, as loading the tokenizer.model
// that WriteSentencePieceModel writes from the same arguments would.
func NewSentencePiece(pieces []Piece, opts SPOptions) (*Tokenizer, error) {
	m, err := buildModelProto(pieces, opts)
	if err != nil {
		return nil, fmt.Errorf("sentencepiece pieces: %w", err)
	}
	sp, err := checkModelProto(m)
	if err != nil {
		return nil, fmt.Errorf("sentencepiece pieces: %w", err)
	}
	t, err := finish(newSPBase(sp), &hfConfig{chatTemplate: opts.ChatTemplate})
	if err != nil {
		return nil, fmt.Errorf("sentencepiece pieces: %w", err)
	}
	return t, nil
}

// WriteSentencePieceModel writes pieces and options as a tokenizer.model (a SentencePiece
// ModelProto: BPE, identity normalizer) that Python sentencepiece and llama.cpp's converter read.
// It refuses what it could not load back. The write is atomic.
func WriteSentencePieceModel(path string, pieces []Piece, opts SPOptions) error {
	m, err := buildModelProto(pieces, opts)
	if err == nil {
		_, err = checkModelProto(m)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, data)
}

// newSPBase is the vocabulary and defaults of a SentencePiece model before configs apply.
func newSPBase(sp *spModel) *base {
	return &base{
		kind:   KindLlama,
		pieces: append([]string(nil), sp.pieces...),
		scores: append([]float32(nil), sp.scores...),
		types:  append([]int32(nil), sp.types...),
		added:  map[int32]addedSpec{},
		bos:    sp.bos, eos: sp.eos, unk: sp.unk, pad: sp.pad,
		addBOS: true, // HF LlamaTokenizer and llama.cpp's default for SentencePiece
		sp:     sp,
	}
}

// spText is SentencePiece's encoding around ollama's BPE: normalizer, dummy prefix, UNK.
type spText struct {
	enc            ollama.SentencePiece
	addDummyPrefix bool
	removeExtraWS  bool
	sentinelBase   int32 // ids >= it are byte fallbacks of a model without byte pieces; -1 if none
	unk            int32

	// For the one input ollama gets wrong (see encodeDirect): the pieces BPE may produce, their
	// scores, and the byte pieces (-1 without byte fallback).
	mergeable map[string]int32
	scores    []float32
	byteIDs   [256]int32
}

// unreachable is a vocabulary value text can never produce: encoders only see valid UTF-8 and
// "\xff" never occurs in it. Control pieces get one, so that neither ollama's special-token split
// nor its BPE merges can turn typed text like "</s>" into them.
func unreachable(id int) string { return "\xff" + strconv.Itoa(id) }

// newSPText gives ollama the pieces it may produce from text: normal, byte and the model's own
// user-defined pieces (which SentencePiece always matches whole). Control, unknown, unused and
// added tokens are hidden from it; added tokens are matched by the Tokenizer itself.
func newSPText(b *base) *spText {
	n := len(b.pieces)
	vocab := &ollama.Vocabulary{
		Values: make([]string, n),
		Types:  make([]int32, n),
		Scores: append([]float32(nil), b.scores...),
	}
	present := make(map[string]bool, n)
	for id := range n {
		vocab.Values[id], vocab.Types[id] = b.pieces[id], ollama.TOKEN_TYPE_NORMAL
		_, isAdded := b.added[int32(id)]
		switch typ := b.types[id]; {
		case isAdded || typ == TypeControl || typ == TypeUnknown || typ == TypeUnused:
			vocab.Values[id] = unreachable(id)
		case typ == TypeUserDefined:
			vocab.Types[id] = ollama.TOKEN_TYPE_USER_DEFINED
		case typ == TypeByte:
			vocab.Types[id] = ollama.TOKEN_TYPE_BYTE
		}
		present[vocab.Values[id]] = true
	}
	e := &spText{
		addDummyPrefix: b.sp.addDummyPrefix,
		removeExtraWS:  b.sp.removeExtraWS,
		sentinelBase:   -1,
		unk:            b.sp.unk,
		mergeable:      map[string]int32{},
		scores:         b.scores,
	}
	for c := range e.byteIDs {
		e.byteIDs[c] = -1
	}
	for id, v := range vocab.Values {
		switch vocab.Types[id] {
		case ollama.TOKEN_TYPE_NORMAL, ollama.TOKEN_TYPE_USER_DEFINED:
			if !strings.HasPrefix(v, "\xff") {
				e.mergeable[v] = int32(id)
			}
		case ollama.TOKEN_TYPE_BYTE:
			if c, ok := byteOfPiece(v); ok && b.sp.byteFallback {
				e.byteIDs[c] = int32(id)
			}
		}
	}
	if !b.sp.byteFallback {
		// ollama falls back to "<0xHH>" pieces and silently drops characters without one. A model
		// without byte fallback gets sentinel pieces past its vocabulary instead, which encode maps
		// back to UNK as SentencePiece would.
		e.sentinelBase = int32(len(vocab.Values))
		for c := range 256 {
			name := bytePieceName(byte(c))
			if present[name] {
				name = unreachable(len(vocab.Values))
			}
			vocab.Values = append(vocab.Values, name)
			vocab.Types = append(vocab.Types, ollama.TOKEN_TYPE_BYTE)
			vocab.Scores = append(vocab.Scores, 0)
		}
	}
	// NewSentencePiece logs the first five values and would panic on a shorter vocabulary.
	for len(vocab.Values) < 5 {
		vocab.Values = append(vocab.Values, unreachable(len(vocab.Values)))
		vocab.Types = append(vocab.Types, ollama.TOKEN_TYPE_UNUSED)
		vocab.Scores = append(vocab.Scores, 0)
	}
	e.enc = ollama.NewSentencePiece(vocab)
	return e
}

func (e *spText) encode(s string) []int32 {
	s = validUTF8(s)
	if e.removeExtraWS {
		s = squeezeSpaces(s)
	}
	if s == "" {
		return nil
	}
	if e.addDummyPrefix {
		// SentencePiece adds the dummy prefix even when the text already starts with a space.
		s = " " + s
	}
	if _, ok := byteOfPiece(s); ok {
		return e.encodeDirect(s)
	}
	// ollama v0.17.4's SentencePiece.Encode has no failing path; an error would mean a changed
	// dependency, and encoding nothing is then the visible symptom.
	ids, err := e.enc.Encode(s, false)
	if err != nil {
		return nil
	}
	if e.sentinelBase < 0 {
		return ids
	}
	// SentencePiece merges a run of unknown characters into one UNK.
	out := make([]int32, 0, len(ids))
	prevUnk := false
	for _, id := range ids {
		if id >= e.sentinelBase {
			if !prevUnk {
				out = append(out, e.unk)
			}
			prevUnk = true
			continue
		}
		out = append(out, id)
		prevUnk = false
	}
	return out
}

// encodeDirect is SentencePiece's BPE run here, for the one input ollama gets wrong: text that
// is exactly a byte piece's name, like "<0x41>" (possible without the dummy prefix), which ollama
// looks up whole and returns as that byte. SentencePiece merges its characters like any text:
// the adjacent pair whose concatenation is the best-scoring piece first, leftmost on ties; what
// stays unknown falls back to bytes, or to one UNK per run without byte fallback. The text is six
// ASCII characters, so the quadratic loop costs nothing.
func (e *spText) encodeDirect(s string) []int32 {
	var syms []string
	for _, r := range s {
		syms = append(syms, string(r))
	}
	for {
		best, bestScore := -1, float32(0)
		for i := 0; i+1 < len(syms); i++ {
			if id, ok := e.mergeable[syms[i]+syms[i+1]]; ok && (best < 0 || e.scores[id] > bestScore) {
				best, bestScore = i, e.scores[id]
			}
		}
		if best < 0 {
			break
		}
		syms[best] += syms[best+1]
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	var ids []int32
	prevUnk := false
	for _, sym := range syms {
		if id, ok := e.mergeable[sym]; ok {
			ids, prevUnk = append(ids, id), false
			continue
		}
		for i := 0; i < len(sym); i++ {
			switch id := e.byteIDs[sym[i]]; {
			case id >= 0:
				ids, prevUnk = append(ids, id), false
			case !prevUnk:
				ids, prevUnk = append(ids, e.unk), true
			}
		}
	}
	return ids
}

// squeezeSpaces is SentencePiece's remove_extra_whitespaces on identity-normalized text: trim
// spaces at both ends and collapse inner runs to one. Only U+0020 counts; tabs and newlines stay.
func squeezeSpaces(s string) string {
	s = strings.Trim(s, " ")
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	prevSpace := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' && prevSpace {
			continue
		}
		prevSpace = c == ' '
		b.WriteByte(c)
	}
	return b.String()
}

func bytePieceName(b byte) string { return fmt.Sprintf("<0x%02X>", b) }

// byteOfPiece parses "<0xHH>".
func byteOfPiece(s string) (byte, bool) {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}
