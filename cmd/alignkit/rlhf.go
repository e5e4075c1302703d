package main

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/ppo"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/train"
)

func newRLHFCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rlhf",
		Short: "Best-of-K rejection sampling (Llama 2-Chat RLHF): sample and score, or the iterative loop",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRLHFSampleCmd(), newRLHFRunCmd())
	return cmd
}

func newRLHFSampleCmd() *cobra.Command {
	var flags jobFlags
	var temps string
	cmd := &cobra.Command{
		Use:   "sample --config configs/rlhf/sample-stories260k.yaml [--temperatures 0.8,1.0,1.2] [--set key=value ...]",
		Short: "Sample K completions per prompt, score them with the reward model, keep the best",
		Long: "Sample K completions per prompt with the policy (alignkit's engine, or any OpenAI-compatible server),\n" +
			"score each with the reward model, and write samples.parquet, best.parquet (SFT rows), pairs.parquet\n" +
			"(write_pairs) and the reward-vs-K curves (reward_vs_k.json/.png, one per temperature of a sweep).\n\n" +
			"Config keys (ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(rlhf.SampleConfig{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if temps != "" {
				flags.sets = append(flags.sets, "temperatures=["+temps+"]")
			}
			cfg := rlhf.DefaultSampleConfig()
			if err := flags.load(&cfg); err != nil {
				return err
			}
			res, err := rlhf.RunSample(cmd.Context(), cfg, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			curves, err := res.Curves()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%d prompts x %d samples, written to %s\n", len(res.Prompts), res.K, cfg.OutputDir)
			fmt.Fprintln(out, "temperature  N  expected_max  median")
			for _, c := range curves {
				for i, n := range c.N {
					fmt.Fprintf(out, "%11g %2d  %12.4f  %6.4f\n", c.Temperature, n, c.ExpectedMax[i], c.Median[i])
				}
			}
			return nil
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVar(&temps, "temperatures", "", "temperature sweep, e.g. 0.8,1.0,1.2,1.4 (sets the temperatures key)")
	return cmd
}

func newRLHFRunCmd() *cobra.Command {
	var flags jobFlags
	cmd := &cobra.Command{
		Use:   "run --config configs/rlhf/run-stories260k.yaml [--set key=value ...]",
		Short: "Iterative rejection-sampling fine-tuning: R rounds of sample, select, SFT, evaluate (resumable)",
		Long: "Llama 2's iterative rejection-sampling fine-tuning. Each round samples K completions per prompt with\n" +
			"the current policy, adds them to the pool of the best samples of all rounds, fine-tunes the policy on\n" +
			"the pool (the sft: section), and scores the new policy on held-out prompts; a ppo: section then runs PPO\n" +
			"on the last round's policy (Llama 2's RLHF-V5) into output_dir/ppo. Everything goes under\n" +
			"output_dir/round-r/; a stopped run started again with the same config resumes where it stopped.\n\n" +
			"Config keys (ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(ppo.RLHFConfig{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := ppo.DefaultRLHFConfig() // rlhf run's keys, and an optional ppo: stage after the rounds
			if err := flags.load(&cfg); err != nil {
				return err
			}
			rows, res, err := ppo.RunRLHF(cmd.Context(), cfg, train.WithLogWriter(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), strings.TrimRight(rlhf.SummaryMarkdown(rows), "\n")+"\n")
			if res.Steps > 0 {
				m := res.LastMetrics
				fmt.Fprintf(cmd.OutOrStdout(), "ppo: %d steps, train loss %.4f; last step: objective/scores %.4f, objective/kl %.4f; model in %s\n",
					res.Steps, res.TrainLoss, m["objective/scores"], m["objective/kl"], res.OutputDir)
			}
			return nil
		},
	}
	flags.register(cmd, true)
	return cmd
}
