// Package mpitest holds the end-to-end tests of data-parallel jobs: they run the alignkit binary
// named by $ALIGNKIT_CLI (built with MPI) under mpirun and compare with one process. `make test-mpi`
// builds the binary and runs them; without $ALIGNKIT_CLI they skip with a message.
package mpitest
