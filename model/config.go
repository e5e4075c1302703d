package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
)

// Config is an HF config.json for LlamaForCausalLM, MistralForCausalLM or MixtralForCausalLM (and their
// *ForSequenceClassification reward-model variants). Field names follow transformers; the zero value of an
// optional field means "off": SlidingWindow 0 is full causal attention, NumLocalExperts 0 is a dense MLP.
type Config struct {
	Architectures []string `json:"architectures"`
	ModelType     string   `json:"model_type"` // "llama", "mistral" or "mixtral"

	VocabSize         int `json:"vocab_size"`
	HiddenSize        int `json:"hidden_size"`       // D
	IntermediateSize  int `json:"intermediate_size"` // F, the SwiGLU width (per expert for Mixtral)
	NumHiddenLayers   int `json:"num_hidden_layers"`
	NumAttentionHeads int `json:"num_attention_heads"` // H
	NumKeyValueHeads  int `json:"num_key_value_heads"` // KV heads; H/KV query heads share each one (GQA)
	HeadDim           int `json:"head_dim"`            // defaults to D/H

	RMSNormEps            float64 `json:"rms_norm_eps"`
	RopeTheta             float64 `json:"rope_theta"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	SlidingWindow         int     `json:"sliding_window,omitempty"` // Mistral: a token sees the last W positions, itself included
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`

	BOSTokenID  int   `json:"bos_token_id"`
	EOSTokenIDs []int `json:"-"` // config.json's eos_token_id, an int or a list
	PadTokenID  *int  `json:"pad_token_id,omitempty"`

	NumLocalExperts   int     `json:"num_local_experts,omitempty"`   // E; 0 means a dense SwiGLU MLP
	NumExpertsPerTok  int     `json:"num_experts_per_tok,omitempty"` // top-k routing
	RouterAuxLossCoef float64 `json:"router_aux_loss_coef"`

	// NumLabels is 1 for a reward model (LlamaForSequenceClassification with score.weight [1, D]).
	NumLabels int `json:"num_labels,omitempty"`

	// The fields below are read and written per architecture (ParseConfig, MarshalHF), not by the
	// generic JSON codec, so that a key only exists for the families that have it.

	// RopeScaling is Llama 3's rope_scaling (rope_type "llama3"); nil is no scaling.
	RopeScaling *RopeScaling `json:"-"`
	// AttentionBias adds biases to q/k/v/o_proj (Llama, Qwen3). Qwen2 always has q/k/v biases and no
	// o_proj bias whatever this says (see QKVBias, OBias).
	AttentionBias bool `json:"-"`
	// Qwen3-MoE: num_experts is stored in NumLocalExperts; these are its other keys.
	NormTopKProb        bool  `json:"-"` // renormalise the top-k routing weights
	DecoderSparseStep   int   `json:"-"` // every step-th layer is sparse
	MLPOnlyLayers       []int `json:"-"` // layers forced dense
	MoEIntermediateSize int   `json:"-"` // each expert's SwiGLU width
}

// RopeScaling is transformers' rope_scaling for rope_type "llama3" (_compute_llama3_parameters).
type RopeScaling struct {
	RopeType                      string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
}

// supportedArchitectures are the transformers classes whose math this package implements.
var supportedArchitectures = map[string]string{
	"LlamaForCausalLM":                  "llama",
	"MistralForCausalLM":                "mistral",
	"MixtralForCausalLM":                "mixtral",
	"LlamaForSequenceClassification":    "llama",
	"MistralForSequenceClassification":  "mistral",
	"MixtralForSequenceClassification":  "mixtral",
	"Qwen2ForCausalLM":                  "qwen2",
	"Qwen3ForCausalLM":                  "qwen3",
	"Qwen3MoeForCausalLM":               "qwen3_moe",
	"Qwen2ForSequenceClassification":    "qwen2",
	"Qwen3ForSequenceClassification":    "qwen3",
	"Qwen3MoeForSequenceClassification": "qwen3_moe",
}

