package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/datatool"
	"github.com/alignkit/alignkit/model/checkpoint"
)

func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Inspect, convert, split, sample, deduplicate and decontaminate datasets",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDataInspectCmd(), newDataConvertCmd(), newDataSplitCmd(), newDataSampleCmd(), newDataDedupCmd(), newDataDecontaminateCmd())
	return cmd
}

// parsePairs reads repeated "a=b" flag values.
func parsePairs(flag string, vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, v := range vals {
		a, b, ok := strings.Cut(v, "=")
		if !ok || a == "" || b == "" {
			return nil, fmt.Errorf("--%s %q: want NAME=NAME", flag, v)
		}
		out[a] = b
	}
	return out, nil
}

func newDataInspectCmd() *cobra.Command {
	var split, modelPath, tmpl string
	var columns []string
	var maxLen, show int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE|org/name [--model M [--max-length N]] [--column canonical=file ...] [--json]",
		Short: "Schema, rows, which jobs can read the data, and with --model the token lengths and what max_length drops or truncates",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cols, err := parsePairs("column", columns)
			if err != nil {
				return err
			}
			t, err := datatool.Read(args[0], split)
			if err != nil {
				return err
			}
			opt := datatool.InspectOptions{Columns: cols, ChatTemplate: tmpl, MaxLength: maxLen}
			if modelPath != "" {
				m, err := checkpoint.OpenInference(cmd.Context(), modelPath, "")
				if err != nil {
					return err
				}
				opt.Tok, opt.ModelName = m.Tok, modelPath
			}
			rep, err := datatool.Inspect(t, opt)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
			}
			rep.Print(cmd.OutOrStdout(), show)
			return nil
		},
	}
	cmd.Flags().StringVar(&split, "split", "train", "split read when the argument is a dataset name in the local hub cache")
	cmd.Flags().StringArrayVar(&columns, "column", nil, "canonical=file column mapping, as the trainers' columns: key (repeatable)")
	cmd.Flags().StringVar(&modelPath, "model", "", "tokenize with this model's tokenizer and report token lengths")
	cmd.Flags().StringVar(&tmpl, "chat-template", "", "chat template (built-in name, .jinja file or source); default the tokenizer's")
	cmd.Flags().IntVar(&maxLen, "max-length", 1024, "max_length to check rows against")
	cmd.Flags().IntVar(&show, "show", 20, "how many dropped or truncated rows to list")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newDataConvertCmd() *cobra.Command {
	var split, from string
	var renames []string
	cmd := &cobra.Command{
		Use:   "convert IN OUT [--rename old=new ...] [--from alpaca|sharegpt|hh-rlhf]",
		Short: "Convert between JSON Lines and Parquet (by extension), rename columns, and rewrite alpaca/ShareGPT/hh-rlhf into TRL's layout",
		Long: "Convert IN to OUT, the file type chosen by OUT's extension (.parquet or .jsonl).\n" +
			"  --rename old=new   rename a column (repeatable; applied first)\n" +
			"  --from alpaca      instruction/input/output -> messages (user: instruction + \"\\n\" + input)\n" +
			"  --from sharegpt    conversations [{from, value}] (+ system) -> messages [{role, content}]\n" +
			"  --from hh-rlhf     chosen/rejected transcripts -> prompt, chosen, rejected message lists",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ren, err := parsePairs("rename", renames)
			if err != nil {
				return err
			}
			return rewriteTable(cmd, args[0], split, args[1], func(t *datatool.Table) (*datatool.Table, error) {
				return datatool.Convert(t, datatool.ConvertOptions{Rename: ren, From: from})
			})
		},
	}
	cmd.Flags().StringVar(&split, "split", "train", "split read when IN is a dataset name in the local hub cache")
	cmd.Flags().StringArrayVar(&renames, "rename", nil, "old=new column rename (repeatable)")
	cmd.Flags().StringVar(&from, "from", "", "source layout to rewrite into TRL's: alpaca, sharegpt or hh-rlhf")
	return cmd
}

func newDataSplitCmd() *cobra.Command {
	var split, trainOut, testOut string
	var frac float64
	var seed uint64
	cmd := &cobra.Command{
		Use:   "split IN --test-size F --train-out A --test-out B [--seed S]",
		Short: "Split rows into train and test files by a seeded permutation (the rows eval_split would hold out)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := datatool.Read(args[0], split)
			if err != nil {
				return err
			}
			tr, te, err := datatool.Split(t, frac, seed)
			if err != nil {
				return err
			}
			if err := datatool.Write(trainOut, tr.Columns, tr.Rows); err != nil {
				return err
			}
			if err := datatool.Write(testOut, te.Columns, te.Rows); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d rows to %s and %d rows to %s\n", len(tr.Rows), trainOut, len(te.Rows), testOut)
			return nil
		},
	}
	cmd.Flags().StringVar(&split, "split", "train", "split read when IN is a dataset name in the local hub cache")
	cmd.Flags().Float64Var(&frac, "test-size", 0, "fraction of rows for the test file, in (0, 1)")
	cmd.Flags().Uint64Var(&seed, "seed", 42, "permutation seed")
	cmd.Flags().StringVar(&trainOut, "train-out", "", "train rows file (.parquet or .jsonl)")
	cmd.Flags().StringVar(&testOut, "test-out", "", "test rows file (.parquet or .jsonl)")
	_ = cmd.MarkFlagRequired("test-size")
	_ = cmd.MarkFlagRequired("train-out")
	_ = cmd.MarkFlagRequired("test-out")
	return cmd
}

