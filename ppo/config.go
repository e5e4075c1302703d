package ppo

import (
	"errors"
	"fmt"

	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/train"
)

// DefaultLearningRate is TRL's PPOConfig learning_rate.
const DefaultLearningRate = 3e-6

// TrainConfig is `alignkit ppo`'s configuration: the training loop's keys, the model keys, the PPO
// keys of Config and the models, spelled as TRL's PPOConfig spells them. per_device_train_batch_size
// is TRL's: the responses of one micro-batch of the PPO passes (one response per prompt); each
// rollout batch holds per_device_train_batch_size × gradient_accumulation_steps × num_mini_batches
// responses (TRL's local_batch_size). Start from NewTrainConfig: the PPO keys' zero values are
// meaningful (kl_coef 0, gamma 0), so their defaults are filled in before the file is read, not after.
type TrainConfig struct {
	train.Args `mapstructure:",squash"`

	ModelNameOrPath string `mapstructure:"model_name_or_path" doc:"policy to train, also the reference (the initial policy): an HF directory or a .gguf file"`
	SFTModelPath    string `mapstructure:"sft_model_path" doc:"TRL's name for the policy's starting point: the same as model_name_or_path (set one, or both alike)"`
	// Model says how the policy is held and what of it trains (LoRA, a quantized frozen base).
	Model recipe.ModelArgs `mapstructure:",squash"`
	// RLPromptArgs holds dataset_name, columns, max_train_samples, chat_template, reward_models and
	// safety_column, as grpo's.
	rlhf.RLPromptArgs `mapstructure:",squash"`

	Config `mapstructure:",squash"`

	// Rollouts holds backend, base_url, served_model_name, api_key, concurrency, request_timeout,
	// max_retries, n_supported and extra_body, as rlhf sample's: backend openai samples the
	// rollouts from an OpenAI-compatible server that follows the LoRA policy (rlhf.ServedPolicy).
	Rollouts rlhf.BackendConfig `mapstructure:",squash"`

	ValueModelPath string `mapstructure:"value_model_path" doc:"value model to start from, a reward model (score head): its score.weight is read at every token (default: the helpfulness reward model, as TRL and Llama 2 initialise it)"`
}

// NewTrainConfig is a TrainConfig with TRL's PPOConfig defaults in its PPO keys; a config file is
// read onto it.
func NewTrainConfig() TrainConfig { return TrainConfig{Config: DefaultConfig()} }

// Defaults returns a copy with the loop's unset keys, the policy path and the value model filled in.
func (c TrainConfig) Defaults() TrainConfig {
	c.Args = c.Args.TrainerDefaults(DefaultLearningRate)
	if c.ModelNameOrPath == "" {
		c.ModelNameOrPath = c.SFTModelPath
	}
	c.RLPromptArgs = c.RLPromptArgs.Defaults()
	c.Rollouts = c.Rollouts.RolloutDefaults()
	if c.ValueModelPath == "" {
		for _, s := range c.RewardModels {
			if s.Role == reward.RoleHelpfulness || len(c.RewardModels) == 1 {
				c.ValueModelPath = s.Path
				break
			}
		}
	}
	return c
}

// UpdateSteps is the number of optimizer steps taken on each rollout batch: num_ppo_epochs passes
// of num_mini_batches mini-batches, one step per mini-batch (TRL's PPOTrainer).
func (c TrainConfig) UpdateSteps() int { return c.NumPPOEpochs * c.NumMiniBatches }

// Validate checks the keys after Defaults; its errors name the key at fault. It reads no files.
func (c TrainConfig) Validate() error {
	if c.SFTModelPath != "" && c.ModelNameOrPath != "" && c.SFTModelPath != c.ModelNameOrPath {
		return fmt.Errorf("sft_model_path %q and model_name_or_path %q: both name the policy; set one", c.SFTModelPath, c.ModelNameOrPath)
	}
	c = c.Defaults()
	if err := recipe.Validate(c.Args, c.ModelNameOrPath, c.Model); err != nil {
		return err
	}
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if err := c.Rollouts.ValidateRollouts(c.Model.Lora.UsePEFT || c.Model.AdapterNameOrPath != ""); err != nil {
		return err
	}
	if err := c.RLPromptArgs.Validate(); err != nil {
		return err
	}
	if len(c.RewardModels) == 0 {
		return errors.New("reward_models: must name at least one reward model (PPO's score)")
	}
	return nil
}
