package model

import (
	"strings"
	"testing"
)

// Config.Size counts exactly what ExpectedShapes builds (tensor count and total elements) for dense,
// untied, Mixtral and reward configs, without building it.
func TestConfigSizeMatchesExpectedShapes(t *testing.T) {
	cases := map[string]map[string]any{
		"stories260K (tied)": nil,
		"untied":             {"tie_word_embeddings": false},
		"mixtral":            {"architectures": []any{"MixtralForCausalLM"}, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
		"reward":             {"architectures": []any{"LlamaForSequenceClassification"}, "num_labels": 1},
	}
	for name, edits := range cases {
		c, err := ParseConfig(configJSON(t, edits), "config.json")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := c.Size()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		shapes := ExpectedShapes(c)
		var params int64
		for _, s := range shapes {
			params += int64(numel(s))
		}
		if got.Tensors != int64(len(shapes)) || got.Params != params {
			t.Errorf("%s: Size %+v, ExpectedShapes has %d tensors and %d parameters", name, got, len(shapes), params)
		}
	}
	// stories260K by hand: 512*64 embedding + 64 norm + 5 layers of (2*64 norms + 64*64 q + 2*32*64
	// k,v + 64*64 o + 3*172*64 MLP) = 32768 + 64 + 5*45440 = 260032 (the "260K").
	c, _ := ParseConfig(configJSON(t, nil), "config.json")
	if s, _ := c.Size(); s.Params != 260032 || s.Tensors != 47 {
		t.Errorf("stories260K: %+v, want 260032 parameters in 47 tensors", s)
	}
}

// A config whose sizes multiply past MaxParams is refused by ParseConfig, before any allocation.
func TestConfigTooLarge(t *testing.T) {
	const want = "config.json: the model it describes has more than 1099511627776 parameters"
	for name, edits := range map[string]map[string]any{
		"1e8 layers of 4096": {"num_hidden_layers": 100000000, "hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128},
		"2^40 vocabulary":    {"vocab_size": 1 << 40},
		"2^31 experts":       {"architectures": []any{"MixtralForCausalLM"}, "model_type": "mixtral", "num_local_experts": 1 << 31, "num_experts_per_tok": 2, "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "head_dim": 128},
		"2^62 width":         {"hidden_size": 1 << 62, "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 2},
	} {
		_, err := ParseConfig(configJSON(t, edits), "config.json")
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// CheckAgainst refuses a config claiming far more than the file holds, and leaves small gaps (a
// missing tensor) to the loader's precise message.
func TestCheckAgainst(t *testing.T) {
	c, err := ParseConfig(configJSON(t, map[string]any{"num_hidden_layers": 10000000}), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckAgainst(47, 260032)
	if want := "the config describes 10000000 layers and 454400032832 parameters (1817.60 GB as float32), but the weights hold 47 tensors and 260032 parameters"; err == nil || err.Error() != want {
		t.Errorf("1e7 layers: %v", err)
	}
	c, _ = ParseConfig(configJSON(t, nil), "config.json")
	if err := c.CheckAgainst(46, 260032-172*64); err != nil {
		t.Errorf("one tensor missing: %v", err)
	}
}

// FuzzParseConfig feeds arbitrary bytes as config.json: never a panic, every error one line naming
// the file, and an accepted config validates and has a size (so nothing built from it can overflow).
func FuzzParseConfig(f *testing.F) {
	t := &testing.T{}
	f.Add(configJSON(t, nil))
	f.Add(configJSON(t, map[string]any{"num_hidden_layers": 100000000}))
	f.Add(configJSON(t, map[string]any{"architectures": []any{"MixtralForCausalLM"}, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2}))
	f.Add([]byte(`{"eos_token_id": [1, 2], "sliding_window": null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "config.json")
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "config.json: ") || strings.Contains(msg, "\n") {
				t.Fatalf("error is not one line naming the file: %q", msg)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		if _, err := c.Size(); err != nil {
			t.Fatalf("accepted config has no size: %v", err)
		}
	})
}