// archKeys are the config.json keys that only some families have, with those families; ParseConfig
// decodes them itself. A key given for another family is an error naming the family it belongs to.
var archKeys = map[string][]string{
	"rope_scaling":          {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe"},
	"attention_bias":        {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe"},
	"use_sliding_window":    {"qwen2", "qwen3", "qwen3_moe"},
	"max_window_layers":     {"qwen2", "qwen3", "qwen3_moe"},
	"num_experts":           {"qwen3_moe"},
	"norm_topk_prob":        {"qwen3_moe"},
	"decoder_sparse_step":   {"qwen3_moe"},
	"mlp_only_layers":       {"qwen3_moe"},
	"moe_intermediate_size": {"qwen3_moe"},
	"num_local_experts":     {"mixtral"},
}

// ignoredKeys change nothing in the forward pass (bookkeeping, or training-only switches that are
// checked for their neutral value in checkedKeys instead).
var ignoredKeys = map[string]bool{
	"_name_or_path": true, "transformers_version": true, "torch_dtype": true, "dtype": true,
	"use_cache": true, "initializer_range": true, "output_router_logits": true,
	"id2label": true, "label2id": true, "problem_type": true, "_attn_implementation_autoset": true,
	"bos_token": true, "eos_token": true, "unk_token": true, "pad_token": true,
	"tokenizer_class": true,
}

// neutral lists keys that are accepted only with the value that makes the math ours; anything else
// would be silently wrong, so it is an error naming the key.
var neutral = map[string]func(v any) bool{
	"hidden_act":          func(v any) bool { return v == "silu" },
	"mlp_bias":            func(v any) bool { return v == false },
	"pretraining_tp":      func(v any) bool { n, ok := v.(float64); return ok && n == 1 },
	"attention_dropout":   func(v any) bool { n, ok := v.(float64); return ok && n == 0 },
	"router_jitter_noise": func(v any) bool { n, ok := v.(float64); return ok && n == 0 },
	"hidden_dropout":      func(v any) bool { n, ok := v.(float64); return ok && n == 0 },
	"partial_rotary_factor": func(v any) bool {
		n, ok := v.(float64)
		return ok && n == 1
	},
}

// LoadConfig reads and validates an HF config.json.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading model config: %w", err)
	}
	return ParseConfig(data, path)
}

// ParseConfig decodes config.json bytes; source names the file in errors.
func ParseConfig(data []byte, source string) (Config, error) {
	var top any
	if err := json.Unmarshal(data, &top); err != nil {
		return Config{}, fmt.Errorf("%s: not valid JSON: %v", source, err)
	}
	raw, ok := top.(map[string]any)
	if !ok {
		return Config{}, fmt.Errorf("%s: want a JSON object, got %s", source, jsonKind(top))
	}
	if err := checkArchitecture(raw); err != nil {
		return Config{}, fmt.Errorf("%s: %w", source, err)
	}
	modelType := modelTypeOf(raw)
	var c Config
	known := map[string]bool{}
	for _, k := range jsonKeys() {
		known[k] = true
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		switch {
		case known[k] || k == "eos_token_id":
		case archKeys[k] != nil:
			if !slices.Contains(archKeys[k], modelType) {
				return Config{}, fmt.Errorf("%s: field %q is not part of a %s config (it belongs to %s)", source, k, modelType, strings.Join(archKeys[k], ", "))
			}
		case ignoredKeys[k]:
		case neutral[k] != nil:
			if !neutral[k](v) {
				return Config{}, fmt.Errorf("%s: %s = %s is not supported by alignkit's model", source, k, jsonText(v))
			}
		default:
			return Config{}, fmt.Errorf("%s: unsupported field %q (alignkit does not implement it)", source, k)
		}
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("%s: %s", source, describeJSONError(err))
	}
	if err := c.parseArchKeys(raw, modelType); err != nil {
		return Config{}, fmt.Errorf("%s: %w", source, err)
	}
	if v, ok := raw["eos_token_id"]; ok && v != nil {
		ids, err := intOrList(v)
		if err != nil {
			return Config{}, fmt.Errorf("%s: field \"eos_token_id\": %v", source, err)
		}
		c.EOSTokenIDs = ids
	}
	// Defaults transformers applies when a key is absent. Llama 2's own config.json predates
	// rope_theta (transformers 4.31); Mixtral's default theta and aux-loss coefficient differ.
	if v, ok := raw["rope_theta"]; !ok || v == nil {
		c.RopeTheta = 10000
		if c.ModelType == "mixtral" {
			c.RopeTheta = 1e6
		}
	}
	if v, ok := raw["router_aux_loss_coef"]; (!ok || v == nil) && (modelType == "mixtral" || modelType == "qwen3_moe") {
		c.RouterAuxLossCoef = 0.001
	}
	if v, ok := raw["bos_token_id"]; !ok || v == nil {
		c.BOSTokenID = 1 // transformers' LlamaConfig default
	}
	// transformers writes a sequence-classification head's label count only as id2label.
	if _, ok := raw["num_labels"]; !ok {
		if m, ok := raw["id2label"].(map[string]any); ok {
			c.NumLabels = len(m)
		}
	}
	if c.ModelType == "" {
		c.ModelType = modelType
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", source, err)
	}
	return c, nil
}

