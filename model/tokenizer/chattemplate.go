package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
