package bench

import (
	"fmt"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// ByteTokenizer is a SentencePiece tokenizer with no merges worth the name: <unk>, <s>, </s>, the 256
// byte pieces and one piece per printable ASCII character (and "▁"), so any text encodes, mostly one
// token per character. It lets a benchmark model of any vocabulary size be written, exported to GGUF
// and fine-tuned without a real tokenizer of that size; ids beyond it are simply never produced.
func ByteTokenizer() (*tokenizer.Tokenizer, error) {
	pieces := []tokenizer.Piece{
		{Text: "<unk>", Type: tokenizer.TypeUnknown},
		{Text: "<s>", Type: tokenizer.TypeControl},
		{Text: "</s>", Type: tokenizer.TypeControl},
	}
	for b := range 256 {
		pieces = append(pieces, tokenizer.Piece{Text: fmt.Sprintf("<0x%02X>", b), Type: tokenizer.TypeByte})
	}
	pieces = append(pieces, tokenizer.Piece{Text: "▁", Score: -1, Type: tokenizer.TypeNormal})
	for c := '!'; c <= '~'; c++ {
		pieces = append(pieces, tokenizer.Piece{Text: string(c), Score: -2, Type: tokenizer.TypeNormal})
	}
	tok, err := tokenizer.NewSentencePiece(pieces, tokenizer.SPOptions{ByteFallback: true, AddDummyPrefix: true})
	if err != nil {
		return nil, fmt.Errorf("byte tokenizer: %w", err)
	}
	return tok, nil
}

// WriteModel writes a randomly initialised model of preset p (seed as model.InitRandom takes it) as an
// HF directory at out, with tok as its tokenizer (ByteTokenizer when nil). The tokenizer may have
// fewer tokens than the preset's vocabulary.
func WriteModel(p Preset, seed uint64, tok *tokenizer.Tokenizer, out string) (*checkpoint.Model, error) {
	if tok == nil {
		var err error
		if tok, err = ByteTokenizer(); err != nil {
			return nil, err
		}
	}
	if tok.VocabSize() > p.Config.VocabSize {
		return nil, fmt.Errorf("bench model %s: the tokenizer has %d tokens but the preset's vocab_size is %d", p.Name, tok.VocabSize(), p.Config.VocabSize)
	}
	c := p.Config
	c.BOSTokenID = int(tok.BOS())
	c.EOSTokenIDs = []int{int(tok.EOS())}
	m := &checkpoint.Model{Weights: model.InitRandom(c, seed, 0.02), Tok: tok, Source: "random " + p.Name}
	if err := checkpoint.Save(out, m, hf.SaveOptions{}); err != nil {
		return nil, fmt.Errorf("bench model %s: %w", p.Name, err)
	}
	m.Dir = out
	return m, nil
}
