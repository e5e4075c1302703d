//go:build !unix

package demo

// cpuSeconds is unknown off Unix; timings then report wall-clock time only.
func cpuSeconds() float64 { return 0 }
