package main

import (
	"fmt"
	"runtime"

	"github.com/alignkit/alignkit/model/blas"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the BLAS in use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "alignkit %s (%s, %s/%s)\nBLAS: %s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, blas.Name())
			return nil
		},
	}
}
