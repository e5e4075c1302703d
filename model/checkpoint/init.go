package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/alignkit/alignkit/internal/atomicfile"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// InitSpec is `alignkit init`'s YAML: HF config.json fields for any supported family (Llama 2/3,
// Mistral, Mixtral, Qwen2/2.5, Qwen3, Qwen3-MoE), plus a seed and the tokenizer to copy in. The
// tokenizer's vocabulary sets vocab_size and its BOS/EOS set the config's ids, so the two cannot
// disagree.
type InitSpec struct {
	Architectures         []string       `mapstructure:"architectures" json:"architectures" doc:"one of LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM"`
	ModelType             string         `mapstructure:"model_type" json:"model_type" doc:"llama, mistral, mixtral, qwen2, qwen3 or qwen3_moe"`
	HiddenSize            int            `mapstructure:"hidden_size" json:"hidden_size" doc:"model width D"`
	IntermediateSize      int            `mapstructure:"intermediate_size" json:"intermediate_size" doc:"SwiGLU width (per expert for Mixtral; dense layers for Qwen3-MoE)"`
	NumHiddenLayers       int            `mapstructure:"num_hidden_layers" json:"num_hidden_layers" doc:"transformer blocks"`
	NumAttentionHeads     int            `mapstructure:"num_attention_heads" json:"num_attention_heads" doc:"query heads H"`
	NumKeyValueHeads      int            `mapstructure:"num_key_value_heads" json:"num_key_value_heads,omitempty" doc:"KV heads; H must be a multiple (GQA); default H"`
	HeadDim               int            `mapstructure:"head_dim" json:"head_dim,omitempty" doc:"per-head width (default D/H)"`
	RMSNormEps            float64        `mapstructure:"rms_norm_eps" json:"rms_norm_eps" doc:"RMSNorm epsilon"`
	RopeTheta             float64        `mapstructure:"rope_theta" json:"rope_theta,omitempty" doc:"RoPE base (default 10000; Mixtral 1e6)"`
	RopeScaling           map[string]any `mapstructure:"rope_scaling" json:"rope_scaling,omitempty" doc:"Llama 3's rope_scaling: rope_type llama3, factor, low_freq_factor, high_freq_factor, original_max_position_embeddings"`
	MaxPositionEmbeddings int            `mapstructure:"max_position_embeddings" json:"max_position_embeddings" doc:"context length"`
	SlidingWindow         int            `mapstructure:"sliding_window" json:"sliding_window,omitempty" doc:"Mistral attention window; 0 or absent is full causal attention"`
	AttentionBias         bool           `mapstructure:"attention_bias" json:"attention_bias,omitempty" doc:"biases on q/k/v/o_proj (Llama, Qwen3); Qwen2 always has q/k/v biases"`
	TieWordEmbeddings     bool           `mapstructure:"tie_word_embeddings" json:"tie_word_embeddings" doc:"share the embedding matrix with the output head"`
	NumLocalExperts       int            `mapstructure:"num_local_experts" json:"num_local_experts,omitempty" doc:"Mixtral experts per layer; 0 is a dense MLP"`
	NumExperts            int            `mapstructure:"num_experts" json:"num_experts,omitempty" doc:"Qwen3-MoE experts per sparse layer"`
	NumExpertsPerTok      int            `mapstructure:"num_experts_per_tok" json:"num_experts_per_tok,omitempty" doc:"experts each token is routed to (top-k)"`
	NormTopKProb          bool           `mapstructure:"norm_topk_prob" json:"norm_topk_prob,omitempty" doc:"Qwen3-MoE: renormalise the top-k routing weights to sum 1"`
	DecoderSparseStep     int            `mapstructure:"decoder_sparse_step" json:"decoder_sparse_step,omitempty" doc:"Qwen3-MoE: every step-th layer is sparse (default 1)"`
	MLPOnlyLayers         []int          `mapstructure:"mlp_only_layers" json:"mlp_only_layers,omitempty" doc:"Qwen3-MoE: layers kept dense"`
	MoEIntermediateSize   int            `mapstructure:"moe_intermediate_size" json:"moe_intermediate_size,omitempty" doc:"Qwen3-MoE: each expert's SwiGLU width"`
	RouterAuxLossCoef     float64        `mapstructure:"router_aux_loss_coef" json:"router_aux_loss_coef,omitempty" doc:"weight of the load-balancing loss (default 0.001 for Mixtral and Qwen3-MoE)"`
	VocabSize             int            `mapstructure:"vocab_size" json:"-" doc:"optional; must equal the tokenizer's size when given"`

	Seed             uint64  `mapstructure:"seed" json:"-" doc:"random seed for the weights"`
	InitializerRange float64 `mapstructure:"initializer_range" json:"-" doc:"std of the normal init (default 0.02)"`
	Tokenizer        string  `mapstructure:"tokenizer" json:"-" doc:"a tokenizer directory (tokenizer.json or tokenizer.model with tokenizer_config.json), or one tokenizer.model or tokenizer.json file; copied in"`
	ChatTemplate     string  `mapstructure:"chat_template" json:"-" doc:"optional Jinja chat template stored in tokenizer_config.json"`
}

