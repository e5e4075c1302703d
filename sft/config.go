package sft

import (
	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/train"
)

// Config is `alignkit sft`'s YAML: the training loop's keys, the shared data keys, and the model.
type Config struct {
	train.Args `mapstructure:",squash"`
	Data       data.Args `mapstructure:",squash"`
	// ModelNameOrPath is the model to fine-tune: an HF directory or a .gguf file, with its tokenizer.
	ModelNameOrPath string `mapstructure:"model_name_or_path" doc:"model to fine-tune: an HF directory (config.json, safetensors, tokenizer files) or a .gguf file"`
	// Model says how the model is held and what of it trains (LoRA, a quantized frozen base).
	Model recipe.ModelArgs `mapstructure:",squash"`
}

// DefaultLearningRate is TRL's SFTConfig default (transformers' own default is 5e-5).
const DefaultLearningRate = 2e-5

// DefaultConfig is what a YAML file that sets nothing means: TRL's SFTConfig defaults where they
// differ from transformers' TrainingArguments (learning_rate 2e-5, max_length 1024), the train
// package's defaults otherwise. Load a config over it.
func DefaultConfig() Config {
	return Config{}.Defaults()
}

// Defaults fills every unset key with its default.
func (c Config) Defaults() Config {
	c.Args = c.Args.TrainerDefaults(DefaultLearningRate)
	c.Data = c.Data.Defaults()
	return c
}

// Validate checks every key (on a copy with the defaults filled in) and returns one error line
// naming the first bad key.
func (c Config) Validate() error {
	c = c.Defaults()
	if err := recipe.Validate(c.Args, c.ModelNameOrPath, c.Model); err != nil {
		return err
	}
	return c.Data.Validate()
}
