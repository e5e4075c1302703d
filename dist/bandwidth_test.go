package dist_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alignkit/alignkit/bench"
	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/model"
)

// gradientShapes are the trainable tensors of cfg: every weight (full fine-tuning), or for LoRA of
// rank r on all linear layers (PEFT's target_modules "all-linear": q, k, v, o, gate, up, down) the
// adapters A (r × in) and B (out × r) of each, the only tensors whose gradients travel.
func gradientShapes(cfg model.Config, loraRank int) []int {
	shapes := model.ExpectedShapes(cfg)
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	var sizes []int
	for _, n := range names {
		s := shapes[n]
		if loraRank == 0 {
			size := 1
			for _, d := range s {
				size *= d
			}
			sizes = append(sizes, size)
			continue
		}
		for _, m := range []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} {
			if strings.HasSuffix(n, "."+m+".weight") {
				sizes = append(sizes, loraRank*s[1], s[0]*loraRank) // A: r × in, B: out × r
			}
		}
	}
	return sizes
}

// TestAllreduceBandwidth measures one step's gradient all-reduce (AllreduceBuckets, as the training
// loop runs it) for the bench shapes, full and LoRA r16 all-linear, and checks the sums. It needs a
// job of several ranks and ALLREDUCE_BENCH=1:
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
	for _, preset := range []string{"ref", "smollm135m"} {
		p, err := bench.LookupPreset(preset)
		if err != nil {
			t.Fatal(err)
		}
		for _, rank := range []int{0, 16} {
			sizes := gradientShapes(p.Config, rank)
			grads := make([][]float32, len(sizes))
			total := 0
			for i, n := range sizes {
				grads[i] = make([]float32, n)
				total += n
			}
			const warm, timed = 2, 8
			var elapsed time.Duration
			for it := range warm + timed {
				for _, g := range grads {
					for j := range g {
						g[j] = float32(c.Rank() + 1)
					}
				}
				start := time.Now()
				if err := dist.AllreduceBuckets(c, grads, dist.DefaultBucketFloats); err != nil {
					t.Fatal(err)
				}
				if it >= warm {
					elapsed += time.Since(start)
				}
			}
			want := float32(c.Size() * (c.Size() + 1) / 2)
			for _, g := range grads {
				if g[0] != want || g[len(g)-1] != want {
					t.Fatalf("sum %v, want %v", g[0], want)
				}
			}
			// The slowest rank's time is the step's.
			secs := []float64{elapsed.Seconds() / timed}
			all, err := c.Allgather([]byte(fmt.Sprint(secs[0])))
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for _, b := range all {
				var s float64
				fmt.Sscan(string(b), &s)
				worst = max(worst, s)
			}
			mb := float64(total) * 4 / 1e6
			// Ring all-reduce: each rank sends and receives 2(N-1)/N of the buffer.
			wire := 2 * float64(c.Size()-1) / float64(c.Size()) * mb
			kind := "full"
			if rank > 0 {
				kind = fmt.Sprintf("LoRA r%d all-linear", rank)
			}
			if c.Rank() == 0 {
				t.Logf("%s %s: %d params in %d tensors, %.1f MB per step; loopback %d ranks: %.1f ms (%.0f MB/s); modelled 1/10/100 Gbit/s: %.3g / %.3g / %.3g s",
					preset, kind, total, len(sizes), mb, c.Size(), 1000*worst, mb/worst,
					wire/125, wire/1250, wire/12500)
			}
		}
	}
}
