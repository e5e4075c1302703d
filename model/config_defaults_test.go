package model

import "testing"

// TestParseConfigDefaults checks the values transformers assumes for absent keys
// (LlamaConfig/MixtralConfig defaults in transformers' configuration_*.py).
func TestParseConfigTransformersDefaults(t *testing.T) {
	base := `"vocab_size": 32, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
	"num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "eos_token_id": 2`
	cases := []struct {
		name, json string
		check      func(Config) bool
	}{
		{"llama 2 without rope_theta", `{"architectures": ["LlamaForCausalLM"], "model_type": "llama", ` + base + `}`,
			func(c Config) bool { return c.RopeTheta == 10000 && c.BOSTokenID == 1 }},
		{"mixtral defaults", `{"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2, ` + base + `}`,
			func(c Config) bool { return c.RopeTheta == 1e6 && c.RouterAuxLossCoef == 0.001 }},
		{"explicit zero aux coefficient", `{"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2, "router_aux_loss_coef": 0, ` + base + `}`,
			func(c Config) bool { return c.RouterAuxLossCoef == 0 }},
		{"reward model labels from id2label", `{"architectures": ["LlamaForSequenceClassification"], "model_type": "llama", "id2label": {"0": "LABEL_0"}, ` + base + `}`,
			func(c Config) bool { return c.NumLabels == 1 && c.IsRewardModel() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
	for _, bad := range []struct{ json, want string }{
		{`[1, 2]`, "config.json: want a JSON object, got an array"},
		{`{"architectures": ["MixtralForCausalLM"], "model_type": "llama", ` + base + `}`, `config.json: model_type "llama" does not match architecture "MixtralForCausalLM" (want "mixtral")`},
		{`{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "router_jitter_noise": 0.1, ` + base + `}`, `config.json: router_jitter_noise = 0.1 is not supported by alignkit's model`},
	} {
		if _, err := ParseConfig([]byte(bad.json), "config.json"); err == nil || err.Error() != bad.want {
			t.Errorf("got %v, want %s", err, bad.want)
		}
	}
}
