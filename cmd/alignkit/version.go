package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/model/blas"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the BLAS in use and whether MPI is compiled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "alignkit %s (%s, %s/%s)\nBLAS: %s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, blas.Name())
			mpi := dist.Implementation()
			if mpi == "" {
				mpi = "not compiled in (make build MPI=1)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "MPI: %s\n", mpi)
			return nil
		},
	}
}
