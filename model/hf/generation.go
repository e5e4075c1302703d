package hf

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// GenerationConfig holds the token ids of a generation_config.json; the file's sampling settings are
// not read (alignkit's generation takes those from its own flags). A nil pointer means absent or null.
type GenerationConfig struct {
	BOSTokenID  *int
	EOSTokenIDs []int // eos_token_id, an int or a list
	PadTokenID  *int
}

// ReadGenerationConfig reads the token ids from a generation_config.json.
func ReadGenerationConfig(path string) (GenerationConfig, error) {
	data, err := readBounded(path)
	if err != nil {
		return GenerationConfig{}, err
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return GenerationConfig{}, fmt.Errorf("%s: not a JSON object", path)
	}
	var g GenerationConfig
	one := func(key string) (*int, error) {
		v, ok := raw[key]
		if !ok || v == nil {
			return nil, nil
		}
		ids, err := tokenIDs(v)
		if err != nil || len(ids) != 1 {
			return nil, fmt.Errorf("%s: field %q: want an integer, got %s", path, key, jsonString(v))
		}
		return &ids[0], nil
	}
	if g.BOSTokenID, err = one("bos_token_id"); err != nil {
		return GenerationConfig{}, err
	}
	if g.PadTokenID, err = one("pad_token_id"); err != nil {
		return GenerationConfig{}, err
	}
	if v, ok := raw["eos_token_id"]; ok && v != nil {
		if g.EOSTokenIDs, err = tokenIDs(v); err != nil {
			return GenerationConfig{}, fmt.Errorf("%s: field \"eos_token_id\": want an integer or a list of integers, got %s", path, jsonString(v))
		}
	}
	return g, nil
}

// tokenIDs accepts a JSON integer or a list of them (as decoded into any).
func tokenIDs(v any) ([]int, error) {
	one := func(x any) (int, error) {
		f, ok := x.(float64)
		if !ok || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
			return 0, fmt.Errorf("not an integer")
		}
		return int(f), nil
	}
	if list, ok := v.([]any); ok {
		ids := make([]int, 0, len(list))
		for _, x := range list {
			id, err := one(x)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		return ids, nil
	}
	id, err := one(v)
	if err != nil {
		return nil, err
	}
	return []int{id}, nil
}

// marshalGenerationConfig writes what transformers' GenerationConfig.from_model_config writes for a
// model config: the special token ids, eos as an int when there is one.
func marshalGenerationConfig(g GenerationConfig) ([]byte, error) {
	m := map[string]any{"_from_model_config": true}
	if g.BOSTokenID != nil {
		m["bos_token_id"] = *g.BOSTokenID
	}
	switch len(g.EOSTokenIDs) {
	case 0:
	case 1:
		m["eos_token_id"] = g.EOSTokenIDs[0]
	default:
		m["eos_token_id"] = g.EOSTokenIDs
	}
	if g.PadTokenID != nil {
		m["pad_token_id"] = *g.PadTokenID
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return clip(b)
}

// readBounded reads a small JSON side file, refusing anything over maxHeaderLen bytes so that a
// corrupt directory cannot make us allocate without bound.
func readBounded(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if st.Size() > maxHeaderLen {
		return nil, fmt.Errorf("%s: %d bytes is too large for a JSON side file (limit %d)", path, st.Size(), maxHeaderLen)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}
