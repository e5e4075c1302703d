package ppo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/train"
)

// PPODir is the subdirectory of an `rlhf run` output_dir that its ppo: stage trains into.
const PPODir = "ppo"

// RLHFConfig is `alignkit rlhf run` with an optional ppo: stage: rlhf.RunConfig's rejection-sampling
// rounds, then PPO on top of the last round's policy, as Llama 2's RLHF-V5 ran PPO on the
// rejection-sampling model. It lives here rather than in package rlhf because PPO's trainer is
// built on rlhf (its sampler and reward models).
type RLHFConfig struct {
	rlhf.RunConfig `mapstructure:",squash"`
	// PPO is the stage after the rounds; it runs when the ppo: section sets any key.
	PPO TrainConfig `mapstructure:"ppo" doc:"PPO after the last round (ppo keys; the loop sets model_name_or_path and output_dir = output_dir/ppo; dataset_name must be set, apart from the held-out prompts; reward_models, safety_column and chat_template default to the top level's)"`
}

// DefaultRLHFConfig is what a YAML file that sets nothing means: rlhf's defaults, and TRL's
// PPOConfig defaults in the ppo: section. Load a config over it.
func DefaultRLHFConfig() RLHFConfig {
	return RLHFConfig{RunConfig: rlhf.DefaultRunConfig(), PPO: NewTrainConfig()}
}

// HasPPO reports whether the ppo: section sets any key.
func (c RLHFConfig) HasPPO() bool { return !reflect.DeepEqual(c.PPO, NewTrainConfig()) }

// ppoConfig is the stage's configuration on top of policy, with the top level's defaults.
func (c RLHFConfig) ppoConfig(policy string) TrainConfig {
	p := c.PPO
	p.ModelNameOrPath = policy
	p.OutputDir = filepath.Join(c.OutputDir, PPODir)
	if len(p.RewardModels) == 0 {
		p.RewardModels = c.RunConfig.RewardModels
		if len(p.RewardModels) == 0 && c.RewardModelNameOrPath != "" {
			p.RewardModels = []reward.ModelSpec{{Path: c.RewardModelNameOrPath, Role: reward.RoleHelpfulness}}
		}
	}
	if p.SafetyColumn == "" {
		p.SafetyColumn = c.RunConfig.SafetyColumn
	}
	if p.ChatTemplate == "" {
		p.ChatTemplate = c.Data.ChatTemplate
	}
	return p
}

// Validate checks the rounds' keys (rlhf.RunConfig.Validate) and, when it sets any, the ppo:
// section's.
func (c RLHFConfig) Validate() error {
	if err := c.RunConfig.Validate(); err != nil {
		return err
	}
	if !c.HasPPO() {
		return nil
	}
	switch {
	case c.PPO.ModelNameOrPath != "" || c.PPO.SFTModelPath != "":
		return errors.New("ppo.model_name_or_path: set by the loop (the last round's policy); use model_name_or_path at the top level")
	case c.PPO.OutputDir != "":
		return errors.New("ppo.output_dir: set by the loop (output_dir/ppo)")
	case c.PPO.ResumeFromCheckpoint != "":
		return errors.New("ppo.resume_from_checkpoint: set by the loop when the stage resumes")
	case c.PPO.DatasetName == "":
		return errors.New("ppo.dataset_name: must be set: PPO's prompts (the top level's dataset_name holds the held-out prompts too)")
	}
	if err := c.ppoConfig("policy").Validate(); err != nil {
		return fmt.Errorf("ppo.%w", err)
	}
	return nil
}

// RunRLHF is `alignkit rlhf run`: the rejection-sampling rounds (rlhf.Run, resumable), then, with a
// ppo: section, PPO on the last round's policy into output_dir/ppo. A stopped stage resumes from its
// latest checkpoint when the command is run again; a finished one is not run again. The
// train.Result is the zero value without a ppo: section or when the stage had finished before.
func RunRLHF(ctx context.Context, cfg RLHFConfig, opts ...train.Option) ([]rlhf.RoundSummary, train.Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, train.Result{}, err
	}
	rows, err := rlhf.Run(ctx, cfg.RunConfig, opts...)
	if err != nil || !cfg.HasPPO() {
		return rows, train.Result{}, err
	}
	if len(rows) == 0 {
		return rows, train.Result{}, errors.New("rlhf run: no round summary to take the policy from")
	}
	p := cfg.ppoConfig(rows[len(rows)-1].Policy)
	log := train.LogWriter(opts...)
	// training_complete.json is the loop's mark of a finished run (train's completeFile).
	if _, err := os.Stat(filepath.Join(p.OutputDir, "training_complete.json")); err == nil {
		fmt.Fprintf(log, "rlhf run: the ppo stage in %s is complete\n", p.OutputDir)
		return rows, train.Result{}, nil
	}
	if ck, _ := filepath.Glob(filepath.Join(p.OutputDir, "checkpoint-*")); len(ck) > 0 {
		p.ResumeFromCheckpoint = "latest"
	}
	fmt.Fprintf(log, "rlhf run: ppo on %s into %s\n", p.ModelNameOrPath, p.OutputDir)
	res, err := Run(ctx, p, opts...)
	if err != nil {
		return rows, train.Result{}, fmt.Errorf("ppo stage: %w", err)
	}
	return rows, res, nil
}
