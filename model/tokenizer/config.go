package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// tokenRef is a special-token field of a config: absent, null, or a token's content.
type tokenRef struct {
	set, null bool
	content   string
	field     string // "bos_token"
	source    string // the file that set it
}

type configAdded struct {
	id     int32
	spec   addedSpec
	source string
}

type namedToken struct {
	content, source string
}

// hfConfig is what tokenizer_config.json, special_tokens_map.json, added_tokens.json,
// chat_template.jinja and generation_config.json say about a tokenizer.
type hfConfig struct {
	files              []string
	bos, eos, unk, pad tokenRef
	addBOS, addEOS     *bool
	chatTemplate       string
	chatTemplateFile   string // the file chatTemplate came from
	added              []configAdded
	additionalSpecial  []namedToken
	genEOS             []int32
	genSource          string
}

// readFileIfExists returns nil data and no error when the file does not exist.
func readFileIfExists(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}

// readConfig reads the Hugging Face tokenizer configs of dir; each is optional.
func readConfig(dir string) (*hfConfig, error) {
	cfg := &hfConfig{}
	// tokenizer_config.json wins over special_tokens_map.json, as in transformers; so it is read
	// last and its fields overwrite.
	for _, name := range []string{"special_tokens_map.json", "tokenizer_config.json"} {
		path := filepath.Join(dir, name)
		data, err := readFileIfExists(path)
		if err != nil {
			return nil, err
		}
		if data == nil {
			continue
		}
		if err := cfg.parseTokenizerConfig(data, path); err != nil {
			return nil, err
		}
		cfg.files = append(cfg.files, path)
	}
	if err := cfg.readAddedTokensJSON(filepath.Join(dir, "added_tokens.json")); err != nil {
		return nil, err
	}
	if cfg.chatTemplate == "" {
		path := filepath.Join(dir, "chat_template.jinja")
		data, err := readFileIfExists(path)
		if err != nil {
			return nil, err
		}
		if data != nil {
			cfg.chatTemplate, cfg.chatTemplateFile = string(data), path
			cfg.files = append(cfg.files, path)
		}
	}
	if err := cfg.readGenerationConfig(filepath.Join(dir, "generation_config.json")); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseTokenRef reads a special-token field: a string, an AddedToken object with "content", or null.
func parseTokenRef(raw json.RawMessage, field, source string) (tokenRef, error) {
	ref := tokenRef{set: true, field: field, source: source}
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) {
		ref.null = true
		return ref, nil
	}
	if err := json.Unmarshal(raw, &ref.content); err == nil {
		return ref, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return tokenRef{}, fmt.Errorf("%s: %s: want a string, null or an object with \"content\"", source, field)
	}
	ref.content = *obj.Content
	return ref, nil
}

// hfAddedToken is an AddedToken as tokenizer.json and tokenizer_config.json serialize it.
type hfAddedToken struct {
	ID      *int32 `json:"id"` // tokenizer.json only
	Content string `json:"content"`
	Special bool   `json:"special"`
	LStrip  bool   `json:"lstrip"`
	RStrip  bool   `json:"rstrip"`
}

func (a hfAddedToken) spec() addedSpec {
	return addedSpec{content: a.Content, special: a.Special, lstrip: a.LStrip, rstrip: a.RStrip}
}

