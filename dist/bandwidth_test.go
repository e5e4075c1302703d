package dist_test

import (
	"os"
	"testing"

	"github.com/alignkit/alignkit/bench"
	"github.com/alignkit/alignkit/dist"
)

// TestAllreduceBandwidth measures one step's gradient all-reduce (bench.Allreduce: float64 sums in
// buckets, as the training loop runs it) for the reference shape, full and LoRA r16 all-linear, and
// llama3-1b LoRA r16, and checks the sums. It needs a job of several ranks and ALLREDUCE_BENCH=1
// (`make bench` runs the same through `alignkit bench allreduce`):
//
//	ALLREDUCE_BENCH=1 mpirun -np 2 bin/dist.test -test.run AllreduceBandwidth -test.v
func TestAllreduceBandwidth(t *testing.T) {
	if os.Getenv("ALLREDUCE_BENCH") == "" {
		t.Skip("a measurement: set ALLREDUCE_BENCH=1 and run the test binary under mpirun")
	}
	c, err := dist.World()
	if err != nil {
		t.Fatal(err)
	}
	if c.Size() < 2 {
		t.Skip("one rank: nothing travels (run under mpirun -np 2)")
	}
	for _, tc := range []struct {
		preset string
		rank   int
	}{{"ref", 0}, {"ref", 16}, {"llama3-1b", 16}} {
		p, err := bench.LookupPreset(tc.preset)
		if err != nil {
			t.Fatal(err)
		}
		res, err := bench.Allreduce(c, p, tc.rank, 2, 8)
		if err != nil {
			t.Fatal(err)
		}
		if c.Rank() == 0 {
			t.Logf("%s LoRA r%d (0: full): %d params in %d tensors, %.1f MB per step; loopback %d ranks: %.1f ms (%.0f MB/s); modelled 1/10/100 Gbit/s: %.3g / %.3g / %.3g s",
				tc.preset, tc.rank, res.Params, res.Tensors, float64(res.Bytes)/1e6, c.Size(), 1000*res.Median,
				float64(res.Bytes)/1e6/res.Median, res.LinkSeconds["1gbit"], res.LinkSeconds["10gbit"], res.LinkSeconds["100gbit"])
		}
	}
}
