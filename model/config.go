package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
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
}

// supportedArchitectures are the transformers classes whose math this package implements.
var supportedArchitectures = map[string]string{
	"LlamaForCausalLM":                 "llama",
	"MistralForCausalLM":               "mistral",
	"MixtralForCausalLM":               "mixtral",
	"LlamaForSequenceClassification":   "llama",
	"MistralForSequenceClassification": "mistral",
	"MixtralForSequenceClassification": "mixtral",
}

// ignoredKeys change nothing in the forward pass (bookkeeping, or training-only switches that are
// checked for their neutral value in checkedKeys instead).
var ignoredKeys = map[string]bool{
	"_name_or_path": true, "transformers_version": true, "torch_dtype": true, "dtype": true,
	"use_cache": true, "initializer_range": true, "output_router_logits": true,
	"id2label": true, "label2id": true, "problem_type": true, "_attn_implementation_autoset": true,
	"max_window_layers": true, "use_sliding_window": true,
	"bos_token": true, "eos_token": true, "unk_token": true, "pad_token": true,
	"tokenizer_class": true,
}

// neutral lists keys that are accepted only with the value that makes the math ours; anything else
// would be silently wrong, so it is an error naming the key.
var neutral = map[string]func(v any) bool{
	"hidden_act":          func(v any) bool { return v == "silu" },
	"rope_scaling":        func(v any) bool { return v == nil },
	"attention_bias":      func(v any) bool { return v == false },
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
	if v, ok := raw["router_aux_loss_coef"]; (!ok || v == nil) && c.ModelType == "mixtral" {
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
	if c.NumLocalExperts > 0 {
		if c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NumLocalExperts {
			return fmt.Errorf("num_experts_per_tok %d must be in 1..num_local_experts (%d)", c.NumExpertsPerTok, c.NumLocalExperts)
		}
	} else if c.NumExpertsPerTok > 0 && c.ModelType == "mixtral" {
		return fmt.Errorf("field \"num_local_experts\" is missing for a Mixtral model")
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

// IsMoE reports whether the MLP is Mixtral's sparse mixture of experts.
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
	m["attention_bias"] = false
	m["mlp_bias"] = false
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
		layer = append(layer, func() (int64, bool) { return mul(E, D) }, func() (int64, bool) { return mul(3, E, F, D) })
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