// Validate checks that the configuration describes a model this package can compute.
func (c Config) Validate() error {
	required := []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads}, {"head_dim", c.HeadDim},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	}
	for _, r := range required {
		if r.v <= 0 {
			return fmt.Errorf("field %q is missing or not a positive integer", r.name)
		}
	}
	if c.RMSNormEps <= 0 || math.IsNaN(c.RMSNormEps) {
		return fmt.Errorf("field \"rms_norm_eps\" is missing or not positive")
	}
	if c.RopeTheta <= 0 || math.IsNaN(c.RopeTheta) {
		return fmt.Errorf("field \"rope_theta\" is missing or not positive")
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("head_dim %d must be even for RoPE", c.HeadDim)
	}
	if c.SlidingWindow < 0 {
		return fmt.Errorf("field \"sliding_window\" must be positive or null, got %d", c.SlidingWindow)
	}
	if len(c.Architectures) == 0 {
		return fmt.Errorf("field \"architectures\" is missing")
	}
	for _, a := range c.Architectures {
		if _, ok := supportedArchitectures[a]; !ok {
			return fmt.Errorf("architecture %q is not supported (want one of %s)", a, strings.Join(sortedKeys(supportedArchitectures), ", "))
		}
	}
	if c.IsMoE() {
		if c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NumLocalExperts {
			return fmt.Errorf("num_experts_per_tok %d must be in 1..num_local_experts (%d)", c.NumExpertsPerTok, c.NumLocalExperts)
		}
	} else if c.NumExpertsPerTok > 0 && c.ModelType == "mixtral" {
		return fmt.Errorf("field \"num_local_experts\" is missing for a Mixtral model")
	}
	if err := c.validateFamily(); err != nil {
		return err
	}
	if c.IsRewardModel() && c.NumLabels != 1 {
		return fmt.Errorf("num_labels %d: a reward model has exactly one label", c.NumLabels)
	}
	if c.PadTokenID != nil && (*c.PadTokenID < 0 || *c.PadTokenID >= c.VocabSize) {
		return fmt.Errorf("pad_token_id %d is outside the vocabulary (vocab_size %d)", *c.PadTokenID, c.VocabSize)
	}
	for _, a := range c.Architectures {
		if want := supportedArchitectures[a]; c.ModelType != "" && want != c.ModelType {
			return fmt.Errorf("model_type %q does not match architecture %q (want %q)", c.ModelType, a, want)
		}
	}
	for _, id := range append([]int{c.BOSTokenID}, c.EOSTokenIDs...) {
		if id < 0 || id >= c.VocabSize {
			return fmt.Errorf("special token id %d is outside the vocabulary (vocab_size %d)", id, c.VocabSize)
		}
	}
	if _, err := c.Size(); err != nil {
		return err
	}
	return nil
}

