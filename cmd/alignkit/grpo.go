package main

import (
	"fmt"
	"reflect"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/grpo"
	"github.com/alignkit/alignkit/train"
)

func newGRPOCmd() *cobra.Command {
	var flags jobFlags
	cmd := &cobra.Command{
		Use:   "grpo --config configs/grpo/stories260k.yaml [--set key=value ...]",
		Short: "Group Relative Policy Optimization: sample G completions per prompt, reward them, push the policy toward the better ones",
		Long: "Group Relative Policy Optimization (DeepSeekMath; TRL's GRPOTrainer): each step samples num_generations\n" +
			"completions per prompt with the current policy (alignkit's engine), scores them with reward functions\n" +
			"(exact_match, regex, length_penalty, an external command) and/or reward models (two combined as Llama 2\n" +
			"does), normalises each reward within its group, and takes the clipped surrogate per completion token,\n" +
			"with a k3 KL penalty against the initial policy when beta > 0.\n\n" +
			"Config keys (TRL's names; ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(grpo.Config{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg grpo.Config
			if err := flags.load(&cfg); err != nil {
				return err
			}
			res, err := grpo.Run(cmd.Context(), cfg, train.WithLogWriter(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			m := res.LastMetrics
			fmt.Fprintf(cmd.OutOrStdout(), "grpo: %d steps, train loss %.4f; last step: reward %.4f, reward_std %.4f; model in %s\n",
				res.Steps, res.TrainLoss, m["reward"], m["reward_std"], res.OutputDir)
			return nil
		},
	}
	flags.register(cmd, true)
	return cmd
}
