package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/atomicfile"
)

// WriteChatTemplate stores src as the chat template of the model directory dir, for every loader
// to find the same one: as chat_template.jinja (which transformers prefers) and, when
// tokenizer_config.json already names a template (which this package's loader prefers), there too,
// its other keys kept as written. A trainer calls it after saving a model whose data it rendered
// with a template other than the model's own.
func WriteChatTemplate(dir, src string) error {
	path := filepath.Join(dir, "tokenizer_config.json")
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("saving the chat template: %w", err)
	}
	if err == nil {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("saving the chat template: %s: %w", path, err)
		}
		if _, ok := cfg["chat_template"]; ok {
			if cfg["chat_template"], err = marshalNoEscape(src); err != nil {
				return fmt.Errorf("saving the chat template: %w", err)
			}
			out, err := marshalNoEscape(cfg)
			if err != nil {
				return fmt.Errorf("saving the chat template: %s: %w", path, err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "  "); err != nil {
				return fmt.Errorf("saving the chat template: %s: %w", path, err)
			}
			pretty.WriteByte('\n')
			if err := atomicfile.WriteFile(path, pretty.Bytes()); err != nil {
				return fmt.Errorf("saving the chat template: %w", err)
			}
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte(src)); err != nil {
		return fmt.Errorf("saving the chat template: %w", err)
	}
	return nil
}

// marshalNoEscape is json.Marshal without HTML escaping, so that "<s>" stays "<s>" in the file.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// probeConversations are what a chat template is test-rendered with when a tokenizer loads: a
// single user turn, and a multi-turn conversation with a system turn, each with and without the
// generation prompt.
var probeConversations = [][]chat.Message{
	{{Role: "user", Content: "Hello"}},
	{
		{Role: "system", Content: "You are a helpful assistant."},
		{Role: "user", Content: "Hello"},
		{Role: "assistant", Content: "Hi! How can I help?"},
		{Role: "user", Content: "Tell me a story."},
	},
}

// checkChatTemplate test-renders the chat template, so that a broken one fails when the model
// loads, naming its file, rather than in the middle of training or serving. A template fails when
// it does not compile, when any probe exceeds the render limits (unbounded recursion or loops),
// or when no probe renders at all. A probe the template refuses with its own raise_exception (a
// template without system turns, say) is not a failure as long as another renders.
func (t *Tokenizer) checkChatTemplate() error {
	if t.chatTemplate == "" {
		return nil
	}
	name := t.chatTemplateFile
	if name == "" {
		name = "of the tokenizer"
	}
	tmpl, err := chat.Compile(name, t.chatTemplate, t.tokenText(t.bos), t.tokenText(t.eos))
	if err != nil {
		return err
	}
	var firstErr error
	rendered := false
	for _, msgs := range probeConversations {
		for _, gen := range []bool{false, true} {
			_, err := tmpl.Render(msgs, gen)
			switch {
			case err == nil:
				rendered = true
			case chat.IsLimit(err):
				return fmt.Errorf("%w (test-rendering a %d-message conversation)", err, len(msgs))
			case firstErr == nil || (chat.IsRaised(firstErr) && !chat.IsRaised(err)):
				firstErr = err
			}
		}
	}
	if !rendered {
		return fmt.Errorf("%w (test-rendering: no probe conversation renders)", firstErr)
	}
	return nil
}

// tokenText is the text of token id, "" for -1.
func (t *Tokenizer) tokenText(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}
