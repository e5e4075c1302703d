package tokenizer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// HasFiles reports whether dir holds a tokenizer Load can read (tokenizer.model or tokenizer.json).
func HasFiles(dir string) bool {
	for _, f := range []string{"tokenizer.model", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// Load loads the tokenizer of a model directory: tokenizer.model (SentencePiece) when it holds a
// SentencePiece model, else tokenizer.json (byte-level BPE), with tokenizer_config.json,
// special_tokens_map.json, added_tokens.json and chat_template.jinja when present, and
// generation_config.json's eos_token_id for EOSIDs.
func Load(dir string) (*Tokenizer, error) {
	spPath, jsonPath := filepath.Join(dir, "tokenizer.model"), filepath.Join(dir, "tokenizer.json")
	spData, err := readFileIfExists(spPath)
	if err != nil {
		return nil, err
	}
	var b *base
	var file string
	if spData != nil {
		sp, err := parseSentencePiece(spData)
		switch {
		case err == nil:
			b, file = newSPBase(sp), spPath
		case errors.Is(err, errNotTokenizer) && fileExists(jsonPath):
			// Llama 3 style directories may hold a tiktoken file under that name; tokenizer.json
			// is the real tokenizer then.
		default:
			return nil, fmt.Errorf("%s: %w", spPath, err)
		}
	}
	if b == nil {
		data, err := readFileIfExists(jsonPath)
		if err != nil {
			return nil, err
		}
		if data == nil {
			return nil, fmt.Errorf("%s: no tokenizer.model or tokenizer.json", dir)
		}
		if b, err = parseTokenizerJSON(data); err != nil {
			return nil, fmt.Errorf("%s: %w", jsonPath, err)
		}
		file = jsonPath
	}
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, err
	}
	cfg.files = append([]string{file}, cfg.files...)
	return finish(b, cfg)
}

// LoadFile loads a single tokenizer file, a SentencePiece tokenizer.model or a tokenizer.json,
// without any config beside it: special tokens and add_bos/add_eos are the file's own.
func LoadFile(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var b *base
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
		b, err = parseTokenizerJSON(data)
	} else {
		var sp *spModel
		if sp, err = parseSentencePiece(data); err == nil {
			b = newSPBase(sp)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// finish names the file in its errors.
	return finish(b, &hfConfig{files: []string{path}})
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
