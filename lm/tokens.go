package lm

import (
	"slices"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// PadID is the one padding rule of every trainer, and the pad_token_id a reward model's config.json
// names: the config's own pad_token_id, else the tokenizer's pad token, else its unknown token (the
// usual choice for Llama tokenizers, which have no pad token and emit unk for no text under byte
// fallback), else the first of 0, 1, 2 that qualifies. It is never an EOS id (of the config or the
// tokenizer): padding that looked like EOS would blur where answers end, and transformers' sequence
// classifier reads the reward at the last token that is not padding, the EOS every scored row ends
// with. Ids at or above cfg.VocabSize are passed over when it is known (non-zero); tok may be nil.
func PadID(tok *tokenizer.Tokenizer, cfg model.Config) int32 {
	var eos []int32
	for _, id := range cfg.EOSTokenIDs {
		eos = append(eos, int32(id))
	}
	if tok != nil {
		eos = append(eos, tok.EOSIDs()...)
	}
	var cands []int32
	if cfg.PadTokenID != nil {
		cands = append(cands, int32(*cfg.PadTokenID))
	}
	if tok != nil {
		if p, ok := tok.PAD(); ok {
			cands = append(cands, p)
		}
		cands = append(cands, tok.UNK())
	}
	cands = append(cands, 0, 1, 2)
	for _, c := range cands {
		if c >= 0 && !slices.Contains(eos, c) && (cfg.VocabSize == 0 || int(c) < cfg.VocabSize) {
			return c
		}
	}
	return 0
}

// DataTokenizer is the data-layer tokenizer a trainer prepares rows with: with a chat template
// (chatTemplate, or else the tokenizer's own) it renders conversations (see ChatTokenizer); without
// one, text and plain prompt/completion rows still work, and conversational rows get data's error
// naming the row.
func DataTokenizer(tok *tokenizer.Tokenizer, chatTemplate string) (*data.Tokenizer, error) {
	if chatTemplate == "" && tok.ChatTemplate() == "" {
		return data.NewTokenizer(Encoder(tok), nil), nil
	}
	return ChatTokenizer(tok, chatTemplate)
}
