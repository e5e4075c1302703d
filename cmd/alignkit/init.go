package main

import (
	"fmt"

	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/spf13/cobra"
)

func newInitCmd() *cobra.Command {
	var flags jobFlags
	var out string
	cmd := &cobra.Command{
		Use:   "init --config configs/tiny-llama.yaml --out DIR",
		Short: "Write a randomly initialised Llama, Mistral or Mixtral model directory in HF layout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var spec checkpoint.InitSpec
			if err := flags.load(&spec); err != nil {
				return err
			}
			m, err := checkpoint.Init(spec, out)
			if err != nil {
				return err
			}
			c := m.Weights.Config
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %d layers, d=%d, vocab %d, %.2fM parameters\n",
				out, c.Architectures[0], c.NumHiddenLayers, c.HiddenSize, c.VocabSize, float64(m.Weights.NumParams())/1e6)
			return nil
		},
	}
	flags.register(cmd, true)
	cmd.Flags().StringVar(&out, "out", "", "output model directory")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
