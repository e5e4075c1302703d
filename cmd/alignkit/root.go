package main

import (
	"github.com/spf13/cobra"
)

// version is set at link time by the Makefile (-X main.version=...).
var version = "dev"

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "alignkit",
		Short:         "Fine-tune and align Llama-family models: SFT, reward model, best-of-K, DPO, GAtt, export",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd(), newInitCmd(), newTokenizeCmd(), newLogitsCmd(), newGenerateCmd(), newExportCmd(), newDocsCmd(), newBenchCmd(), newSFTCmd(), newRewardCmd(), newDPOCmd(), newGattCmd(), newRLHFCmd(), newGRPOCmd(), newPPOCmd(), newServeCmd(), newDemoCmd(), newEvalCmd(), newDataCmd(), newBoardCmd())
	return root
}
