package main

import (
	"fmt"
	"reflect"

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
		fc                          reward.FileConfig
		batch, maxLen, maxPrompt    int
	)
	cmd := &cobra.Command{
		Use:   "score --model DIR --input X.parquet --output Y.parquet [--batch-size N] [--chat-template T]",
		Short: "Add a reward column to prompt/response or conversation rows",
		Long: "Score every row of a Parquet or JSON Lines file with a reward model and write the same rows, in\n" +
			"the same order, with a float64 reward column. A row is prompt + response (or completion), strings\n" +
			"or message lists; a messages conversation ending with the assistant's response; or an alpaca row.\n" +
			"Parquet output keeps the input's schema and values; the file appears only when complete.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := reward.NewScorer(modelPath, reward.WithChatTemplate(template), reward.WithBatchSize(batch),
				reward.WithMaxLength(maxLen), reward.WithMaxPromptLength(maxPrompt))
			if err != nil {
				return err
			}
			fc.Column = column
			fc.Progress = cmd.ErrOrStderr()
			res, err := reward.ScoreFile(cmd.Context(), s, fc)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "scored %d rows into %s (column %s)\n", res.Rows, fc.Output, column)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "reward model: an HF directory or .gguf with a score head")
	f.StringVar(&fc.Input, "input", "", "rows to score: .parquet, .jsonl or .json")
	f.StringVar(&fc.Output, "output", "", "where to write the scored rows (same file type as --input)")
	f.IntVar(&batch, "batch-size", 16, "sequences per forward pass")
	f.StringVar(&template, "chat-template", "", "chat template for conversations (default: the model's own, which training stores)")
	f.IntVar(&maxLen, "max-length", 0, "truncate prompt+response to this many tokens (0: as the model was trained, from its alignkit_reward.json, else its context)")
	f.IntVar(&maxPrompt, "max-prompt-length", 0, "cut prompts longer than this from the left (0: as the model was trained)")
	f.StringToStringVar(&fc.Columns, "columns", nil, "rename columns: --columns prompt=question,response=answer")
	f.StringVar(&column, "column", "reward", "name of the output column (an input column of that name is replaced)")
	for _, name := range []string{"model", "input", "output"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}
