package rlhf

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/alignkit/alignkit/reward"
)

// RLPromptArgs are the keys with which an RL trainer (ppo, grpo) reads its prompts and scores its
// samples. Each trainer's config squashes them in, so both spell, default and check them alike.
type RLPromptArgs struct {
	DatasetName     string             `mapstructure:"dataset_name" doc:"prompts: a Parquet or JSON Lines file with a prompt, messages, instruction or chosen+rejected column; its other columns reach grpo's reward functions and safety_column"`
	Columns         map[string]string  `mapstructure:"columns" doc:"prompt column renames, canonical name -> file column (as rlhf sample)"`
	MaxTrainSamples int                `mapstructure:"max_train_samples" doc:"use only the first this many prompts (0: all)"`
	ChatTemplate    string             `mapstructure:"chat_template" doc:"template conversational prompts are rendered with: a built-in name, a file or Jinja source (default: the model's own)"`
	RewardModels    []reward.ModelSpec `mapstructure:"reward_models" doc:"reward models: list of {path, role: helpfulness|safety}; two are combined as Llama 2 does (reward.Combine: the safety score on safety prompts or when sigmoid(safety) < 0.15, else the helpfulness score; whitened over the batch)"`
	SafetyColumn    string             `mapstructure:"safety_column" doc:"with two reward models: the dataset column saying which prompts are safety prompts (default is_safety)"`
}

// Defaults returns a copy with safety_column filled in.
func (a RLPromptArgs) Defaults() RLPromptArgs {
	if a.SafetyColumn == "" {
		a.SafetyColumn = DefaultSafetyColumn
	}
	return a
}

// Validate checks the keys; its errors name the key at fault. It reads no files.
func (a RLPromptArgs) Validate() error {
	switch {
	case a.DatasetName == "":
		return errors.New("dataset_name: must be set (the prompts)")
	case a.MaxTrainSamples < 0:
		return fmt.Errorf("max_train_samples %d: want >= 0 (0: all)", a.MaxTrainSamples)
	}
	return reward.ValidateSpecs(a.RewardModels)
}

// Load reads the prompts with gen (Local.LoadRLPrompts: those that leave newTokens of room within
// maxPos; job and lengthKey name the trainer and its length key in messages), opens the reward
// models when any are named (nil when none), and with two sets each prompt's safety flag from
// safety_column, as Llama 2's combination needs.
func (a RLPromptArgs) Load(ctx context.Context, gen *Local, newTokens, maxPos int, job, lengthKey string, log io.Writer) (*RLPrompts, *RewardModels, error) {
	ps, err := gen.LoadRLPrompts(ctx, a.DatasetName, a.Columns, a.MaxTrainSamples, newTokens, maxPos, job, lengthKey, log)
	if err != nil {
		return nil, nil, err
	}
	if len(a.RewardModels) == 0 {
		return ps, nil, nil
	}
	models, err := LoadRewardModels(a.RewardModels, a.ChatTemplate)
	if err != nil {
		return nil, nil, err
	}
	if models.Combined() {
		if err := SetSafety(ps.Prompts, ps.Rows, a.Defaults().SafetyColumn, a.DatasetName); err != nil {
			return nil, nil, err
		}
	}
	return ps, models, nil
}
