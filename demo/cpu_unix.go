//go:build unix

package demo

import "syscall"

// cpuSeconds is the process's user plus system CPU time so far: on a loaded machine wall-clock time
// says little, CPU time says what the demo itself cost.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
