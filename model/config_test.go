package model

import (
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// storiesConfig is stories260K's config.json (a real transformers 4.44 LlamaForCausalLM config),
// as a map so that each case can edit it.
func storiesConfig() map[string]any {
	return map[string]any{
		"architectures": []any{"LlamaForCausalLM"}, "model_type": "llama", "vocab_size": 512,
		"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8,
		"num_key_value_heads": 4, "head_dim": 8, "hidden_act": "silu", "max_position_embeddings": 512,
		"rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": nil, "attention_bias": false,
		"attention_dropout": 0.0, "mlp_bias": false, "pretraining_tp": 1, "initializer_range": 0.02,
		"tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
		"use_cache": true, "transformers_version": "4.44.0",
	}
}

// configJSON applies edits (the string "DELETE" removes a key) and encodes the result.
func configJSON(t *testing.T, edits map[string]any) []byte {
	t.Helper()
	m := storiesConfig()
	for k, v := range edits {
		if v == "DELETE" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseConfigStories(t *testing.T) {
	c, err := ParseConfig(configJSON(t, nil), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", VocabSize: 512, HiddenSize: 64,
		IntermediateSize: 172, NumHiddenLayers: 5, NumAttentionHeads: 8, NumKeyValueHeads: 4, HeadDim: 8,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 512, TieWordEmbeddings: true,
		BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if c.QueryGroups() != 2 || c.EOS() != 2 || c.IsMoE() || c.IsRewardModel() {
		t.Errorf("derived: groups %d eos %d moe %v reward %v", c.QueryGroups(), c.EOS(), c.IsMoE(), c.IsRewardModel())
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cases := []struct {
		name  string
		edits map[string]any
		check func(c Config) bool
	}{
		{"head_dim defaults to hidden/heads", map[string]any{"head_dim": "DELETE"}, func(c Config) bool { return c.HeadDim == 64/8 }},
		{"null head_dim too", map[string]any{"head_dim": nil}, func(c Config) bool { return c.HeadDim == 8 }},
		{"num_key_value_heads defaults to heads (MHA)", map[string]any{"num_key_value_heads": "DELETE"},
			func(c Config) bool { return c.NumKeyValueHeads == 8 && c.QueryGroups() == 1 }},
		{"eos list", map[string]any{"eos_token_id": []int{2, 3}}, func(c Config) bool {
			return reflect.DeepEqual(c.EOSTokenIDs, []int{2, 3}) && c.EOS() == 2
		}},
		{"no eos", map[string]any{"eos_token_id": nil}, func(c Config) bool { return c.EOSTokenIDs == nil && c.EOS() == -1 }},
		{"mistral sliding window", map[string]any{"architectures": []string{"MistralForCausalLM"}, "model_type": "mistral", "sliding_window": 4096},
			func(c Config) bool { return c.SlidingWindow == 4096 }},
		{"null sliding window is full attention", map[string]any{"sliding_window": nil}, func(c Config) bool { return c.SlidingWindow == 0 }},
		{"mixtral", map[string]any{"architectures": []string{"MixtralForCausalLM"}, "model_type": "mixtral",
			"num_local_experts": 8, "num_experts_per_tok": 2, "router_aux_loss_coef": 0.02, "output_router_logits": false},
			func(c Config) bool {
				return c.IsMoE() && c.NumLocalExperts == 8 && c.NumExpertsPerTok == 2 && c.RouterAuxLossCoef == 0.02
			}},
		{"reward model", map[string]any{"architectures": []string{"LlamaForSequenceClassification"}, "num_labels": 1, "pad_token_id": 0},
			func(c Config) bool {
				return c.IsRewardModel() && c.NumLabels == 1 && c.PadTokenID != nil && *c.PadTokenID == 0
			}},
		{"bookkeeping keys are ignored", map[string]any{"_name_or_path": "x", "tokenizer_class": "LlamaTokenizer", "dtype": "bfloat16"},
			func(c Config) bool { return c.HiddenSize == 64 }},
	}
	for _, c := range cases {
		got, err := ParseConfig(configJSON(t, c.edits), "config.json")
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.check(got) {
			t.Errorf("%s: got %+v", c.name, got)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name  string
		edits map[string]any
		raw   string // used instead of edits when set
		want  string
	}{
		{"invalid JSON", nil, `{"vocab_size": `, "config.json: not valid JSON: unexpected end of JSON input"},
		{"missing hidden_size", map[string]any{"hidden_size": "DELETE"}, "", `config.json: field "hidden_size" is missing or not a positive integer`},
		{"missing vocab_size", map[string]any{"vocab_size": "DELETE"}, "", `config.json: field "vocab_size" is missing or not a positive integer`},
		{"zero layers", map[string]any{"num_hidden_layers": 0}, "", `config.json: field "num_hidden_layers" is missing or not a positive integer`},
		{"missing rms_norm_eps", map[string]any{"rms_norm_eps": "DELETE"}, "", `config.json: field "rms_norm_eps" is missing or not positive`},
		{"missing architectures", map[string]any{"architectures": "DELETE"}, "", `config.json: field "architectures" is missing`},
		{"hidden_size as a string", map[string]any{"hidden_size": "64"}, "", `config.json: field "hidden_size" has the wrong type: got a JSON string, want int`},
		{"fractional layers", map[string]any{"num_hidden_layers": 5.5}, "", `config.json: field "num_hidden_layers" has the wrong type: got a JSON number 5.5, want int`},
		{"eps as a string", map[string]any{"rms_norm_eps": "1e-5"}, "", `config.json: field "rms_norm_eps" has the wrong type: got a JSON string, want float64`},
		{"tie as a string", map[string]any{"tie_word_embeddings": "true"}, "", `config.json: field "tie_word_embeddings" has the wrong type: got a JSON string, want bool`},
		{"architectures as a string", map[string]any{"architectures": "LlamaForCausalLM"}, "", `config.json: field "architectures" has the wrong type: got a JSON string, want []string`},
		{"linear rope scaling", map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 2.0}}, "",
			`config.json: rope_scaling = {"factor":2,"type":"linear"} is not supported by alignkit's model (rope_type "linear" for llama; supported: "llama3" (LlamaForCausalLM), or rope_scaling null)`},
		{"yarn rope scaling", map[string]any{"rope_scaling": map[string]any{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}, "",
			`config.json: rope_scaling = {"factor":4,"original_max_position_embeddings":32768,"rope_type":"yarn"} is not supported by alignkit's model (rope_type "yarn" for llama; supported: "llama3" (LlamaForCausalLM), or rope_scaling null)`},
		{"llama3 rope scaling on qwen2", map[string]any{"architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2", "attention_bias": "DELETE", "mlp_bias": "DELETE", "pretraining_tp": "DELETE",
			"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}, "",
			`config.json: rope_scaling = {"factor":8,"high_freq_factor":4,"low_freq_factor":1,"original_max_position_embeddings":8192,"rope_type":"llama3"} is not supported by alignkit's model (rope_type "llama3" for qwen2; supported: "llama3" (LlamaForCausalLM), or rope_scaling null)`},
		{"llama3 rope scaling incomplete", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0}}, "",
			`config.json: rope_scaling.low_freq_factor is missing (rope_type llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings)`},
		{"llama3 rope scaling unknown key", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "beta_fast": 32}}, "",
			`config.json: rope_scaling.beta_fast is not a llama3 rope_scaling key (supported: factor, low_freq_factor, high_freq_factor, original_max_position_embeddings)`},
		{"llama3 rope scaling low >= high", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}, "",
			`config.json: rope_scaling: low_freq_factor 4 and high_freq_factor 4 must satisfy 0 < low < high`},
		{"mistral attention bias", map[string]any{"architectures": []string{"MistralForCausalLM"}, "model_type": "mistral", "attention_bias": true}, "",
			`config.json: attention_bias = true is not supported by alignkit's model (mistral has no attention biases; supported: false)`},
		{"qwen2 use_sliding_window", map[string]any{"architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2", "attention_bias": "DELETE", "mlp_bias": "DELETE", "use_sliding_window": true, "sliding_window": 4096}, "",
			`config.json: use_sliding_window = true is not supported by alignkit's model (qwen2 with sliding-window layers; supported: false)`},
		{"qwen3 moe key on llama", map[string]any{"num_experts": 8}, "",
			`config.json: field "num_experts" is not part of a llama config (it belongs to qwen3_moe)`},
		{"qwen3_moe without num_experts", map[string]any{"architectures": []string{"Qwen3MoeForCausalLM"}, "model_type": "qwen3_moe", "mlp_bias": "DELETE", "num_experts_per_tok": 2, "moe_intermediate_size": 32}, "",
			`config.json: field "num_experts" is missing for a Qwen3-MoE model`},
		{"qwen3_moe mlp_only_layers out of range", map[string]any{"architectures": []string{"Qwen3MoeForCausalLM"}, "model_type": "qwen3_moe", "mlp_bias": "DELETE", "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "mlp_only_layers": []int{5}}, "",
			`config.json: mlp_only_layers [5]: each entry must be a distinct layer index in 0..4`},
		{"mlp bias", map[string]any{"mlp_bias": true}, "", `config.json: mlp_bias = true is not supported by alignkit's model`},
		{"gelu", map[string]any{"hidden_act": "gelu"}, "", `config.json: hidden_act = "gelu" is not supported by alignkit's model`},
		{"pretraining_tp 2", map[string]any{"pretraining_tp": 2}, "", `config.json: pretraining_tp = 2 is not supported by alignkit's model`},
		{"attention dropout", map[string]any{"attention_dropout": 0.1}, "", `config.json: attention_dropout = 0.1 is not supported by alignkit's model`},
		{"partial rotary", map[string]any{"partial_rotary_factor": 0.5}, "", `config.json: partial_rotary_factor = 0.5 is not supported by alignkit's model`},
		{"unknown field", map[string]any{"qk_layernorm": true}, "", `config.json: unsupported field "qk_layernorm" (alignkit does not implement it)`},
		{"unknown architecture", map[string]any{"architectures": []string{"GPT2LMHeadModel"}}, "",
			`config.json: field "architectures": "GPT2LMHeadModel" is not supported (supported: ` + supportedList + `)`},
		// google/gemma-2b's config.json: the architecture is named before any of its unfamiliar keys.
		{"gemma", nil, `{"architectures": ["GemmaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 2,
			"eos_token_id": 1, "head_dim": 256, "hidden_act": "gelu", "hidden_size": 2048, "initializer_range": 0.02,
			"intermediate_size": 16384, "max_position_embeddings": 8192, "model_type": "gemma", "num_attention_heads": 8,
			"num_hidden_layers": 18, "num_key_value_heads": 1, "pad_token_id": 0, "rms_norm_eps": 1e-06, "rope_scaling": null,
			"rope_theta": 10000.0, "torch_dtype": "bfloat16", "transformers_version": "4.38.0.dev0", "use_cache": true, "vocab_size": 256000}`,
			`config.json: field "architectures": "GemmaForCausalLM" is not supported (supported: ` + supportedList + `)`},
		{"unknown model_type", map[string]any{"architectures": "DELETE", "model_type": "gemma2"}, "",
			`config.json: field "model_type": "gemma2" is not supported (supported: llama, mistral, mixtral, qwen2, qwen3, qwen3_moe)`},
		{"heads not a multiple of KV heads", map[string]any{"num_key_value_heads": 3}, "", "config.json: num_attention_heads 8 is not a multiple of num_key_value_heads 3"},
		{"odd head_dim", map[string]any{"head_dim": 7}, "", "config.json: head_dim 7 must be even for RoPE"},
		{"negative sliding window", map[string]any{"sliding_window": -1}, "", `config.json: field "sliding_window" must be positive or null, got -1`},
		{"eos outside vocab", map[string]any{"eos_token_id": 512}, "", "config.json: special token id 512 is outside the vocabulary (vocab_size 512)"},
		{"bos negative", map[string]any{"bos_token_id": -1}, "", "config.json: special token id -1 is outside the vocabulary (vocab_size 512)"},
		{"eos as a string", map[string]any{"eos_token_id": "2"}, "", `config.json: field "eos_token_id": want an integer or a list of integers, got "2"`},
		{"eos list with a fraction", map[string]any{"eos_token_id": []any{2, 2.5}}, "", `config.json: field "eos_token_id": want an integer or a list of integers, got [2,2.5]`},
		{"too many experts per token", map[string]any{"architectures": []string{"MixtralForCausalLM"}, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 5}, "",
			"config.json: num_experts_per_tok 5 must be in 1..num_local_experts (4)"},
		{"mixtral without experts", map[string]any{"architectures": []string{"MixtralForCausalLM"}, "model_type": "mixtral", "num_experts_per_tok": 2}, "",
			`config.json: field "num_local_experts" is missing for a Mixtral model`},
		{"reward model with two labels", map[string]any{"architectures": []string{"LlamaForSequenceClassification"}, "num_labels": 2}, "",
			"config.json: num_labels 2: a reward model has exactly one label"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.raw)
			if c.raw == "" {
				data = configJSON(t, c.edits)
			}
			_, err := ParseConfig(data, "config.json")
			if err == nil || err.Error() != c.want {
				t.Fatalf("error %v\nwant     %s", err, c.want)
			}
		})
	}
}

