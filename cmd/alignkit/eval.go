package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/bpb"
	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/winrate"
)

func newEvalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a model on data",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newEvalBPBCmd(), newEvalWinrateCmd())
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
			m, err := checkpoint.OpenInference(cmd.Context(), modelPath, "")
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

func newEvalWinrateCmd() *cobra.Command {
	var flags jobFlags
	cmd := &cobra.Command{
		Use:   "winrate --config configs/eval/winrate-stories260k.yaml [--set key=value ...]",
		Short: "Win rate of model A against model B on a prompt set, judged by a reward model or an LLM judge",
		Long: "Win rate (Llama 2 §3.4.2): both models answer every prompt (or their answers are read from files),\n" +
			"a judge (a reward model, Llama 2's helpfulness and safety models combined, or an LLM behind an\n" +
			"OpenAI-compatible server) compares each pair shown in a random order (seeded), and the verdicts are\n" +
			"recorded in the models' order. Writes winrate_judgements.parquet, winrate.json (win, tie and loss\n" +
			"rates, the score (wins + ties/2) / judgements, and their 95% intervals) and winrate.png into output_dir.\n\n" +
			"Config keys (ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(winrate.Config{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := winrate.DefaultConfig()
			if err := flags.load(&cfg); err != nil {
				return err
			}
			cfg.Progress = cmd.ErrOrStderr()
			s, err := winrate.Evaluate(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "eval winrate: %s vs %s: win %.1f%% [%.1f, %.1f], tie %.1f%%, loss %.1f%%; score %.1f%% [%.1f, %.1f] over %d valid of %d judgements (%d invalid, %d swapped); wrote %s\n",
				s.ModelA, s.ModelB, 100*s.WinRate, 100*s.WinRateCI95[0], 100*s.WinRateCI95[1], 100*s.TieRate, 100*s.LossRate,
				100*s.Score, 100*s.ScoreCI95[0], 100*s.ScoreCI95[1], s.Valid, s.Judgements, s.Invalid, s.Swapped,
				filepath.Join(cfg.OutputDir, winrate.SummaryFile))
			return nil
		},
	}
	flags.register(cmd, true)
	return cmd
}
