// Package sharedtest locates ../shared, the real reference files, for tests; skips with a clear
// message when absent.
//
// The reference files (models, data sets, llama.cpp dumps) live beside the repository in ../shared
// and are never copied into it, so tests find them from the repository root (the directory holding
// go.mod) and skip, saying which file is missing, where a checkout does not have them.
package sharedtest