const supportedList = "LlamaForCausalLM, LlamaForSequenceClassification, MistralForCausalLM, MistralForSequenceClassification, MixtralForCausalLM, MixtralForSequenceClassification, Qwen2ForCausalLM, Qwen2ForSequenceClassification, Qwen3ForCausalLM, Qwen3ForSequenceClassification, Qwen3MoeForCausalLM, Qwen3MoeForSequenceClassification"

func TestLoadConfigMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	_, err := LoadConfig(p)
	if want := "reading model config: open " + p + ": no such file or directory"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}

func TestMarshalHFRoundTrip(t *testing.T) {
	llama, err := ParseConfig(configJSON(t, nil), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	pad := 0
	reward := llama
	reward.Architectures, reward.NumLabels, reward.PadTokenID = []string{"LlamaForSequenceClassification"}, 1, &pad
	multiEOS := llama
	multiEOS.EOSTokenIDs = []int{2, 3}
	mistral := llama
	mistral.Architectures, mistral.ModelType, mistral.SlidingWindow = []string{"MistralForCausalLM"}, "mistral", 4096
	mistralFull := mistral
	mistralFull.SlidingWindow = 0
	mixtral := llama
	mixtral.Architectures, mixtral.ModelType = []string{"MixtralForCausalLM"}, "mixtral"
	mixtral.NumLocalExperts, mixtral.NumExpertsPerTok, mixtral.RouterAuxLossCoef = 8, 2, 0.02
	cases := []struct {
		name string
		c    Config
		keys map[string]any // JSON values MarshalHF must write (nil: written as null; "ABSENT": not written)
	}{
		{"llama", llama, map[string]any{"eos_token_id": 2.0, "sliding_window": "ABSENT", "hidden_act": "silu", "rope_scaling": nil, "torch_dtype": "float32"}},
		{"eos list", multiEOS, map[string]any{"eos_token_id": []any{2.0, 3.0}}},
		{"reward", reward, map[string]any{"num_labels": 1.0, "pad_token_id": 0.0}},
		{"mistral", mistral, map[string]any{"sliding_window": 4096.0}},
		{"mistral without window", mistralFull, map[string]any{"sliding_window": nil}},
		{"mixtral", mixtral, map[string]any{"num_local_experts": 8.0, "num_experts_per_tok": 2.0, "router_aux_loss_coef": 0.02}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.c.MarshalHF()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseConfig(b, "out.json")
			if err != nil {
				t.Fatalf("MarshalHF output does not parse: %v\n%s", err, b)
			}
			if !reflect.DeepEqual(back, c.c) {
				t.Errorf("round trip:\n got  %+v\n want %+v", back, c.c)
			}
			var raw map[string]any
			json.Unmarshal(b, &raw)
			for k, want := range c.keys {
				got, ok := raw[k]
				if want == "ABSENT" {
					if ok {
						t.Errorf("%s written as %v, want absent", k, got)
					}
					continue
				}
				if !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
				}
			}
		})
	}
}

