package main

import (
	"encoding/json"
	"fmt"

	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/spf13/cobra"
)

func newTokenizeCmd() *cobra.Command {
	var modelPath, text string
	var noBOS, asJSON bool
	cmd := &cobra.Command{
		Use:   "tokenize --model DIR --text \"...\" [--no-bos] [--json]",
		Short: "Print the token ids of a text (special-token strings in it stay text)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := checkpoint.Open(modelPath)
			if err != nil {
				return err
			}
			ids := m.Tok.Encode(text, !noBOS && m.Tok.AddBOS())
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"ids": ids})
			}
			for _, id := range ids {
				fmt.Fprintf(cmd.OutOrStdout(), "%d\t%q\n", id, m.Tok.DecodeToken(id))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model directory or .gguf file")
	cmd.Flags().StringVar(&text, "text", "", "text to tokenize")
	cmd.Flags().BoolVar(&noBOS, "no-bos", false, "do not add the BOS token")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"ids": [...]}`)
	_ = cmd.MarkFlagRequired("model")
	return cmd
}
