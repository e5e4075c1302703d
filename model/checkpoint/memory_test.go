package checkpoint

import "testing"

func TestMemAvailable(t *testing.T) {
	meminfo := "MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:   22000000 kB\nBuffers:  1 kB\n"
	if got := memAvailable([]byte(meminfo)); got != 22000000*1024 {
		t.Errorf("memAvailable = %d", got)
	}
	if got := memAvailable([]byte("MemTotal: 1 kB\n")); got != -1 {
		t.Errorf("without MemAvailable: %d", got)
	}
	if got := memAvailable([]byte("MemAvailable: lots kB\n")); got != -1 {
		t.Errorf("unparsable: %d", got)
	}
}