func TestExpectedShapesAndKeys(t *testing.T) {
	if got := LayerKey(3, "self_attn.q_proj.weight"); got != "model.layers.3.self_attn.q_proj.weight" {
		t.Errorf("LayerKey = %s", got)
	}
	if got := ExpertKey(0, 2, "w1"); got != "model.layers.0.block_sparse_moe.experts.2.w1.weight" {
		t.Errorf("ExpertKey = %s", got)
	}
	llama, _ := ParseConfig(configJSON(t, nil), "config.json")
	untied := llama
	untied.TieWordEmbeddings = false
	reward := untied
	reward.Architectures, reward.NumLabels = []string{"LlamaForSequenceClassification"}, 1
	moe := untied
	moe.Architectures, moe.ModelType = []string{"MixtralForCausalLM"}, "mixtral"
	moe.NumLocalExperts, moe.NumExpertsPerTok = 4, 2
	cases := []struct {
		name   string
		c      Config
		count  int
		shapes map[string][]int // nil: must be absent
	}{
		// 2 (embeddings, final norm) + 9 per layer (2 norms, q k v o, gate up down).
		{"tied llama", llama, 2 + 9*5, map[string][]int{
			EmbedKey: {512, 64}, FinalNormKey: {64}, LMHeadKey: nil, ScoreKey: nil,
			"model.layers.4.self_attn.q_proj.weight": {64, 64}, "model.layers.4.self_attn.k_proj.weight": {32, 64},
			"model.layers.0.self_attn.o_proj.weight": {64, 64}, "model.layers.2.mlp.down_proj.weight": {64, 172},
			"model.layers.5.input_layernorm.weight": nil,
		}},
		{"untied llama", untied, 3 + 9*5, map[string][]int{LMHeadKey: {512, 64}}},
		// A reward model has a score head instead of lm_head, tied or not.
		{"reward", reward, 3 + 9*5, map[string][]int{ScoreKey: {1, 64}, LMHeadKey: nil}},
		// 6 attention/norm tensors + router + 3 per expert, per layer.
		{"mixtral", moe, 3 + (6+1+3*4)*5, map[string][]int{
			"model.layers.1.block_sparse_moe.gate.weight": {4, 64}, ExpertKey(1, 3, "w1"): {172, 64},
			ExpertKey(1, 3, "w3"): {172, 64}, ExpertKey(1, 3, "w2"): {64, 172}, "model.layers.1.mlp.up_proj.weight": nil,
		}},
	}
	for _, c := range cases {
		s := ExpectedShapes(c.c)
		if len(s) != c.count {
			t.Errorf("%s: %d tensors, want %d", c.name, len(s), c.count)
		}
		for name, want := range c.shapes {
			got, ok := s[name]
			if want == nil {
				if ok {
					t.Errorf("%s: %s present with %v", c.name, name, got)
				}
			} else if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s = %v, want %v", c.name, name, got, want)
			}
		}
	}
}

