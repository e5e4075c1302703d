package model

import (
	"fmt"
	"strings"
)

// Role is what a per-layer tensor is for. The training graph, the inference engine and the HF and
// GGUF readers and writers all ask for tensors by role, and LayerTensors turns a role into the
// architecture's names: the one table below is the only place that spells them.
type Role int

const (
	RoleAttnNorm   Role = iota // (D) input_layernorm
	RoleQ                      // (H·hd, D)
	RoleK                      // (KV·hd, D)
	RoleV                      // (KV·hd, D)
	RoleO                      // (D, H·hd)
	RoleQBias                  // (H·hd)
	RoleKBias                  // (KV·hd)
	RoleVBias                  // (KV·hd)
	RoleOBias                  // (D)
	RoleQNorm                  // (hd): Qwen3's per-head RMSNorm gain on q, before RoPE
	RoleKNorm                  // (hd)
	RoleMLPNorm                // (D) post_attention_layernorm
	RoleGate                   // (F, D) dense SwiGLU
	RoleUp                     // (F, D)
	RoleDown                   // (D, F)
	RoleRouter                 // (E, D) MoE router
	RoleExpertGate             // (Fe, D) per expert
	RoleExpertUp               // (Fe, D)
	RoleExpertDown             // (D, Fe)
)

// tensorNames is one role's name in transformers (the suffix after "model.layers.N.", with %d for the
// expert index) and in llama.cpp (the suffix after "blk.N."; experts are stacked into one tensor).
// legacy is llama.cpp's older one-tensor-per-expert name ("ffn_gate.%d.weight"), read but not written.
type tensorNames struct{ hf, gguf, legacy string }

// archSpec is one transformers architecture family: its llama.cpp architecture name, whether llama.cpp
// stores its Q/K rows in interleaved RoPE order (the `llama` arch's NORM rope; the Qwen archs use NEOX,
// which is transformers' rotate-half, so nothing is permuted), and its tensor names.
type archSpec struct {
	gguf      string
	permuteQK bool
	names     map[Role]tensorNames
}

// commonNames are the tensors whose names every supported family shares.
var commonNames = map[Role]tensorNames{
	RoleAttnNorm: {"input_layernorm.weight", "attn_norm.weight", ""},
	RoleQ:        {"self_attn.q_proj.weight", "attn_q.weight", ""},
	RoleK:        {"self_attn.k_proj.weight", "attn_k.weight", ""},
	RoleV:        {"self_attn.v_proj.weight", "attn_v.weight", ""},
	RoleO:        {"self_attn.o_proj.weight", "attn_output.weight", ""},
	RoleQBias:    {"self_attn.q_proj.bias", "attn_q.bias", ""},
	RoleKBias:    {"self_attn.k_proj.bias", "attn_k.bias", ""},
	RoleVBias:    {"self_attn.v_proj.bias", "attn_v.bias", ""},
	RoleOBias:    {"self_attn.o_proj.bias", "attn_output.bias", ""},
	RoleQNorm:    {"self_attn.q_norm.weight", "attn_q_norm.weight", ""},
	RoleKNorm:    {"self_attn.k_norm.weight", "attn_k_norm.weight", ""},
	RoleMLPNorm:  {"post_attention_layernorm.weight", "ffn_norm.weight", ""},
	RoleGate:     {"mlp.gate_proj.weight", "ffn_gate.weight", ""},
	RoleUp:       {"mlp.up_proj.weight", "ffn_up.weight", ""},
	RoleDown:     {"mlp.down_proj.weight", "ffn_down.weight", ""},
}

