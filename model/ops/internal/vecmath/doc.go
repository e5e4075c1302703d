// Package vecmath holds the fused ops' vector kernels written in assembly, apart from package ops
// because Go does not allow assembly in a package that uses cgo (ops calls OpenBLAS). Each kernel does
// the part of a slice it can and says how much, and ops' scalar code does the rest, so every kernel
// has a scalar reference to be tested against.
package vecmath
