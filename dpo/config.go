package dpo

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/train"
)

// DefaultLearningRate is TRL's DPOConfig learning_rate: DPO starts from a tuned model and moves it
// gently.
const DefaultLearningRate = 1e-6

// DefaultMaxPromptLength is TRL's DPOConfig max_prompt_length. When it is not below max_length, the
// default is half of max_length instead, so that a short max_length alone still leaves every answer
// room (TRL would cut such answers away entirely).
const DefaultMaxPromptLength = 512

// Config is `alignkit dpo`'s configuration: the training loop's keys, the shared data keys and
// DPOConfig's own keys, all spelled as TRL spells them.
type Config struct {
	train.Args `mapstructure:",squash"`
	Data       data.Args `mapstructure:",squash"`

	ModelNameOrPath    string `mapstructure:"model_name_or_path" doc:"policy model to train: an HF directory or a .gguf file (with its tokenizer)"`
	RefModelNameOrPath string `mapstructure:"ref_model_name_or_path" doc:"frozen reference model (same vocabulary); empty: a copy of the policy's initial weights, or with use_peft the base with its adapter off (no copy, as TRL)"`
	// Model says how the policy is held and what of it trains (LoRA, a quantized frozen base).
	Model recipe.ModelArgs `mapstructure:",squash"`

	Beta           float64 `mapstructure:"beta" doc:"β, the inverse temperature of the implicit reward β·log(πθ/πref); for ipo the regulariser τ (default 0.1)"`
	LossType       string  `mapstructure:"loss_type" doc:"sigmoid (DPO), robust, ipo (per-token log-probs) or hinge (default sigmoid)"`
	LabelSmoothing float64 `mapstructure:"label_smoothing" doc:"ε, the assumed fraction of flipped labels: conservative DPO for sigmoid, robust DPO for robust (default 0)"`
	RPOAlpha       float64 `mapstructure:"rpo_alpha" doc:"weight of the chosen answer's per-token NLL added to the loss (RPO); 0 disables it (default 0)"`
	ReferenceFree  bool    `mapstructure:"reference_free" doc:"treat the reference as uniform: no reference model, rewards β·log πθ (default false)"`

	PrecomputeRefLogProbs bool   `mapstructure:"precompute_ref_log_probs" doc:"score every pair with the reference once before training, cache the log-probs on disk and free the reference model (default false: a reference forward pass per batch)"`
	MaxPromptLength       int    `mapstructure:"max_prompt_length" doc:"longest prompt in tokens, longer prompts are cut from the left, keeping their end; rows whose prompt still fills max_length are dropped and counted (default 512, or max_length/2 when that is smaller)"`
	RefCacheDir           string `mapstructure:"ref_cache_dir" doc:"directory of the precomputed reference log-prob cache, shared across runs (default $XDG_CACHE_HOME/alignkit/ref_logps, i.e. ~/.cache/alignkit/ref_logps)"`
}

// Defaults returns a copy with every zero key replaced by its default (DPO's learning rate, β,
// loss type and prompt length first, then the loop's and the data keys' own defaults).
func (c Config) Defaults() Config {
	c.Args = c.Args.TrainerDefaults(DefaultLearningRate)
	c.Data = c.Data.Defaults()
	if c.Beta == 0 {
		c.Beta = DefaultBeta
	}
	if c.LossType == "" {
		c.LossType = Sigmoid
	}
	if c.MaxPromptLength == 0 {
		c.MaxPromptLength = min(DefaultMaxPromptLength, c.Data.MaxLength/2)
	}
	return c
}

// Loss is the loss configuration these keys select.
func (c Config) Loss() LossConfig {
	return LossConfig{Beta: c.Beta, LossType: c.LossType, LabelSmoothing: c.LabelSmoothing, RPOAlpha: c.RPOAlpha, ReferenceFree: c.ReferenceFree}
}

// Validate checks the keys after Defaults; its one-line errors name the key at fault. It reads no
// files: loading reports those problems with file and row.
func (c Config) Validate() error {
	c = c.Defaults()
	if err := recipe.Validate(c.Args, c.ModelNameOrPath, c.Model); err != nil {
		return err
	}
	if err := c.Data.Validate(); err != nil {
		return err
	}
	if c.Data.Packing {
		return fmt.Errorf("packing: DPO does not pack pairs (each pair is a chosen row and a rejected row); remove the key")
	}
	if c.Data.LossMask != "" {
		return fmt.Errorf("loss_mask %q: DPO scores the answers only; remove the key", c.Data.LossMask)
	}
	if err := c.Loss().Validate(); err != nil {
		return err
	}
	if c.MaxPromptLength < 0 {
		return fmt.Errorf("max_prompt_length: must be >= 0 (0: the default, min(%d, max_length/2)), got %d", DefaultMaxPromptLength, c.MaxPromptLength)
	}
	if c.ReferenceFree && c.RefModelNameOrPath != "" {
		return fmt.Errorf("ref_model_name_or_path %s: reference_free uses no reference model; set one or the other", c.RefModelNameOrPath)
	}
	if c.ReferenceFree && c.PrecomputeRefLogProbs {
		return fmt.Errorf("precompute_ref_log_probs: reference_free has no reference log-probs to precompute; set one or the other")
	}
	return nil
}

// refCacheDir is where precomputed reference log-probs live: ref_cache_dir, or the user's cache
// directory so that reruns with another output_dir still find them.
func (c Config) refCacheDir() (string, error) {
	if c.RefCacheDir != "" {
		return c.RefCacheDir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("ref_cache_dir: not set and no user cache directory (%v); set ref_cache_dir", err)
	}
	return filepath.Join(base, "alignkit", "ref_logps"), nil
}
