package model

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

// Real config.json files (meta-llama/Llama-3.2-1B, Qwen/Qwen2.5-0.5B, Qwen/Qwen3-0.6B,
// Qwen/Qwen3-30B-A3B), verbatim but for their sizes where noted.
var familyConfigs = map[string]string{
	"llama3.2": `{"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
		"bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
		"initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
		"model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
		"pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0,
		"low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "rope_theta": 500000.0,
		"tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.45.0.dev0", "use_cache": true,
		"vocab_size": 128256}`,
	"qwen2.5": `{"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
		"eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
		"intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2",
		"num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
		"rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
		"transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}`,
	"qwen3": `{"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
		"bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
		"initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28,
		"model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
		"rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
		"tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
		"use_sliding_window": false, "vocab_size": 151936}`,
	"qwen3moe": `{"architectures": ["Qwen3MoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
		"bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
		"hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144, "max_position_embeddings": 40960,
		"max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768,
		"norm_topk_prob": true, "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8,
		"num_hidden_layers": 48, "num_key_value_heads": 4, "output_router_logits": false, "rms_norm_eps": 1e-06,
		"rope_scaling": null, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001, "sliding_window": null,
		"tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
		"use_sliding_window": false, "vocab_size": 151936}`,
}

func TestParseConfigFamilies(t *testing.T) {
	want := map[string]Config{
		"llama3.2": {Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", VocabSize: 128256, HiddenSize: 2048,
			IntermediateSize: 8192, NumHiddenLayers: 16, NumAttentionHeads: 32, NumKeyValueHeads: 8, HeadDim: 64,
			RMSNormEps: 1e-5, RopeTheta: 500000, MaxPositionEmbeddings: 131072, TieWordEmbeddings: true,
			BOSTokenID: 128000, EOSTokenIDs: []int{128001},
			RopeScaling: &RopeScaling{RopeType: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}},
		"qwen2.5": {Architectures: []string{"Qwen2ForCausalLM"}, ModelType: "qwen2", VocabSize: 151936, HiddenSize: 896,
			IntermediateSize: 4864, NumHiddenLayers: 24, NumAttentionHeads: 14, NumKeyValueHeads: 2, HeadDim: 64,
			RMSNormEps: 1e-6, RopeTheta: 1e6, MaxPositionEmbeddings: 32768, TieWordEmbeddings: true,
			BOSTokenID: 151643, EOSTokenIDs: []int{151643}},
		"qwen3": {Architectures: []string{"Qwen3ForCausalLM"}, ModelType: "qwen3", VocabSize: 151936, HiddenSize: 1024,
			IntermediateSize: 3072, NumHiddenLayers: 28, NumAttentionHeads: 16, NumKeyValueHeads: 8, HeadDim: 128,
			RMSNormEps: 1e-6, RopeTheta: 1e6, MaxPositionEmbeddings: 40960, TieWordEmbeddings: true,
			BOSTokenID: 151643, EOSTokenIDs: []int{151645}},
		"qwen3moe": {Architectures: []string{"Qwen3MoeForCausalLM"}, ModelType: "qwen3_moe", VocabSize: 151936, HiddenSize: 2048,
			IntermediateSize: 6144, NumHiddenLayers: 48, NumAttentionHeads: 32, NumKeyValueHeads: 4, HeadDim: 128,
			RMSNormEps: 1e-6, RopeTheta: 1e6, MaxPositionEmbeddings: 40960, BOSTokenID: 151643, EOSTokenIDs: []int{151645},
			NumLocalExperts: 128, NumExpertsPerTok: 8, RouterAuxLossCoef: 0.001, NormTopKProb: true, DecoderSparseStep: 1,
			MoEIntermediateSize: 768},
	}
	for name, raw := range familyConfigs {
		t.Run(name, func(t *testing.T) {
			c, err := ParseConfig([]byte(raw), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, want[name]) {
				t.Fatalf("got  %+v\nwant %+v", c, want[name])
			}
			// MarshalHF writes it back as transformers would, and it parses to the same config.
			b, err := c.MarshalHF()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseConfig(b, "out.json")
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			if !reflect.DeepEqual(back, c) {
				t.Fatalf("round trip:\n got  %+v\n want %+v", back, c)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"num_local_experts", "mlp_bias"} {
				if _, ok := m[k]; ok && c.ModelType != "llama" {
					t.Errorf("%s written for %s", k, c.ModelType)
				}
			}
		})
	}
}

