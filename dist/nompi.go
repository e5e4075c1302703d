//go:build !mpi

package dist

func openWorld() (Comm, error) { return Single(), nil }

func finalize() error { return nil }

func implementation() string { return "" }