func newDataSampleCmd() *cobra.Command {
	var split string
	var n int
	var seed uint64
	cmd := &cobra.Command{
		Use:   "sample IN OUT -n N [--seed S]",
		Short: "Keep N rows chosen by a seeded permutation, in file order",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rewriteTable(cmd, args[0], split, args[1], func(t *datatool.Table) (*datatool.Table, error) {
				return datatool.Sample(t, n, seed)
			})
		},
	}
	cmd.Flags().StringVar(&split, "split", "train", "split read when IN is a dataset name in the local hub cache")
	cmd.Flags().IntVarP(&n, "n", "n", 0, "rows to keep")
	cmd.Flags().Uint64Var(&seed, "seed", 42, "permutation seed")
	_ = cmd.MarkFlagRequired("n")
	return cmd
}

func newDataDedupCmd() *cobra.Command {
	var split, removedPath string
	var opt datatool.DedupOptions
	cmd := &cobra.Command{
		Use:   "dedup IN OUT [--near] [--columns a,b] [--removed FILE]",
		Short: "Drop exact duplicates and, with --near, near duplicates (MinHash + LSH over word n-grams); the removed rows and why go to a side file",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := datatool.Read(args[0], split)
			if err != nil {
				return err
			}
			out, removed, err := datatool.Dedup(t, opt)
			if err != nil {
				return err
			}
			return writeFiltered(cmd, args[1], removedPath, out, removed)
		},
	}
	cmd.Flags().StringVar(&split, "split", "train", "split read when IN is a dataset name in the local hub cache")
	cmd.Flags().StringSliceVar(&opt.Columns, "columns", nil, "columns whose text is compared (default: all)")
	cmd.Flags().BoolVar(&opt.Near, "near", false, "also drop near duplicates")
	cmd.Flags().IntVar(&opt.NGram, "ngram", 5, "near: words per shingle")
	cmd.Flags().IntVar(&opt.Bands, "bands", 20, "near: LSH bands")
	cmd.Flags().IntVar(&opt.Rows, "rows", 6, "near: MinHash values per band")
	cmd.Flags().Float64Var(&opt.Threshold, "threshold", 0.8, "near: Jaccard similarity at or above which a row is a near duplicate")
	cmd.Flags().Uint64Var(&opt.Seed, "seed", 0, "near: MinHash seed")
	cmd.Flags().StringVar(&removedPath, "removed", "", "side file of removed rows (default OUT's name + .removed.jsonl)")
	return cmd
}

func newDataDecontaminateCmd() *cobra.Command {
	var split, evalPath, evalSplit, removedPath string
	var opt datatool.DecontaminateOptions
	cmd := &cobra.Command{
		Use:   "decontaminate IN OUT --eval FILE [--ngram 13] [--removed FILE]",
		Short: "Drop training rows sharing a word n-gram (13, as GPT-3) with an evaluation set; the removed rows and why go to a side file",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := datatool.Read(args[0], split)
			if err != nil {
				return err
			}
			ev, err := datatool.Read(evalPath, evalSplit)
			if err != nil {
				return err
			}
			out, removed, err := datatool.Decontaminate(t, ev, opt)
			if err != nil {
				return err
			}
			return writeFiltered(cmd, args[1], removedPath, out, removed)
		},
	}
	cmd.Flags().StringVar(&split, "split", "train", "split read when IN is a dataset name in the local hub cache")
	cmd.Flags().StringVar(&evalPath, "eval", "", "evaluation data (file or dataset name)")
	cmd.Flags().StringVar(&evalSplit, "eval-split", "test", "split read when --eval is a dataset name")
	cmd.Flags().StringSliceVar(&opt.Columns, "columns", nil, "training columns compared (default: all)")
	cmd.Flags().StringSliceVar(&opt.EvalColumns, "eval-columns", nil, "evaluation columns compared (default: all)")
	cmd.Flags().IntVar(&opt.NGram, "ngram", 13, "words per n-gram")
	cmd.Flags().StringVar(&removedPath, "removed", "", "side file of removed rows (default OUT's name + .removed.jsonl)")
	_ = cmd.MarkFlagRequired("eval")
	return cmd
}

// writeFiltered writes the kept rows and the side file of removed ones.
func writeFiltered(cmd *cobra.Command, out, removedPath string, kept *datatool.Table, removed []datatool.Removed) error {
	if removedPath == "" {
		removedPath = datatool.RemovedPath(out)
	}
	if err := datatool.Write(out, kept.Columns, kept.Rows); err != nil {
		return err
	}
	if err := datatool.WriteRemoved(removedPath, removed); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "kept %d rows in %s; removed %d (listed in %s)\n", len(kept.Rows), out, len(removed), removedPath)
	return nil
}

// rewriteTable reads in (a file, or a dataset name with its split), applies f, and writes the result
// to out atomically, saying how many rows it wrote.
func rewriteTable(cmd *cobra.Command, in, split, out string, f func(*datatool.Table) (*datatool.Table, error)) error {
	t, err := datatool.Read(in, split)
	if err != nil {
		return err
	}
	res, err := f(t)
	if err != nil {
		return err
	}
	if err := datatool.Write(out, res.Columns, res.Rows); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %d rows to %s\n", len(res.Rows), out)
	return nil
}
