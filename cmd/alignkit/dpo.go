package main

import (
	"fmt"
	"reflect"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/dpo"
	"github.com/alignkit/alignkit/train"
)

func newDPOCmd() *cobra.Command {
	var flags jobFlags
	cmd := &cobra.Command{
		Use:   "dpo --config configs/dpo/stories260k.yaml [--set key=value ...]",
		Short: "Direct Preference Optimization (and cDPO, robust, IPO, hinge, RPO) against a frozen reference model",
		Long: "Direct Preference Optimization: train the policy to prefer each pair's chosen answer over its rejected one,\n" +
			"relative to a frozen reference model (Mixtral-Instruct's and Zephyr's alignment stage).\n\n" +
			"With precompute_ref_log_probs the reference scores every pair once before training; the log-probs are\n" +
			"cached in ref_cache_dir (default ~/.cache/alignkit/ref_logps) under a hash of the data, the tokenization\n" +
			"and the reference weights, so reruns (another output_dir, beta or learning rate) skip the reference.\n\n" +
			"Config keys (TRL's names; ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(dpo.Config{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg dpo.Config
			if err := flags.load(&cfg); err != nil {
				return err
			}
			res, err := dpo.Run(cmd.Context(), cfg, train.WithLogWriter(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			m := res.LastMetrics
			fmt.Fprintf(cmd.OutOrStdout(), "dpo: %d steps, train loss %.4f; last step: loss %.4f, rewards/accuracies %.3f, rewards/margins %.4f; model in %s\n",
				res.Steps, res.TrainLoss, m["loss"], m["rewards/accuracies"], m["rewards/margins"], res.OutputDir)
			return nil
		},
	}
	flags.register(cmd, true)
	return cmd
}