// IsMoE reports whether the model has experts (Mixtral, Qwen3-MoE); MoELayer says which layers use them.
func (c Config) IsMoE() bool { return c.NumLocalExperts > 0 }

// IsRewardModel reports whether this is a *ForSequenceClassification model with a scalar head.
func (c Config) IsRewardModel() bool {
	for _, a := range c.Architectures {
		if strings.HasSuffix(a, "ForSequenceClassification") {
			return true
		}
	}
	return false
}

// QueryGroups is how many query heads share one KV head.
func (c Config) QueryGroups() int { return c.NumAttentionHeads / c.NumKeyValueHeads }

// EOS returns the first end-of-sequence id (config.json may list several).
func (c Config) EOS() int {
	if len(c.EOSTokenIDs) == 0 {
		return -1
	}
	return c.EOSTokenIDs[0]
}

// MarshalHF writes the configuration as transformers would, with eos_token_id as an int when there is one.
func (c Config) MarshalHF() ([]byte, error) {
	type plain Config
	b, err := json.Marshal(plain(c))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	switch len(c.EOSTokenIDs) {
	case 0:
	case 1:
		m["eos_token_id"] = c.EOSTokenIDs[0]
	default:
		m["eos_token_id"] = c.EOSTokenIDs
	}
	m["hidden_act"] = "silu"
	m["rope_scaling"] = nil
	if c.RopeScaling != nil {
		m["rope_scaling"] = c.RopeScaling
	}
	switch mt := c.Family(); mt {
	case "qwen2", "qwen3", "qwen3_moe":
		if mt != "qwen2" {
			m["attention_bias"] = c.AttentionBias
		}
		m["use_sliding_window"] = false
		if mt == "qwen3_moe" {
			delete(m, "num_local_experts")
			m["num_experts"] = c.NumLocalExperts
			m["norm_topk_prob"] = c.NormTopKProb
			m["decoder_sparse_step"] = c.DecoderSparseStep
			m["mlp_only_layers"] = append([]int{}, c.MLPOnlyLayers...)
			m["moe_intermediate_size"] = c.MoEIntermediateSize
		}
	default:
		m["attention_bias"] = c.AttentionBias
		m["mlp_bias"] = false
	}
	if _, ok := m["torch_dtype"]; !ok {
		m["torch_dtype"] = "float32"
	}
	if c.SlidingWindow == 0 && c.ModelType != "llama" {
		m["sliding_window"] = nil
	}
	return json.MarshalIndent(m, "", "  ")
}

func jsonKeys() []string {
	return []string{"architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size",
		"num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
		"rope_theta", "max_position_embeddings", "sliding_window", "tie_word_embeddings", "bos_token_id",
		"pad_token_id", "num_local_experts", "num_experts_per_tok", "router_aux_loss_coef", "num_labels"}
}

