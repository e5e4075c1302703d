package main

import (
	"fmt"
	"reflect"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/ppo"
	"github.com/alignkit/alignkit/train"
)

func newPPOCmd() *cobra.Command {
	var flags jobFlags
	cmd := &cobra.Command{
		Use:   "ppo --config configs/ppo/stories260k.yaml [--set key=value ...]",
		Short: "Proximal Policy Optimization against reward models, with a value model and a KL penalty (Llama 2's RLHF)",
		Long: "PPO for RLHF (InstructGPT; Llama 2 §3.2.3; TRL's PPOTrainer): each update samples one response per prompt\n" +
			"with the current policy (alignkit's engine), scores it with the reward model(s) (two combined as Llama 2\n" +
			"does), subtracts kl_coef times a per-token KL against the initial policy, estimates advantages with GAE\n" +
			"from a value model (a reward model read at every token, by default the helpfulness reward model), and\n" +
			"takes num_ppo_epochs x num_mini_batches optimizer steps of the clipped policy and value losses.\n" +
			"output_dir holds the policy and, under value_model/, the value model.\n\n" +
			"Config keys (TRL's names; ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(ppo.TrainConfig{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := ppo.NewTrainConfig() // the PPO keys' defaults first: their zero values mean something
			if err := flags.load(&cfg); err != nil {
				return err
			}
			res, err := ppo.Run(cmd.Context(), cfg, train.WithLogWriter(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			m := res.LastMetrics
			fmt.Fprintf(cmd.OutOrStdout(), "ppo: %d steps, train loss %.4f; last step: objective/scores %.4f, objective/kl %.4f, loss/value_avg %.4f; model in %s\n",
				res.Steps, res.TrainLoss, m["objective/scores"], m["objective/kl"], m["loss/value_avg"], res.OutputDir)
			return nil
		},
	}
	flags.register(cmd, true)
	return cmd
}
