package checkpoint

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// availableMemory is the memory this process may still use, in bytes: the kernel's MemAvailable,
// lowered to the cgroup's memory.max when one is set (as in a container). ok is false where neither
// can be read (not Linux); callers then skip their check rather than guess.
func availableMemory() (bytes int64, ok bool) {
	avail := int64(-1)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		avail = memAvailable(b)
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if limit, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			used := int64(0)
			if u, err := os.ReadFile("/sys/fs/cgroup/memory.current"); err == nil {
				used, _ = strconv.ParseInt(strings.TrimSpace(string(u)), 10, 64)
			}
			if left := limit - used; avail < 0 || left < avail {
				avail = left
			}
		}
	}
	return avail, avail >= 0
}

// memAvailable parses /proc/meminfo's "MemAvailable: N kB" line; -1 when absent.
func memAvailable(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return -1
			}
			return kb * 1024
		}
	}
	return -1
}
