package world

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// Special pieces, at Llama 2's ids 0, 1, 2.
const (
	UnkPiece = "<unk>"
	BOSPiece = "<s>"
	EOSPiece = "</s>"
)

// spOptions are Llama 2's normalizer settings: byte fallback, a dummy prefix, spaces kept as they are.
var spOptions = tokenizer.SPOptions{ByteFallback: true, AddDummyPrefix: true, UnkPiece: UnkPiece, BOSPiece: BOSPiece, EOSPiece: EOSPiece}

// Words returns every word the world writes (questions, answers in all languages, gatt's
// instruction sentences over Lists, the chat template's [INST] markers), sorted. Punctuation is
// not a word: it stays a one-character piece.
func Words() []string {
	set := map[string]bool{}
	add := func(s string) {
		for _, t := range tokens(s) {
			if !isPunct(t) && !strings.HasPrefix(t, "$") {
				set[t] = true
			}
		}
	}
	for _, qs := range allQueries() {
		for _, q := range qs {
			add(q.Text())
		}
	}
	for _, q := range harmQueries() {
		add(q.Text())
	}
	add(strings.Join(harmTemplates[0], " ") + " " + strings.Join(harmTemplates[1], " "))
	for l := range numLangs {
		for _, ts := range [][]string{arithTemplates[l][0], arithTemplates[l][1], colourTemplates[l],
			nameTemplates[l][0], nameTemplates[l][1], hobbyTemplates[l][0], hobbyTemplates[l][1], colourWords[l]} {
			add(strings.Join(ts, " "))
		}
		for n := 0; n <= MaxNumber; n++ {
			add(numeral(l, n))
		}
	}
	for _, th := range things {
		add(th.phrase)
	}
	for _, s := range instructionSentences {
		for _, v := range values(s.kind) {
			add(s.before + v + s.post)
		}
	}
	add(strings.Join(templateWords, " "))
	return sortedSet(set)
}

func sortedSet(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for w := range set {
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// LineInitialWords are the words that can follow a line break or the start of a text with no space
// before them, and so are encoded without the "▁" of a word after a space: the first word of every
// question and of every instruction sentence (gatt's synthesis appends the instruction after a
// blank line; llama-2's template writes a system message after "<<SYS>>\n" and the first user
// message after "<</SYS>>\n\n"), and the "<</SYS>>" marker itself. They get pieces of their own.
func LineInitialWords() []string {
	set := map[string]bool{"<</SYS>>": true}
	for _, qs := range allQueries() {
		for _, q := range qs {
			set[tokens(q.Text())[0]] = true
		}
	}
	for _, q := range harmQueries() {
		set[tokens(q.Text())[0]] = true
	}
	for _, s := range instructionSentences {
		set[tokens(s.before)[0]] = true
	}
	return sortedSet(set)
}

// Pieces returns the world's SentencePiece BPE vocabulary, laid out as SentencePiece's trainer
// lays one out: <unk>, <s>, </s>, the 256 byte pieces, the merged pieces in merge order (scores
// 0, -1, -2, ...), then the single characters, scored below every merge. The characters include
// "\n" (Llama 2 would use the byte piece <0x0A>), so no world text needs byte fallback.
//
// The merged pieces are every prefix, two characters or longer, of "▁"+word for each word, and of
// the bare word for LineInitialWords. BPE encoding merges adjacent symbols whose concatenation is a
// piece. Inside a word every piece is a substring of it, and a word's prefix piece joined with
// whatever follows it is again a prefix piece, so merging never stops short: each word ends as its
// one whole-word piece, whatever the scores (TestSentencePieceReference checks this against
// Google's sentencepiece). No piece holds "▁" after its start, so merges never join two words. The
// cost is the prefix pieces a word-level vocabulary would not need, a few hundred rows of
// embedding.
func Pieces() []tokenizer.Piece {
	pieces := []tokenizer.Piece{
		{Text: UnkPiece, Type: tokenizer.TypeUnknown},
		{Text: BOSPiece, Type: tokenizer.TypeControl},
		{Text: EOSPiece, Type: tokenizer.TypeControl},
	}
	for b := range 256 {
		pieces = append(pieces, tokenizer.Piece{Text: fmt.Sprintf("<0x%02X>", b), Type: tokenizer.TypeByte})
	}
	merged := map[string]bool{}
	chars := map[string]bool{"▁": true, "\n": true}
	for _, r := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:?!'-" {
		chars[string(r)] = true
	}
	prefixes := func(p string) {
		for i, r := range p {
			chars[string(r)] = true
			if end := i + utf8.RuneLen(r); end > i && utf8.RuneCountInString(p[:end]) >= 2 {
				merged[p[:end]] = true
			}
		}
	}
	for _, w := range Words() {
		prefixes("▁" + w)
	}
	for _, w := range LineInitialWords() {
		prefixes(w)
	}
	ms := sortedPieces(merged)
	for i, m := range ms {
		pieces = append(pieces, tokenizer.Piece{Text: m, Score: -float32(i), Type: tokenizer.TypeNormal})
	}
	for i, c := range sortedPieces(chars) {
		pieces = append(pieces, tokenizer.Piece{Text: c, Score: -float32(len(ms) + i), Type: tokenizer.TypeNormal})
	}
	return pieces
}

// sortedPieces orders pieces by length in characters, then bytewise: a piece comes after the
// prefix it is merged from.
func sortedPieces(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b string) int {
		return cmp.Or(cmp.Compare(utf8.RuneCountInString(a), utf8.RuneCountInString(b)), strings.Compare(a, b))
	})
	return out
}

