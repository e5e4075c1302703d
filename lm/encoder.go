package lm

import (
	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// Encoder adapts a tokenizer to data's chat tokenization: spans from the template may hold
// special tokens, spans from messages never do.
func Encoder(tok *tokenizer.Tokenizer) data.Encoder { return encoder{tok} }

type encoder struct{ tok *tokenizer.Tokenizer }

func (e encoder) EncodeChat(parts []data.Span, addBOS bool) []int32 {
	spans := make([]tokenizer.Span, len(parts))
	for i, p := range parts {
		spans[i] = tokenizer.Span{Text: p.Text, Special: p.Special}
	}
	return e.tok.EncodeSpans(spans, addBOS)
}
func (e encoder) BOS() int32           { return e.tok.BOS() }
func (e encoder) EOS() int32           { return e.tok.EOS() }
func (e encoder) AddBOS() bool         { return e.tok.AddBOS() }
func (e encoder) ChatTemplate() string { return e.tok.ChatTemplate() }

// ChatTokenizer resolves the chat template (a built-in name, a file, Jinja source, or "" for the
// model's own) and returns data's tokenizer for it.
func ChatTokenizer(tok *tokenizer.Tokenizer, template string) (*data.Tokenizer, error) {
	tokens, _, _ := tok.Pieces()
	name := func(id int32) string {
		if id >= 0 && int(id) < len(tokens) {
			return tokens[id]
		}
		return ""
	}
	tmpl, err := chat.ResolveModel(template, tok.ChatTemplate(), tok.ChatTemplateFile(), name(tok.BOS()), name(tok.EOS()))
	if err != nil {
		return nil, err
	}
	return data.NewTokenizer(Encoder(tok), tmpl), nil
}