func TestWeightsCheck(t *testing.T) {
	cfg, _ := ParseConfig(configJSON(t, nil), "config.json")
	good := InitRandom(cfg, 1, 0.02)
	if err := good.Check("ckpt"); err != nil {
		t.Fatalf("InitRandom weights fail Check: %v", err)
	}
	cases := []struct {
		name string
		edit func(w *Weights)
		want string
	}{
		{"missing", func(w *Weights) { delete(w.Tensors, "model.layers.2.mlp.up_proj.weight") }, `ckpt: tensor "model.layers.2.mlp.up_proj.weight" is missing`},
		{"wrong shape (transposed)", func(w *Weights) { w.Tensors["model.layers.0.mlp.up_proj.weight"].Shape = []int{64, 172} },
			`ckpt: tensor "model.layers.0.mlp.up_proj.weight" has shape [64 172], config.json implies [172 64]`},
		{"wrong rank", func(w *Weights) { w.Tensors[FinalNormKey].Shape = []int{1, 64} }, `ckpt: tensor "model.norm.weight" has shape [1 64], config.json implies [64]`},
		{"short data", func(w *Weights) { w.Tensors[FinalNormKey].Data = w.Tensors[FinalNormKey].Data[:10] }, `ckpt: tensor "model.norm.weight" holds 10 values for shape [64]`},
		{"unexpected lm_head on a tied model", func(w *Weights) { w.Tensors[LMHeadKey] = NewTensor(512, 64) }, `ckpt: unexpected tensor "lm_head.weight" for this config`},
	}
	for _, c := range cases {
		w := good.Clone()
		c.edit(w)
		if err := w.Check("ckpt"); err == nil || err.Error() != c.want {
			t.Errorf("%s: error %v\nwant %s", c.name, err, c.want)
		}
	}
	if _, err := good.Get("nope"); err == nil || err.Error() != `tensor "nope" is missing` {
		t.Errorf("Get error %v", err)
	}
}