// TestLayerTensorsPerFamily pins the table: the names and shapes each family's layers have.
func TestLayerTensorsPerFamily(t *testing.T) {
	parse := func(name string) Config {
		c, err := ParseConfig([]byte(familyConfigs[name]), "config.json")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	names := func(c Config, l int) map[string][]int {
		m := map[string][]int{}
		for _, lt := range c.LayerTensors(l) {
			m[lt.HF+" "+lt.GGUF] = lt.Shape
		}
		return m
	}
	q2 := names(parse("qwen2.5"), 3)
	if got := q2["model.layers.3.self_attn.q_proj.bias blk.3.attn_q.bias"]; !reflect.DeepEqual(got, []int{896}) {
		t.Errorf("qwen2 q bias %v", got)
	}
	if _, ok := q2["model.layers.3.self_attn.o_proj.bias blk.3.attn_output.bias"]; ok || len(q2) != 12 {
		t.Errorf("qwen2 layer has %d tensors (want 12: 9 + q/k/v biases, no o bias): %v", len(q2), q2)
	}
	q3 := names(parse("qwen3"), 0)
	if got := q3["model.layers.0.self_attn.k_norm.weight blk.0.attn_k_norm.weight"]; !reflect.DeepEqual(got, []int{128}) || len(q3) != 11 {
		t.Errorf("qwen3 k_norm %v, %d tensors", got, len(q3))
	}
	moe := parse("qwen3moe")
	m := names(moe, 47)
	if got := m["model.layers.47.mlp.experts.127.down_proj.weight blk.47.ffn_down_exps.weight"]; !reflect.DeepEqual(got, []int{2048, 768}) {
		t.Errorf("qwen3moe expert down %v", got)
	}
	if got := m["model.layers.47.mlp.gate.weight blk.47.ffn_gate_inp.weight"]; !reflect.DeepEqual(got, []int{128, 2048}) || len(m) != 8+1+3*128 {
		t.Errorf("qwen3moe router %v, %d tensors", got, len(m))
	}
	moe.MLPOnlyLayers = []int{47}
	if got := names(moe, 47)["model.layers.47.mlp.gate_proj.weight blk.47.ffn_gate.weight"]; !reflect.DeepEqual(got, []int{6144, 2048}) {
		t.Errorf("qwen3moe mlp_only layer gate %v", got)
	}
	for _, lt := range parse("llama3.2").LayerTensors(0) {
		if wantHeads := map[Role]int{RoleQ: 32, RoleK: 8}[lt.Role]; lt.RoPEHeads != wantHeads {
			t.Errorf("llama %s permuted in %d heads, want %d", lt.HF, lt.RoPEHeads, wantHeads)
		}
	}
}

// TestRopeFactorsLlama32 checks Llama 3.2-1B's factors against convert_hf_to_gguf.py's
// generate_extra_tensors evaluated in Python (float64): pairs 0-14 high frequency (1), 15-17 blended,
// 18-31 low (32).
func TestRopeFactorsLlama32(t *testing.T) {
	c, err := ParseConfig([]byte(familyConfigs["llama3.2"]), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	f := c.RopeFactors()
	if len(f) != 32 {
		t.Fatalf("%d factors", len(f))
	}
	want := map[int]float64{0: 1, 14: 1, 15: 1.6513292457638984, 16: 3.2922621029408843, 17: 9.666728978753293, 18: 32, 31: 32}
	for i, w := range want {
		if math.Abs(f[i]-w) > 1e-12*w {
			t.Errorf("factor %d = %.17g, want %.17g", i, f[i], w)
		}
	}
	inv := c.InvFreq()
	if d := inv[20] - math.Pow(500000, -40.0/64)/32; math.Abs(d) > 1e-18 {
		t.Errorf("inv_freq[20] = %g, want theta^(-40/64)/32", inv[20])
	}
}
