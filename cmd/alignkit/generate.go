package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/infer"
)

func newGenerateCmd() *cobra.Command {
	var modelPath, adapter, prompt string
	var p infer.Sampling
	cmd := &cobra.Command{
		Use:   "generate --model DIR [--adapter DIR] --prompt \"...\" [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]",
		Short: "Continue a prompt with the model (greedy at temperature 0)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := checkpoint.OpenInference(cmd.Context(), modelPath, adapter)
			if err != nil {
				return err
			}
			eng, err := infer.NewAdapted(m.Weights, m.Adapter)
			if err != nil {
				return err
			}
			p.StopIDs = m.Tok.EOSIDs()
			ids := m.Tok.Encode(prompt, m.Tok.AddBOS())
			out, err := eng.Generate(cmd.Context(), [][]int32{ids}, p)
			if err != nil {
				return err
			}
			// Decoding prompt and continuation together keeps the space SentencePiece puts in front of
			// the first new word, which decoding the new ids alone would strip.
			fmt.Fprintln(cmd.OutOrStdout(), m.Tok.Decode(append(ids, out[0]...)))
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model directory or .gguf file")
	cmd.Flags().StringVar(&adapter, "adapter", "", "PEFT LoRA adapter directory to run over --model, unmerged")
	cmd.Flags().StringVar(&prompt, "prompt", "", "text to continue")
	cmd.Flags().IntVar(&p.MaxNewTokens, "max-new-tokens", 64, "how many tokens to generate at most")
	cmd.Flags().Float64Var(&p.Temperature, "temperature", 0, "sampling temperature; 0 is greedy")
	cmd.Flags().Float64Var(&p.TopP, "top-p", 1, "nucleus sampling mass")
	cmd.Flags().IntVar(&p.TopK, "top-k", 0, "sample among the K most likely tokens (0: all)")
	cmd.Flags().Uint64Var(&p.Seed, "seed", 0, "random seed")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}
