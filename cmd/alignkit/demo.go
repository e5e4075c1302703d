package main

import (
	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/demo"
)

func newDemoCmd() *cobra.Command {
	var opts demo.Options
	var seeds int
	cmd := &cobra.Command{
		Use:   "demo [--out runs/demo] [--quick] [--force] [--seed N] [--seeds N]",
		Short: "The whole Llama 2-Chat recipe on a synthetic world, measured: SFT, helpfulness and safety reward models, best-of-K, PPO, DPO, GRPO, GAtt, export",
		Long: "Run every alignment stage on a tiny Llama and the synthetic world of demo/world, each stage with its own\n" +
			"command's entry point and a config of configs/demo, and print one table of what each stage measurably did\n" +
			"(also written to OUT/RESULTS.md with plots). It takes minutes on two cores (README, Results);\n" +
			"--quick is smaller and only shows that every stage runs. --seeds N runs the whole demo on seeds --seed .. --seed+N-1\n" +
			"(each into OUT/seed-<seed>) and writes OUT/SEEDS.md with each effect's mean and spread.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Log, opts.Table = cmd.ErrOrStderr(), cmd.OutOrStdout()
			if cmd.Flags().Changed("seeds") {
				_, err := demo.RunSeeds(cmd.Context(), opts, seeds)
				return err
			}
			_, err := demo.Run(cmd.Context(), opts)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Out, "out", "runs/demo", "output directory")
	f.BoolVar(&opts.Quick, "quick", false, "small world and short schedules (CI)")
	f.BoolVar(&opts.Force, "force", false, "replace a previous demo's output directory")
	f.Uint64Var(&opts.Seed, "seed", 1, "seed of the world, the training runs and the samples")
	f.IntVar(&seeds, "seeds", 1, "run the demo on this many seeds from --seed on, each into OUT/seed-<seed>, and report mean and spread in OUT/SEEDS.md")
	f.StringVar(&opts.ConfigDir, "configs", demo.DefaultConfigDir, "directory of the stage configs")
	f.StringVar(&opts.LlamaCppDir, "llamacpp", "conformance/llamacpp", "directory of node-llama-cpp for the llama.cpp chat sample")
	return cmd
}
