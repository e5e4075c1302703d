package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/bpb"
	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/model/checkpoint"
)

func newEvalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a model on data",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newEvalBPBCmd())
	return cmd
}

func newEvalBPBCmd() *cobra.Command {
	var modelPath, dataPath, split string
	var opt bpb.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bpb --model M --data FILE [--text-column C] [--component-column C] [--json]",
		Short: "Bits per byte of a model on text, overall and per component (the Pile paper's measure)",
		Long: "Bits per byte: the total negative log-likelihood of every token of the texts in nats, / ln 2,\n" +
			"/ the texts' total UTF-8 bytes (the Pile paper's measure; comparable across tokenizers). Each\n" +
			"text is scored from BOS; texts longer than the context are scored in windows that share one\n" +
			"token. --component-column also reports it per value of that column.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := data.ReadSource(dataPath, split)
			if err != nil {
				return err
			}
			m, err := checkpoint.Open(modelPath)
			if err != nil {
				return err
			}
			res, err := bpb.Evaluate(m, rows, opt)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(res)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "component\trows\ttokens\tbytes\tbits/byte\t")
			for _, c := range res.Components {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.4f\t\n", c.Name, c.Rows, c.Tokens, c.Bytes, c.BPB)
			}
			s := res.Overall
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.4f\t\n", "all", s.Rows, s.Tokens, s.Bytes, s.BPB)
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model directory, .gguf file, org/name or ollama:name")
	cmd.Flags().StringVar(&dataPath, "data", "", "a .parquet or .jsonl file, or a dataset org/name in the local hub cache")
	cmd.Flags().StringVar(&split, "split", "test", "split read when --data is a dataset name")
	cmd.Flags().StringVar(&opt.TextColumn, "text-column", "text", "the column holding the text")
	cmd.Flags().StringVar(&opt.ComponentColumn, "component-column", "", "report bits per byte per value of this column too")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("data")
	return cmd
}
