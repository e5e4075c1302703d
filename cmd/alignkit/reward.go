package main

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/train"
)

func newRewardCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reward",
		Short: "Reward model (Llama 2-Chat stage 2): train on preference pairs, score responses",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRewardTrainCmd(), newRewardScoreCmd())
	return cmd
}

func newRewardTrainCmd() *cobra.Command {
	var flags jobFlags
	cmd := &cobra.Command{
		Use:   "train --config configs/reward/stories260k.yaml [--set key=value ...]",
		Short: "Train a reward model on chosen/rejected pairs (Bradley-Terry loss with Llama 2's margin)",
		Long: "Train a reward model on chosen/rejected pairs: a scalar head on the last token, the Bradley-Terry\n" +
			"loss with Llama 2's rating margin, and TRL's reward centering.\n\n" +
			"Config keys (TRL's names; ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(reward.Config{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := reward.DefaultConfig()
			if err := flags.load(&cfg); err != nil {
				return err
			}
			_, err := reward.Run(cmd.Context(), cfg, train.WithLogWriter(cmd.ErrOrStderr()))
			return err
		},
	}
	flags.register(cmd, true)
	return cmd
}

func newRewardScoreCmd() *cobra.Command {
	var (
		modelPath, template, column string
		rewardModels                []string
		fc                          reward.FileConfig
		batch, maxLen, maxPrompt    int
	)
	cmd := &cobra.Command{
		Use:   "score (--model DIR | --reward-model PATH:ROLE ...) --input X.parquet --output Y.parquet [--batch-size N] [--chat-template T]",
		Short: "Add a reward column to prompt/response or conversation rows",
		Long: "Score every row of a Parquet or JSON Lines file with a reward model and write the same rows, in\n" +
			"the same order, with a float64 reward column. A row is prompt + response (or completion), strings\n" +
			"or message lists; a messages conversation ending with the assistant's response; or an alpaca row.\n" +
			"Parquet output keeps the input's schema and values; the file appears only when complete.\n\n" +
			"With --reward-model helpfulness and safety models (Llama 2's two), the rows get each model's score\n" +
			"(<column>_helpfulness, <column>_safety), the combined reward (<column>: the safety score on safety\n" +
			"prompts, read from --safety-column, or when sigmoid(safety) < 0.15, else the helpfulness score) and\n" +
			"used_safety (whether the reward is the safety score).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, err := rewardModelSpecs(modelPath, rewardModels)
			if err != nil {
				return err
			}
			m, err := reward.LoadModels(specs, reward.WithChatTemplate(template), reward.WithBatchSize(batch),
				reward.WithMaxLength(maxLen), reward.WithMaxPromptLength(maxPrompt))
			if err != nil {
				if modelPath != "" {
					// One model named by --model: its error as before, not a reward_models entry's.
					return errors.Unwrap(err)
				}
				return err
			}
			fc.Column, fc.SafetyKey = column, "--safety-column"
			fc.Progress = cmd.ErrOrStderr()
			res, err := reward.ScoreFileModels(cmd.Context(), m, fc)
			if err != nil {
				return err
			}
			what := "column " + column
			if len(res.Columns) > 1 {
				what = "columns " + strings.Join(res.Columns, ", ")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "scored %d rows into %s (%s)\n", res.Rows, fc.Output, what)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "reward model: an HF directory or .gguf with a score head (or --reward-model)")
	f.StringArrayVar(&rewardModels, "reward-model", nil, "reward model and its role, PATH:helpfulness or PATH:safety; repeat for Llama 2's two (instead of --model)")
	f.StringVar(&fc.SafetyColumn, "safety-column", "is_safety", "with two reward models: the input column saying which prompts are safety prompts")
	f.StringVar(&fc.Input, "input", "", "rows to score: .parquet, .jsonl or .json")
	f.StringVar(&fc.Output, "output", "", "where to write the scored rows (same file type as --input)")
	f.IntVar(&batch, "batch-size", 16, "sequences per forward pass")
	f.StringVar(&template, "chat-template", "", "chat template for conversations (default: the model's own, which training stores)")
	f.IntVar(&maxLen, "max-length", 0, "truncate prompt+response to this many tokens (0: as the model was trained, from its alignkit_reward.json, else its context)")
	f.IntVar(&maxPrompt, "max-prompt-length", 0, "cut prompts longer than this from the left (0: as the model was trained)")
	f.StringToStringVar(&fc.Columns, "columns", nil, "rename columns: --columns prompt=question,response=answer")
	f.StringVar(&column, "column", "reward", "name of the output column (an input column of that name is replaced)")
	for _, name := range []string{"input", "output"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// rewardModelSpecs is the reward model list of --model or the --reward-model flags (PATH:ROLE, the
// role after the last colon, so a path may hold colons).
func rewardModelSpecs(modelPath string, flags []string) ([]reward.ModelSpec, error) {
	switch {
	case modelPath != "" && len(flags) > 0:
		return nil, errors.New("--model, --reward-model: both are set; use --model for one reward model or --reward-model for each of several")
	case modelPath != "":
		return []reward.ModelSpec{{Path: modelPath, Role: reward.RoleHelpfulness}}, nil
	case len(flags) == 0:
		return nil, errors.New("--model or --reward-model: one must be set (the reward model that scores)")
	}
	specs := make([]reward.ModelSpec, len(flags))
	for i, f := range flags {
		k := strings.LastIndex(f, ":")
		if k < 0 {
			return nil, fmt.Errorf("--reward-model %q: want PATH:ROLE with ROLE %s or %s", f, reward.RoleHelpfulness, reward.RoleSafety)
		}
		specs[i] = reward.ModelSpec{Path: f[:k], Role: f[k+1:]}
	}
	if err := reward.ValidateSpecs(specs); err != nil {
		return nil, fmt.Errorf("--reward-model: %w", err)
	}
	return specs, nil
}
