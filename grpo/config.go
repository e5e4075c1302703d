package grpo

import (
	"fmt"
	"math"

	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/train"
)

// Defaults of TRL's GRPOConfig.
const (
	DefaultLearningRate        = 1e-6
	DefaultNumGenerations      = 8
	DefaultMaxCompletionLength = 256
	DefaultEpsilon             = 0.2
	DefaultLossType            = LossDAPO
)

// Config is `alignkit grpo`'s configuration: the training loop's keys and GRPOConfig's own, spelled
// as TRL spells them. per_device_train_batch_size counts completions, as in TRL: each micro-batch
// samples per_device_train_batch_size/num_generations prompts.
type Config struct {
	train.Args `mapstructure:",squash"`

	ModelNameOrPath string `mapstructure:"model_name_or_path" doc:"policy model to train (and, with beta > 0, the reference): an HF directory or a .gguf file"`
	// Model says how the policy is held and what of it trains (LoRA, a quantized frozen base).
	Model recipe.ModelArgs `mapstructure:",squash"`
	// RLPromptArgs holds dataset_name, columns, max_train_samples, chat_template, reward_models and
	// safety_column, as ppo's.
	rlhf.RLPromptArgs `mapstructure:",squash"`

	NumGenerations      int      `mapstructure:"num_generations" doc:"G, completions sampled per prompt, compared within their group (default 8; at least 2)"`
	MaxCompletionLength int      `mapstructure:"max_completion_length" doc:"most tokens sampled per completion (default 256)"`
	Temperature         *float64 `mapstructure:"temperature" doc:"sampling temperature (default 1.0)"`
	TopP                *float64 `mapstructure:"top_p" doc:"nucleus sampling cut (default 1.0: none)"`
	Beta                float64  `mapstructure:"beta" doc:"KL coefficient against the reference (the initial policy), k3 estimator; 0 loads no reference (default 0.0)"`
	Epsilon             *float64 `mapstructure:"epsilon" doc:"lower clip of the ratio, 1-epsilon (default 0.2)"`
	EpsilonHigh         *float64 `mapstructure:"epsilon_high" doc:"upper clip of the ratio, 1+epsilon_high (default: epsilon; DAPO uses 0.28)"`
	LossType            string   `mapstructure:"loss_type" doc:"grpo, bnpo, dr_grpo or dapo: how per-token losses are normalised (default dapo)"`
	ScaleRewards        *bool    `mapstructure:"scale_rewards" doc:"divide the group-centered rewards by the group's standard deviation (default true; false is Dr. GRPO's choice)"`
	NumIterations       int      `mapstructure:"num_iterations" doc:"μ, optimizer steps taken on each batch of generations (default 1)"`

	// Rollouts holds backend, base_url, served_model_name, api_key, concurrency, request_timeout,
	// max_retries, n_supported and extra_body, as rlhf sample's: backend openai samples the
	// rollouts from an OpenAI-compatible server that follows the LoRA policy (rlhf.ServedPolicy).
	Rollouts rlhf.BackendConfig `mapstructure:",squash"`

	RewardFuncs   []FuncSpec `mapstructure:"reward_funcs" doc:"reward functions: list of {name: exact_match|regex|length_penalty|command, ...}"`
	RewardWeights []float64  `mapstructure:"reward_weights" doc:"weight of each reward: reward_funcs in order, then the reward model(s) (default all 1)"`
}

// Defaults returns a copy with every unset key replaced by its default.
func (c Config) Defaults() Config {
	c.Args = c.Args.TrainerDefaults(DefaultLearningRate)
	if c.NumGenerations == 0 {
		c.NumGenerations = DefaultNumGenerations
	}
	if c.MaxCompletionLength == 0 {
		c.MaxCompletionLength = DefaultMaxCompletionLength
	}
	one := 1.0
	if c.Temperature == nil {
		c.Temperature = &one
	}
	if c.TopP == nil {
		c.TopP = &one
	}
	if c.Epsilon == nil {
		e := DefaultEpsilon
		c.Epsilon = &e
	}
	if c.EpsilonHigh == nil {
		c.EpsilonHigh = c.Epsilon
	}
	if c.LossType == "" {
		c.LossType = DefaultLossType
	}
	if c.ScaleRewards == nil {
		t := true
		c.ScaleRewards = &t
	}
	if c.NumIterations == 0 {
		c.NumIterations = 1
	}
	c.RLPromptArgs = c.RLPromptArgs.Defaults()
	c.Rollouts = c.Rollouts.RolloutDefaults()
	return c
}

// Loss is the loss configuration these keys select (dapo's token count is the micro-batch's).
func (c Config) Loss() LossConfig {
	return LossConfig{Type: c.LossType, Beta: c.Beta, EpsilonLow: *c.Epsilon, EpsilonHigh: *c.EpsilonHigh, MaxCompletionLength: c.MaxCompletionLength}
}

// numRewards is the number of reward components: the functions, then one for the reward model(s).
func (c Config) numRewards() int {
	n := len(c.RewardFuncs)
	if len(c.RewardModels) > 0 {
		n++
	}
	return n
}

// Validate checks the keys after Defaults; its errors name the key at fault. It reads no files.
func (c Config) Validate() error {
	c = c.Defaults()
	if err := recipe.Validate(c.Args, c.ModelNameOrPath, c.Model); err != nil {
		return err
	}
	if err := c.RLPromptArgs.Validate(); err != nil {
		return err
	}
	switch {
	case c.NumGenerations < 2:
		return fmt.Errorf("num_generations %d: GRPO compares each completion with the others of its group, want >= 2", c.NumGenerations)
	case c.PerDeviceTrainBatchSize%c.NumGenerations != 0:
		return fmt.Errorf("per_device_train_batch_size %d: counts completions and must be a multiple of num_generations %d", c.PerDeviceTrainBatchSize, c.NumGenerations)
	case c.MaxCompletionLength < 1:
		return fmt.Errorf("max_completion_length %d: want >= 1", c.MaxCompletionLength)
	case c.NumIterations < 1:
		return fmt.Errorf("num_iterations %d: want >= 1", c.NumIterations)
	case math.IsNaN(*c.Temperature) || *c.Temperature <= 0:
		return fmt.Errorf("temperature %v: want > 0 (GRPO needs diverse samples within a group)", *c.Temperature)
	case math.IsNaN(*c.TopP) || *c.TopP <= 0 || *c.TopP > 1:
		return fmt.Errorf("top_p %v: want a value in (0, 1]", *c.TopP)
	}
	if err := c.Loss().Validate(); err != nil {
		return err
	}
	if err := c.Rollouts.ValidateRollouts(c.Model.Lora.UsePEFT || c.Model.AdapterNameOrPath != ""); err != nil {
		return err
	}
	if c.numRewards() == 0 {
		return fmt.Errorf("reward_funcs, reward_models: neither is set; GRPO needs at least one reward")
	}
	for i, f := range c.RewardFuncs {
		if err := f.Validate(i); err != nil {
			return err
		}
	}
	if c.RewardWeights != nil {
		if len(c.RewardWeights) != c.numRewards() {
			return fmt.Errorf("reward_weights: %d weights for %d rewards (reward_funcs, then one for reward_models)", len(c.RewardWeights), c.numRewards())
		}
		for i, w := range c.RewardWeights {
			if math.IsNaN(w) || math.IsInf(w, 0) {
				return fmt.Errorf("reward_weights[%d]: %v, want a finite number", i, w)
			}
		}
	}
	return nil
}