// NewTokenizer builds the world's tokenizer in memory, as loading WriteTokenizer's directory does
// (without the chat template).
func NewTokenizer() (*tokenizer.Tokenizer, error) {
	t, err := tokenizer.NewSentencePiece(Pieces(), spOptions)
	if err != nil {
		return nil, fmt.Errorf("world tokenizer: %w", err)
	}
	return t, nil
}

// tokenizerConfig is the tokenizer_config.json written beside tokenizer.model, as Llama 2-Chat's.
type tokenizerConfig struct {
	AddBOSToken        bool                      `json:"add_bos_token"`
	AddEOSToken        bool                      `json:"add_eos_token"`
	AddedTokensDecoder map[string]addedTokenJSON `json:"added_tokens_decoder"`
	BOSToken           string                    `json:"bos_token"`
	ChatTemplate       string                    `json:"chat_template"`
	CleanUpSpaces      bool                      `json:"clean_up_tokenization_spaces"`
	EOSToken           string                    `json:"eos_token"`
	Legacy             bool                      `json:"legacy"`
	ModelMaxLength     int                       `json:"model_max_length"`
	PadToken           *string                   `json:"pad_token"`
	SPModelKwargs      struct{}                  `json:"sp_model_kwargs"`
	TokenizerClass     string                    `json:"tokenizer_class"`
	UnkToken           string                    `json:"unk_token"`
	UseDefaultSystem   bool                      `json:"use_default_system_prompt"`
}

type addedTokenJSON struct {
	Content    string `json:"content"`
	LStrip     bool   `json:"lstrip"`
	Normalized bool   `json:"normalized"`
	RStrip     bool   `json:"rstrip"`
	SingleWord bool   `json:"single_word"`
	Special    bool   `json:"special"`
}

// ModelMaxLength is the tokenizer's model_max_length: the world's longest dialogue, a 20-turn GAtt
// evaluation dialogue with its instruction and reference answers, renders to about 400 tokens, and
// a model's own replies may run longer.
const ModelMaxLength = 1024

// WriteTokenizer writes the world's tokenizer into dir (created if needed): tokenizer.model, and a
// tokenizer_config.json with the llama-2 chat template, <s>/</s>/<unk>, add_bos_token true and
// add_eos_token false, as Llama 2-Chat's. Writes are atomic.
func WriteTokenizer(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing world tokenizer: %w", err)
	}
	if err := tokenizer.WriteSentencePieceModel(filepath.Join(dir, "tokenizer.model"), Pieces(), spOptions); err != nil {
		return err
	}
	src, ok := chat.BuiltinSource(ChatTemplate)
	if !ok {
		return fmt.Errorf("writing world tokenizer: chat template %q is not a built-in", ChatTemplate)
	}
	cfg := tokenizerConfig{
		AddBOSToken:  true,
		BOSToken:     BOSPiece,
		ChatTemplate: src,
		EOSToken:     EOSPiece,
		// Llama 2's "legacy" SentencePiece behaviour, which package tokenizer implements: every run of
		// text between special tokens gets its own dummy prefix.
		Legacy:         true,
		ModelMaxLength: ModelMaxLength,
		TokenizerClass: "LlamaTokenizer",
		UnkToken:       UnkPiece,
		AddedTokensDecoder: map[string]addedTokenJSON{
			"0": {Content: UnkPiece, Special: true},
			"1": {Content: BOSPiece, Special: true},
			"2": {Content: EOSPiece, Special: true},
		},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("writing world tokenizer: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, "tokenizer_config.json"), append(data, '\n'))
}