// mixtralMoE and qwenMoE are the two spellings of a sparse MLP block (ollama's convert_mixtral.go and
// convert_qwen3.go map the same pairs).
var mixtralMoE = map[Role]tensorNames{
	RoleRouter:     {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight", ""},
	RoleExpertGate: {"block_sparse_moe.experts.%d.w1.weight", "ffn_gate_exps.weight", "ffn_gate.%d.weight"},
	RoleExpertUp:   {"block_sparse_moe.experts.%d.w3.weight", "ffn_up_exps.weight", "ffn_up.%d.weight"},
	RoleExpertDown: {"block_sparse_moe.experts.%d.w2.weight", "ffn_down_exps.weight", "ffn_down.%d.weight"},
}

var qwenMoE = map[Role]tensorNames{
	RoleRouter:     {"mlp.gate.weight", "ffn_gate_inp.weight", ""},
	RoleExpertGate: {"mlp.experts.%d.gate_proj.weight", "ffn_gate_exps.weight", ""},
	RoleExpertUp:   {"mlp.experts.%d.up_proj.weight", "ffn_up_exps.weight", ""},
	RoleExpertDown: {"mlp.experts.%d.down_proj.weight", "ffn_down_exps.weight", ""},
}

func withNames(parts ...map[Role]tensorNames) map[Role]tensorNames {
	out := map[Role]tensorNames{}
	for _, p := range parts {
		for r, n := range p {
			out[r] = n
		}
	}
	return out
}

// archs is the table, keyed by config.json's model_type.
var archs = map[string]archSpec{
	"llama":     {gguf: "llama", permuteQK: true, names: commonNames},
	"mistral":   {gguf: "llama", permuteQK: true, names: commonNames},
	"mixtral":   {gguf: "llama", permuteQK: true, names: withNames(commonNames, mixtralMoE)},
	"qwen2":     {gguf: "qwen2", names: commonNames},
	"qwen3":     {gguf: "qwen3", names: commonNames},
	"qwen3_moe": {gguf: "qwen3moe", names: withNames(commonNames, qwenMoE)},
}

// GGUFArch is llama.cpp's architecture name for this configuration ("llama", "qwen2", "qwen3",
// "qwen3moe").
func (c Config) GGUFArch() string { return archs[c.Family()].gguf }

// GGUFPermutesQK reports whether llama.cpp's architecture rotates interleaved pairs, so that Q/K rows
// (and biases) are permuted from transformers' rotate-half layout on export.
func (c Config) GGUFPermutesQK() bool { return archs[c.Family()].permuteQK }

// ModelTypeForGGUF returns the model_type whose llama.cpp architecture is arch, for a dense or MoE
// model; ok is false for an architecture alignkit does not read.
func ModelTypeForGGUF(arch string, moe bool) (string, bool) {
	switch {
	case arch == "llama" && moe:
		return "mixtral", true
	case arch == "llama" || arch == "qwen2" || arch == "qwen3":
		return arch, true
	case arch == "qwen3moe":
		return "qwen3_moe", true
	}
	return "", false
}

// GGUFArchs lists the llama.cpp architectures alignkit reads and writes.
func GGUFArchs() []string { return []string{"llama", "qwen2", "qwen3", "qwen3moe"} }

// LayerTensor is one tensor of one layer: its role, its name in transformers (alignkit's key) and in
// llama.cpp, and its torch-order shape.
type LayerTensor struct {
	Role   Role
	Expert int    // the expert index for RoleExpert*, else -1
	HF     string // "model.layers.3.self_attn.q_proj.weight"
	GGUF   string // "blk.3.attn_q.weight"; for experts the stacked tensor "blk.3.ffn_gate_exps.weight"
	Legacy string // llama.cpp's older per-expert name ("blk.3.ffn_gate.2.weight"), or ""
	Shape  []int
	// RoPEHeads > 0 marks a Q or K weight or bias whose rows llama.cpp's `llama` arch stores in
	// interleaved RoPE order: the rows split into this many heads.
	RoPEHeads int
}

// LayerTensors lists layer l's tensors for this configuration, in convert_hf_to_gguf.py's order.
func (c Config) LayerTensors(l int) []LayerTensor {
	spec := archs[c.Family()]
	D, H, KV, hd := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	var out []LayerTensor
	add := func(r Role, expert int, shape ...int) {
		n := spec.names[r]
		lt := LayerTensor{Role: r, Expert: expert, HF: LayerKey(l, n.hf), GGUF: fmt.Sprintf("blk.%d.%s", l, n.gguf), Shape: shape}
		if expert >= 0 {
			lt.HF = LayerKey(l, fmt.Sprintf(n.hf, expert))
			if n.legacy != "" {
				lt.Legacy = fmt.Sprintf("blk.%d.%s", l, fmt.Sprintf(n.legacy, expert))
			}
		}
		if spec.permuteQK && (r == RoleQ || r == RoleQBias) {
			lt.RoPEHeads = H
		}
		if spec.permuteQK && (r == RoleK || r == RoleKBias) {
			lt.RoPEHeads = KV
		}
		out = append(out, lt)
	}
	add(RoleAttnNorm, -1, D)
	add(RoleQ, -1, H*hd, D)
	if c.QKVBias() {
		add(RoleQBias, -1, H*hd)
	}
	add(RoleK, -1, KV*hd, D)
	if c.QKVBias() {
		add(RoleKBias, -1, KV*hd)
	}
	add(RoleV, -1, KV*hd, D)
	if c.QKVBias() {
		add(RoleVBias, -1, KV*hd)
	}
	add(RoleO, -1, D, H*hd)
	if c.OBias() {
		add(RoleOBias, -1, D)
	}
	if c.QKNorm() {
		add(RoleQNorm, -1, hd)
		add(RoleKNorm, -1, hd)
	}
	add(RoleMLPNorm, -1, D)
	if c.MoELayer(l) {
		F := c.ExpertIntermediateSize()
		add(RoleRouter, -1, c.NumLocalExperts, D)
		for _, r := range []Role{RoleExpertGate, RoleExpertDown, RoleExpertUp} {
			for e := 0; e < c.NumLocalExperts; e++ {
				if r == RoleExpertDown {
					add(r, e, D, F)
				} else {
					add(r, e, F, D)
				}
			}
		}
	} else {
		F := c.IntermediateSize
		add(RoleGate, -1, F, D)
		add(RoleDown, -1, D, F)
		add(RoleUp, -1, F, D)
	}
	return out
}

// TensorKey is the transformers name of role r in layer l (expert e for RoleExpert*, else ignored).
func (c Config) TensorKey(l int, r Role, e int) string {
	n, ok := archs[c.Family()].names[r]
	if !ok {
		panic(fmt.Sprintf("model: model_type %q has no tensor for role %d", c.Family(), r))
	}
	if strings.Contains(n.hf, "%d") {
		return LayerKey(l, fmt.Sprintf(n.hf, e))
	}
	return LayerKey(l, n.hf)
}

// QKVBias reports whether q_proj, k_proj and v_proj have biases: always for Qwen2, attention_bias
// for Llama and Qwen3.
func (c Config) QKVBias() bool { return c.Family() == "qwen2" || c.AttentionBias }

// OBias reports whether o_proj has a bias: attention_bias for Llama and Qwen3 (Qwen2's o_proj has none).
func (c Config) OBias() bool { return c.Family() != "qwen2" && c.AttentionBias }

// QKNorm reports whether q and k get a per-head RMSNorm before RoPE (Qwen3, Qwen3-MoE).
func (c Config) QKNorm() bool { return c.Family() == "qwen3" || c.Family() == "qwen3_moe" }

// MoELayer reports whether layer l's MLP is the sparse expert block: every layer of Mixtral; for
// Qwen3-MoE, transformers' rule: l not in mlp_only_layers and (l+1) % decoder_sparse_step == 0.
func (c Config) MoELayer(l int) bool {
	if c.NumLocalExperts == 0 {
		return false
	}
	if c.Family() != "qwen3_moe" {
		return true
	}
	for _, m := range c.MLPOnlyLayers {
		if m == l {
			return false
		}
	}
	return c.DecoderSparseStep > 0 && (l+1)%c.DecoderSparseStep == 0
}

// ExpertIntermediateSize is each expert's SwiGLU width: moe_intermediate_size for Qwen3-MoE,
// intermediate_size for Mixtral.
func (c Config) ExpertIntermediateSize() int {
	if c.Family() == "qwen3_moe" {
		return c.MoEIntermediateSize
	}
	return c.IntermediateSize
}

// NormTopK reports whether the top-k routing weights are renormalised to sum 1 (Mixtral always;
// Qwen3-MoE when norm_topk_prob).
func (c Config) NormTopK() bool { return c.Family() != "qwen3_moe" || c.NormTopKProb }

// Family is model_type, or the family of the first architecture when model_type is empty.
func (c Config) Family() string {
	if c.ModelType != "" {
		return c.ModelType
	}
	if len(c.Architectures) > 0 {
		return supportedArchitectures[c.Architectures[0]]
	}
	return ""
}