func intOrList(v any) ([]int, error) {
	asInt := func(x any) (int, error) {
		f, ok := x.(float64)
		if !ok || f != math.Trunc(f) {
			return 0, fmt.Errorf("want an integer or a list of integers, got %s", jsonText(v))
		}
		return int(f), nil
	}
	if list, ok := v.([]any); ok {
		ids := make([]int, 0, len(list))
		for _, x := range list {
			id, err := asInt(x)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		return ids, nil
	}
	id, err := asInt(v)
	if err != nil {
		return nil, err
	}
	return []int{id}, nil
}

func describeJSONError(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("field %q has the wrong type: got a JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	return err.Error()
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "a value"
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkArchitecture rejects an unsupported architecture or model_type before any other key, so that a
// Gemma config is one error about what it is rather than about its first unfamiliar field.
func checkArchitecture(raw map[string]any) error {
	supported := strings.Join(sortedKeys(supportedArchitectures), ", ")
	if list, ok := raw["architectures"].([]any); ok {
		for _, a := range list {
			name, isStr := a.(string)
			if _, ok := supportedArchitectures[name]; !isStr || !ok {
				return fmt.Errorf("field \"architectures\": %s is not supported (supported: %s)", jsonText(a), supported)
			}
		}
	}
	if mt, ok := raw["model_type"].(string); ok && mt != "" {
		if _, ok := archs[mt]; !ok {
			return fmt.Errorf("field \"model_type\": %q is not supported (supported: %s)", mt, strings.Join(sortedKeys(archs), ", "))
		}
	}
	return nil
}

// modelTypeOf is model_type, or the family of the first architecture when model_type is absent.
func modelTypeOf(raw map[string]any) string {
	if mt, ok := raw["model_type"].(string); ok && mt != "" {
		return mt
	}
	if list, ok := raw["architectures"].([]any); ok && len(list) > 0 {
		if name, ok := list[0].(string); ok {
			return supportedArchitectures[name]
		}
	}
	return ""
}

// parseArchKeys decodes the keys in archKeys for model type mt, with transformers' defaults for the
// absent ones.
func (c *Config) parseArchKeys(raw map[string]any, mt string) error {
	field := func(k string, dst any) error {
		v, ok := raw[k]
		if !ok || v == nil {
			return nil
		}
		b, _ := json.Marshal(v)
		if err := json.Unmarshal(b, dst); err != nil {
			return fmt.Errorf("field %q = %s has the wrong type: %v", k, jsonText(v), err)
		}
		return nil
	}
	if v, ok := raw["rope_scaling"]; ok && v != nil {
		rs, err := parseRopeScaling(v, mt)
		if err != nil {
			return err
		}
		c.RopeScaling = rs
	}
	if err := field("attention_bias", &c.AttentionBias); err != nil {
		return err
	}
	switch mt {
	case "mistral", "mixtral":
		if c.AttentionBias {
			return fmt.Errorf("attention_bias = true is not supported by alignkit's model (%s has no attention biases; supported: false)", mt)
		}
	case "qwen2":
		if v, ok := raw["attention_bias"]; ok && v != true {
			return fmt.Errorf("attention_bias = %s is not supported for qwen2: its q/k/v projections always have biases (supported: true or absent)", jsonText(v))
		}
		c.AttentionBias = false // Qwen2's biases come from QKVBias, whatever the key says
	}
	if mt == "qwen2" || mt == "qwen3" || mt == "qwen3_moe" {
		var use bool
		if err := field("use_sliding_window", &use); err != nil {
			return err
		}
		if use {
			return fmt.Errorf("use_sliding_window = true is not supported by alignkit's model (%s with sliding-window layers; supported: false)", mt)
		}
		// transformers ignores sliding_window (and max_window_layers) when use_sliding_window is false.
		c.SlidingWindow = 0
	}
	if mt != "qwen3_moe" {
		return nil
	}
	c.DecoderSparseStep = 1
	for _, f := range []struct {
		key string
		dst any
	}{
		{"num_experts", &c.NumLocalExperts}, {"norm_topk_prob", &c.NormTopKProb},
		{"decoder_sparse_step", &c.DecoderSparseStep}, {"mlp_only_layers", &c.MLPOnlyLayers},
		{"moe_intermediate_size", &c.MoEIntermediateSize},
	} {
		if err := field(f.key, f.dst); err != nil {
			return err
		}
	}
	if len(c.MLPOnlyLayers) == 0 {
		c.MLPOnlyLayers = nil // [] and absent mean the same; one spelling keeps configs comparable
	}
	for _, k := range []string{"num_experts", "num_experts_per_tok", "moe_intermediate_size"} {
		if v, ok := raw[k]; !ok || v == nil {
			return fmt.Errorf("field %q is missing for a Qwen3-MoE model", k)
		}
	}
	return nil
}

// ropeScalingTypes are the rope_scaling types alignkit implements.
const ropeScalingSupported = `"llama3" (LlamaForCausalLM), or rope_scaling null`

// parseRopeScaling reads rope_scaling as transformers' rope_config_validation does for "llama3": every
// key required, no others.
func parseRopeScaling(v any, mt string) (*RopeScaling, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("rope_scaling = %s is not supported by alignkit's model (want an object; supported: %s)", jsonText(v), ropeScalingSupported)
	}
	typ, _ := m["rope_type"].(string)
	if typ == "" {
		typ, _ = m["type"].(string) // transformers' legacy key
	}
	if typ != "llama3" || mt != "llama" {
		return nil, fmt.Errorf("rope_scaling = %s is not supported by alignkit's model (rope_type %q for %s; supported: %s)", jsonText(v), typ, mt, ropeScalingSupported)
	}
	rs := &RopeScaling{RopeType: "llama3"}
	for _, k := range sortedKeys(m) {
		x := m[k]
		var dst *float64
		switch k {
		case "rope_type", "type":
			continue
		case "factor":
			dst = &rs.Factor
		case "low_freq_factor":
			dst = &rs.LowFreqFactor
		case "high_freq_factor":
			dst = &rs.HighFreqFactor
		case "original_max_position_embeddings":
			n, ok := x.(float64)
			if !ok || n != math.Trunc(n) || n <= 0 {
				return nil, fmt.Errorf("rope_scaling.original_max_position_embeddings = %s: want a positive integer", jsonText(x))
			}
			rs.OriginalMaxPositionEmbeddings = int(n)
			continue
		default:
			return nil, fmt.Errorf("rope_scaling.%s is not a llama3 rope_scaling key (supported: factor, low_freq_factor, high_freq_factor, original_max_position_embeddings)", k)
		}
		n, ok := x.(float64)
		if !ok {
			return nil, fmt.Errorf("rope_scaling.%s = %s: want a number", k, jsonText(x))
		}
		*dst = n
	}
	for _, k := range []string{"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"} {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("rope_scaling.%s is missing (rope_type llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings)", k)
		}
	}
	return rs, rs.validate()
}

func (rs *RopeScaling) validate() error {
	if !(rs.Factor >= 1) || math.IsInf(rs.Factor, 0) {
		return fmt.Errorf("rope_scaling.factor = %g: want a finite number >= 1", rs.Factor)
	}
	if !(rs.LowFreqFactor > 0) || !(rs.HighFreqFactor > rs.LowFreqFactor) || math.IsInf(rs.HighFreqFactor, 0) {
		return fmt.Errorf("rope_scaling: low_freq_factor %g and high_freq_factor %g must satisfy 0 < low < high", rs.LowFreqFactor, rs.HighFreqFactor)
	}
	if rs.OriginalMaxPositionEmbeddings <= 0 {
		return fmt.Errorf("rope_scaling.original_max_position_embeddings = %d: want a positive integer", rs.OriginalMaxPositionEmbeddings)
	}
	return nil
}

// RopeFactors is what divides each RoPE frequency theta^(-2i/hd), i < hd/2: all 1 without scaling,
// and for llama3 exactly what convert_hf_to_gguf.py stores as rope_freqs.weight (1 for high
// frequencies, factor for low ones, a smooth blend between). transformers'
// _compute_llama3_parameters computes the same inv_freq / factors.
func (c Config) RopeFactors() []float64 {
	half := c.HeadDim / 2
	out := make([]float64, half)
	for i := range out {
		out[i] = 1
	}
	rs := c.RopeScaling
	if rs == nil {
		return out
	}
	old := float64(rs.OriginalMaxPositionEmbeddings)
	lowWavelen, highWavelen := old/rs.LowFreqFactor, old/rs.HighFreqFactor
	for i := range out {
		wavelen := 2 * math.Pi / math.Pow(c.RopeTheta, -float64(2*i)/float64(c.HeadDim))
		switch {
		case wavelen < highWavelen:
		case wavelen > lowWavelen:
			out[i] = rs.Factor
		default:
			smooth := (old/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
			out[i] = 1 / ((1-smooth)/rs.Factor + smooth)
		}
	}
	return out
}

// InvFreq is RoPE's inverse frequency per rotated pair, (hd/2): theta^(-2i/hd) / RopeFactors()[i], in
// float64. The training graph and the inference engine both rotate by position · InvFreq.
func (c Config) InvFreq() []float64 {
	f := c.RopeFactors()
	out := make([]float64, len(f))
	for i := range out {
		out[i] = math.Pow(c.RopeTheta, -float64(2*i)/float64(c.HeadDim)) / f[i]
	}
	return out
}

// validateFamily checks the keys that only some families have.
func (c Config) validateFamily() error {
	mt := c.Family()
	if c.RopeScaling != nil {
		if mt != "llama" || c.RopeScaling.RopeType != "llama3" {
			return fmt.Errorf("rope_scaling rope_type %q for %s is not supported (supported: %s)", c.RopeScaling.RopeType, mt, ropeScalingSupported)
		}
		if err := c.RopeScaling.validate(); err != nil {
			return err
		}
	}
	if c.AttentionBias && (mt == "mistral" || mt == "mixtral") {
		return fmt.Errorf("attention_bias = true is not supported for %s (supported: false)", mt)
	}
	if mt == "qwen2" || mt == "qwen3" || mt == "qwen3_moe" {
		if c.SlidingWindow != 0 {
			return fmt.Errorf("sliding_window %d: alignkit runs %s with full attention only (use_sliding_window false)", c.SlidingWindow, mt)
		}
	}
	if c.NumLocalExperts > 0 && mt != "mixtral" && mt != "qwen3_moe" {
		return fmt.Errorf("%d experts set for %s, a dense family (experts: mixtral, qwen3_moe)", c.NumLocalExperts, mt)
	}
	if mt != "qwen3_moe" {
		if c.NormTopKProb || c.DecoderSparseStep != 0 || len(c.MLPOnlyLayers) != 0 || c.MoEIntermediateSize != 0 {
			return fmt.Errorf("norm_topk_prob, decoder_sparse_step, mlp_only_layers and moe_intermediate_size are Qwen3-MoE keys, set for %s", mt)
		}
		return nil
	}
	if c.NumLocalExperts <= 0 {
		return fmt.Errorf("field \"num_experts\" is missing or not a positive integer")
	}
	if c.MoEIntermediateSize <= 0 {
		return fmt.Errorf("field \"moe_intermediate_size\" is missing or not a positive integer")
	}
	if c.DecoderSparseStep <= 0 {
		return fmt.Errorf("field \"decoder_sparse_step\" must be a positive integer, got %d", c.DecoderSparseStep)
	}
	seen := map[int]bool{}
	for _, l := range c.MLPOnlyLayers {
		if l < 0 || l >= c.NumHiddenLayers || seen[l] {
			return fmt.Errorf("mlp_only_layers %v: each entry must be a distinct layer index in 0..%d", c.MLPOnlyLayers, c.NumHiddenLayers-1)
		}
		seen[l] = true
	}
	return nil
}

// MaxParams bounds the parameters a config may describe (2^40, 4 TB as float32): far beyond any
// model alignkit can train on a CPU, and low enough that every count below fits in int64 and every
// tensor's element count in int.
const MaxParams = 1 << 40

// Size is what a config implies before any weight is read: how many tensors (HF names, each expert
// apart) and how many parameters.
type Size struct {
	Tensors int64
	Params  int64
}

// Bytes is the float32 size of the parameters.
func (s Size) Bytes() int64 { return s.Params * 4 }

// GB is Bytes in gigabytes (10^9), for messages.
func (s Size) GB() float64 { return float64(s.Bytes()) / 1e9 }

// Size counts the tensors and parameters the config implies, computed without building them and
// with every product checked, so an absurd config (10^8 layers, a 2^40 vocabulary) is an error
// here rather than an allocation later.
func (c Config) Size() (Size, error) {
	var s Size
	overflow := fmt.Errorf("the model it describes has more than %d parameters", int64(MaxParams))
	mul := func(xs ...int) (int64, bool) {
		p := int64(1)
		for _, x := range xs {
			if x < 0 || (x > 0 && p > MaxParams/int64(x)) {
				return 0, false
			}
			p *= int64(x)
		}
		return p, true
	}
	add := func(n int64, ok bool) bool {
		if !ok || s.Params > MaxParams-n {
			return false
		}
		s.Params += n
		return true
	}
	D, F, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	H, KV, hd, E := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.NumLocalExperts
	heads := 1
	switch {
	case c.IsRewardModel():
		heads = 2 // embedding + score (1, D)
	case !c.TieWordEmbeddings:
		heads = 2 // embedding + lm_head
	}
	s.Tensors = int64(heads) + 1 // + final norm
	if !add(mul(V, D)) || !add(mul(D)) {
		return Size{}, overflow
	}
	if c.IsRewardModel() {
		if !add(mul(D)) {
			return Size{}, overflow
		}
	} else if !c.TieWordEmbeddings && !add(mul(V, D)) {
		return Size{}, overflow
	}
	perLayerTensors := int64(6) // two norms, q, k, v, o
	layer := []func() (int64, bool){
		func() (int64, bool) { return mul(2, D) },
		func() (int64, bool) { return mul(2, H, hd, D) },
		func() (int64, bool) { return mul(2, KV, hd, D) },
	}
	if E > 0 {
		perLayerTensors += 1 + 3*int64(E)
		layer = append(layer, func() (int64, bool) { return mul(E, D) }, func() (int64, bool) { return mul(3, E, c.ExpertIntermediateSize(), D) })
	} else {
		perLayerTensors += 3
		layer = append(layer, func() (int64, bool) { return mul(3, F, D) })
	}
	var one int64
	for _, f := range layer {
		n, ok := f()
		if !ok || one > MaxParams-n {
			return Size{}, overflow
		}
		one += n
	}
	all, ok := mul(c.NumHiddenLayers)
	if !ok || (one > 0 && all > MaxParams/one) || !add(all*one, true) {
		return Size{}, overflow
	}
	if int64(c.NumHiddenLayers) > MaxParams/perLayerTensors {
		return Size{}, overflow
	}
	s.Tensors += int64(c.NumHiddenLayers) * perLayerTensors
	return s, nil
}

// CheckAgainst compares the size the config implies with the weights a file actually holds
// (tensors and their total elements; a GGUF's stacked experts count as one tensor each), before
// anything is built from the config: a config.json or GGUF header that claims far more layers,
// experts or width than the file's tensors can hold is refused. Claims up to twice what is present
// pass, so that a checkpoint missing a tensor or two still gets the loader's precise "tensor X is
// missing" and the expected-tensor list built next stays within twice the file's own size.
func (c Config) CheckAgainst(tensors int, elements int64) error {
	s, err := c.Size()
	if err != nil {
		return err
	}
	minTensors := int64(c.NumHiddenLayers)*9 + 2 // a GGUF layer holds at least 9 tensors (experts stacked)
	if s.Params > 2*elements+1<<20 || minTensors > 2*int64(tensors)+16 {
		return fmt.Errorf("the config describes %d layers and %d parameters (%.2f GB as float32), but the weights hold %d tensors and %d parameters",
			c.NumHiddenLayers, s.Params, s.GB(), tensors, elements)
	}
	return nil
}