func TestInitRandomCloneOutputHead(t *testing.T) {
	cfg, _ := ParseConfig(configJSON(t, nil), "config.json")
	a, b, other := InitRandom(cfg, 42, 0.02), InitRandom(cfg, 42, 0.02), InitRandom(cfg, 43, 0.02)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different weights")
	}
	if reflect.DeepEqual(a.Tensors[EmbedKey].Data, other.Tensors[EmbedKey].Data) {
		t.Error("different seeds, same embeddings")
	}
	for _, v := range a.Tensors[FinalNormKey].Data {
		if v != 1 {
			t.Fatalf("RMSNorm gain %v, want 1", v)
		}
	}
	// 32768 normal(0, 0.02) samples: the sample std is within 2% of 0.02 (its standard error is
	// 0.02/sqrt(2·32768) ≈ 0.4%).
	var sum, sq float64
	e := a.Tensors[EmbedKey].Data
	for _, v := range e {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	mean := sum / float64(len(e))
	std := math.Sqrt(sq/float64(len(e)) - mean*mean)
	if math.Abs(std-0.02) > 0.0004 || math.Abs(mean) > 0.0005 {
		t.Errorf("embedding mean %v std %v, want 0 and 0.02", mean, std)
	}
	if a.OutputHead() != a.Tensors[EmbedKey] {
		t.Error("tied model's output head is not the embedding")
	}
	c := a.Clone()
	c.Tensors[EmbedKey].Data[0] = 99
	c.Tensors[EmbedKey].Shape[0] = 1
	if a.Tensors[EmbedKey].Data[0] == 99 || a.Tensors[EmbedKey].Shape[0] != 512 {
		t.Error("Clone shares memory with the original")
	}
	untied := cfg
	untied.TieWordEmbeddings = false
	u := InitRandom(untied, 1, 0)
	if u.OutputHead() != u.Tensors[LMHeadKey] {
		t.Error("untied model's output head is not lm_head")
	}
	if names := a.Names(); !strings.HasPrefix(names[0], "model.embed_tokens") || len(names) != 47 {
		t.Errorf("Names: %v", names[:3])
	}
}
