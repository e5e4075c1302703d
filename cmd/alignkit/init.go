package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/model/checkpoint"
)

func newInitCmd() *cobra.Command {
	var flags jobFlags
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "init --config configs/init/tiny-llama.yaml --out DIR",
		Short: "Write a randomly initialised Llama, Mistral or Mixtral model directory in HF layout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var spec checkpoint.InitSpec
			if err := flags.load(&spec); err != nil {
				return err
			}
			if err := checkOutDir(out, force); err != nil {
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
	cmd.Flags().BoolVar(&force, "force", false, "write into --out even when it already holds files")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// checkOutDir refuses to write a new random model over a directory that already holds files (a
// trained model, most likely) unless force is set. A missing or empty directory is fine.
func checkOutDir(out string, force bool) error {
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, os.ErrNotExist), err == nil && len(entries) == 0, force:
		return nil
	case err != nil:
		if st, serr := os.Stat(out); serr == nil && !st.IsDir() {
			return fmt.Errorf("--out %s: is a file, not a directory", out)
		}
		return fmt.Errorf("--out %s: %w", out, err)
	}
	names := make([]string, 0, 3)
	for _, e := range entries[:min(3, len(entries))] {
		names = append(names, e.Name())
	}
	more := ""
	if len(entries) > 3 {
		more = fmt.Sprintf(", ... %d more", len(entries)-3)
	}
	return fmt.Errorf("--out %s: already exists and holds files (%s%s); pass --force to overwrite it", out, strings.Join(names, ", "), more)
}
