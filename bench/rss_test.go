package bench

import (
	"runtime/debug"
	"testing"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name, in string
		want     Memory
		err      string
	}{
		{name: "kernel format", in: "Name:\tbench.test\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t4\n",
			want: Memory{RSS: 1024 << 10, Peak: 2048 << 10}},
		{name: "missing", in: "Name:\tx\nVmRSS:\t1 kB\n", err: "/proc/self/status: no VmRSS and VmHWM lines"},
		{name: "unit", in: "VmRSS:\t1 MB\nVmHWM:\t1 kB\n", err: `/proc/self/status: VmRSS line "1 MB" is not "N kB"`},
		{name: "number", in: "VmRSS:\tx kB\nVmHWM:\t1 kB\n", err: `/proc/self/status: VmRSS value "x": strconv.ParseInt: parsing "x": invalid syntax`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tc.in))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestReadMemoryGrows checks the live reader against the kernel: touching 64 MiB raises VmRSS and
// VmHWM by about that much. The heap is returned to the kernel first, and the bound leaves room for
// the runtime giving back other pages meanwhile (it did, by up to 2 MiB, on a loaded machine).
func TestReadMemoryGrows(t *testing.T) {
	debug.FreeOSMemory()
	before, err := ReadMemory()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after, err := ReadMemory()
	if err != nil {
		t.Fatal(err)
	}
	if d := after.RSS - before.RSS; d < 56<<20 {
		t.Errorf("VmRSS grew by %d bytes after touching 64 MiB", d)
	}
	if after.Peak < after.RSS {
		t.Errorf("VmHWM %d below VmRSS %d", after.Peak, after.RSS)
	}
	if buf[len(buf)-1] != byte(len(buf)-1) {
		t.Fatal("buffer changed")
	}
}
