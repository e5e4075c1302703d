package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/infer"
)

func newLogitsCmd() *cobra.Command {
	var modelPath, adapter, tokens, text string
	var top int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "logits --model DIR [--adapter DIR] (--tokens 1,403,407 | --text \"...\") [--top K] [--json]",
		Short: "Print next-token log-probs after every input position (the probe parity checks use)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (tokens == "") == (text == "") {
				return fmt.Errorf("give exactly one of --tokens and --text")
			}
			m, err := checkpoint.OpenInference(cmd.Context(), modelPath, adapter)
			if err != nil {
				return err
			}
			ids := m.Tok.Encode(text, m.Tok.AddBOS())
			if tokens != "" {
				if ids, err = parseIDs(tokens); err != nil {
					return err
				}
			}
			eng, err := infer.NewAdapted(m.Weights, m.Adapter)
			if err != nil {
				return err
			}
			logits, err := eng.Forward(ids, nil)
			if err != nil {
				return err
			}
			out := struct {
				IDs       []int32        `json:"ids"`
				Positions [][][2]float64 `json:"positions"`
				Last      []float64      `json:"last_logprobs"`
			}{IDs: ids}
			for _, row := range logits {
				lp := infer.LogSoftmax(row)
				out.Positions = append(out.Positions, topK(lp, top))
				out.Last = lp
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
			}
			for i, pos := range out.Positions {
				fmt.Fprintf(cmd.OutOrStdout(), "after %d %q:", i, m.Tok.DecodeToken(ids[i]))
				for _, p := range pos {
					fmt.Fprintf(cmd.OutOrStdout(), " %q=%.4f", m.Tok.DecodeToken(int32(p[0])), p[1])
				}
				fmt.Fprintln(cmd.OutOrStdout())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model directory or .gguf file")
	cmd.Flags().StringVar(&adapter, "adapter", "", "PEFT LoRA adapter directory to run over --model, unmerged")
	cmd.Flags().StringVar(&tokens, "tokens", "", "comma-separated token ids")
	cmd.Flags().StringVar(&text, "text", "", "text to tokenize (BOS added as the tokenizer says)")
	cmd.Flags().IntVar(&top, "top", 5, "how many of the most likely tokens to print per position")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

// parseIDs reads "1,403,407".
func parseIDs(s string) ([]int32, error) {
	var ids []int32
	for i, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--tokens: item %d %q is not a token id", i+1, f)
		}
		ids = append(ids, int32(n))
	}
	return ids, nil
}

// topK returns the k most likely [id, logprob] pairs, most likely first (lowest id on ties).
func topK(lp []float64, k int) [][2]float64 {
	idx := make([]int, len(lp))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return lp[idx[a]] > lp[idx[b]] })
	if k > len(idx) {
		k = len(idx)
	}
	out := make([][2]float64, k)
	for i := 0; i < k; i++ {
		out[i] = [2]float64{float64(idx[i]), lp[idx[i]]}
	}
	return out
}