func (cfg *hfConfig) parseTokenizerConfig(data []byte, path string) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	for _, f := range []struct {
		name string
		dst  *tokenRef
	}{{"bos_token", &cfg.bos}, {"eos_token", &cfg.eos}, {"unk_token", &cfg.unk}, {"pad_token", &cfg.pad}} {
		v, ok := raw[f.name]
		if !ok {
			continue
		}
		ref, err := parseTokenRef(v, f.name, path)
		if err != nil {
			return err
		}
		*f.dst = ref
	}
	for _, f := range []struct {
		name string
		dst  **bool
	}{{"add_bos_token", &cfg.addBOS}, {"add_eos_token", &cfg.addEOS}} {
		v, ok := raw[f.name]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			continue
		}
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return fmt.Errorf("%s: %s: want true or false", path, f.name)
		}
		*f.dst = &b
	}
	if v, ok := raw["chat_template"]; ok {
		tmpl, err := parseChatTemplate(v)
		if err != nil {
			return fmt.Errorf("%s: chat_template: %w", path, err)
		}
		cfg.chatTemplate, cfg.chatTemplateFile = tmpl, path
	}
	if v, ok := raw["added_tokens_decoder"]; ok {
		var dec map[string]hfAddedToken
		if err := json.Unmarshal(v, &dec); err != nil {
			return fmt.Errorf("%s: added_tokens_decoder: want an object of id -> AddedToken", path)
		}
		for key, a := range dec {
			id, err := strconv.ParseInt(key, 10, 32)
			if err != nil {
				return fmt.Errorf("%s: added_tokens_decoder: key %q is not a token id", path, key)
			}
			cfg.added = append(cfg.added, configAdded{id: int32(id), spec: a.spec(), source: path})
		}
	}
	if v, ok := raw["additional_special_tokens"]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		var list []json.RawMessage
		if err := json.Unmarshal(v, &list); err != nil {
			return fmt.Errorf("%s: additional_special_tokens: want a list", path)
		}
		cfg.additionalSpecial = cfg.additionalSpecial[:0]
		for _, item := range list {
			ref, err := parseTokenRef(item, "additional_special_tokens", path)
			if err != nil {
				return err
			}
			if !ref.null {
				cfg.additionalSpecial = append(cfg.additionalSpecial, namedToken{ref.content, path})
			}
		}
	}
	return nil
}

// parseChatTemplate reads chat_template: a string, or a list of {name, template} of which the one
// named "default" (else the first) is the template.
func parseChatTemplate(v json.RawMessage) (string, error) {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return s, nil
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(v, &list); err != nil {
		return "", errors.New("want a string or a list of {name, template}")
	}
	for _, t := range list {
		if t.Name == "default" {
			return t.Template, nil
		}
	}
	if len(list) > 0 {
		return list[0].Template, nil
	}
	return "", nil
}

// readAddedTokensJSON reads the older added_tokens.json (content -> id). Its tokens are special
// when a config names them as a special token.
func (cfg *hfConfig) readAddedTokensJSON(path string) error {
	data, err := readFileIfExists(path)
	if err != nil || data == nil {
		return err
	}
	var m map[string]int32
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: want an object of token -> id", path)
	}
	special := map[string]bool{}
	for _, r := range []tokenRef{cfg.bos, cfg.eos, cfg.unk, cfg.pad} {
		if r.set && !r.null {
			special[r.content] = true
		}
	}
	for _, s := range cfg.additionalSpecial {
		special[s.content] = true
	}
	for content, id := range m {
		cfg.added = append(cfg.added, configAdded{id: id, spec: addedSpec{content: content, special: special[content]}, source: path})
	}
	cfg.files = append(cfg.files, path)
	return nil
}

// readGenerationConfig reads eos_token_id (a number or a list) for EOSIDs.
func (cfg *hfConfig) readGenerationConfig(path string) error {
	data, err := readFileIfExists(path)
	if err != nil || data == nil {
		return err
	}
	var g struct {
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	cfg.genSource = path
	if len(g.EOS) == 0 || bytes.Equal(bytes.TrimSpace(g.EOS), []byte("null")) {
		return nil
	}
	var one int32
	if err := json.Unmarshal(g.EOS, &one); err == nil {
		cfg.genEOS = []int32{one}
		return nil
	}
	if err := json.Unmarshal(g.EOS, &cfg.genEOS); err != nil {
		return fmt.Errorf("%s: eos_token_id: want a token id or a list of ids", path)
	}
	return nil
}