// Validate checks what the config parser cannot: the tokenizer is named.
func (s *InitSpec) Validate() error {
	if s.Tokenizer == "" {
		return fmt.Errorf("key \"tokenizer\" is required: the path of a tokenizer.model or tokenizer.json")
	}
	return nil
}

// Init writes a randomly initialised HF model directory to out and returns it loaded.
func Init(spec InitSpec, out string) (*Model, error) {
	st, err := os.Stat(spec.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var tok *tokenizer.Tokenizer
	if st.IsDir() {
		tok, err = tokenizer.Load(spec.Tokenizer)
	} else {
		tok, err = tokenizer.LoadFile(spec.Tokenizer)
	}
	if err != nil {
		return nil, err
	}
	if spec.VocabSize != 0 && spec.VocabSize != tok.VocabSize() {
		return nil, fmt.Errorf("vocab_size %d differs from the tokenizer's %d tokens (%s); leave vocab_size out", spec.VocabSize, tok.VocabSize(), spec.Tokenizer)
	}
	fields, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(fields, &m); err != nil {
		return nil, err
	}
	m["vocab_size"] = tok.VocabSize()
	m["bos_token_id"] = tok.BOS()
	if tok.BOS() < 0 {
		// Qwen's tokenizers have no BOS token (bos_token null, add_bos_token false); config.json still
		// names one, which nothing adds: use the EOS id, as Qwen's base models do (<|endoftext|>).
		m["bos_token_id"] = tok.EOS()
	}
	m["eos_token_id"] = tok.EOS()
	if spec.ModelType == "mistral" && spec.SlidingWindow == 0 {
		m["sliding_window"] = nil
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	cfg, err := model.ParseConfig(data, "init config")
	if err != nil {
		return nil, err
	}
	if err := fitsInMemory(cfg); err != nil {
		return nil, err
	}
	w := model.InitRandom(cfg, spec.Seed, spec.InitializerRange)
	if err := hf.Save(out, w, hf.SaveOptions{}); err != nil {
		return nil, err
	}
	if st.IsDir() {
		err = copyTokenizerDir(spec.Tokenizer, out)
	} else {
		err = copyTokenizer(spec.Tokenizer, filepath.Dir(spec.Tokenizer), out)
	}
	if err != nil {
		return nil, err
	}
	if spec.ChatTemplate != "" {
		if err := setChatTemplate(out, spec.ChatTemplate); err != nil {
			return nil, err
		}
	}
	return Open(out)
}

// fitsInMemory refuses a model whose float32 weights alone exceed the memory available (init holds
// them, then saves and reloads them), before any of it is allocated.
func fitsInMemory(cfg model.Config) error {
	size, err := cfg.Size()
	if err != nil {
		return fmt.Errorf("init config: %w", err)
	}
	if avail, ok := availableMemory(); ok && size.Bytes() > avail {
		return fmt.Errorf("init config: the model has %d parameters, %.2f GB as float32, more than the %.2f GB of memory available", size.Params, size.GB(), float64(avail)/1e9)
	}
	return nil
}

// copyTokenizer copies the named tokenizer file and, when they sit beside it, the
// tokenizer_config.json and special_tokens_map.json that give its special tokens.
func copyTokenizer(file, srcDir, out string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading tokenizer: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(out, filepath.Base(file)), data); err != nil {
		return err
	}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		b, err := os.ReadFile(filepath.Join(srcDir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading tokenizer: %w", err)
		}
		if err := atomicfile.WriteFile(filepath.Join(out, name), b); err != nil {
			return err
		}
	}
	return nil
}

// tokenizerFiles are the files of an HF tokenizer directory that init copies when present.
var tokenizerFiles = []string{"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja"}

// copyTokenizerDir copies a tokenizer directory's files (those of tokenizerFiles it has) into out.
func copyTokenizerDir(src, out string) error {
	for _, name := range tokenizerFiles {
		b, err := os.ReadFile(filepath.Join(src, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading tokenizer: %w", err)
		}
		if err := atomicfile.WriteFile(filepath.Join(out, name), b); err != nil {
			return err
		}
	}
	return nil
}

// setChatTemplate stores a chat template in dir's tokenizer_config.json, creating the file if needed.
func setChatTemplate(dir, template string) error {
	path := filepath.Join(dir, "tokenizer_config.json")
	cfg := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	cfg["chat_template"] = template
	return atomicfile.WriteJSON(path, cfg)
}
