package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/model"
)

// AllreduceResult is what `alignkit bench allreduce --json` prints: one training step's gradient
// all-reduce, as the loop runs it (float64 sums in buckets of dist.DefaultBucketFloats), timed on
// the job's ranks, with the time the same bytes would take on slower links.
type AllreduceResult struct {
	Kind     string `json:"kind"` // "allreduce"
	Preset   string `json:"preset"`
	LoRARank int    `json:"lora_r"` // 0: full fine-tuning
	Ranks    int    `json:"ranks"`
	Params   int    `json:"params"`  // trainable values, one gradient each
	Tensors  int    `json:"tensors"` // trainable tensors
	// Bytes is the buffer each rank reduces per step (8 bytes per value); a ring all-reduce sends
	// and receives 2(N-1)/N of it per rank.
	Bytes   int64     `json:"bytes"`
	Reps    int       `json:"reps"`
	Seconds []float64 `json:"step_seconds"` // per timed repetition, the slowest rank's
	Median  float64   `json:"median_seconds"`
	// LinkSeconds models the wire time alone on 1, 10 and 100 Gbit/s links (no latency, no overlap).
	LinkSeconds map[string]float64 `json:"link_seconds"`
}

// GradientSizes are the lengths of cfg's trainable tensors: every weight (full fine-tuning), or for
// LoRA of rank r on all linear layers (PEFT's target_modules "all-linear": q, k, v, o, gate, up,
// down) the adapters A (r × in) and B (out × r) of each, the only tensors whose gradients travel.
func GradientSizes(cfg model.Config, loraRank int) []int {
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

// Allreduce times warm+reps all-reduces of the gradients of preset p (LoRA of loraRank, or every
// weight when 0) over c and checks the sums. Every rank of c calls it; each gets the result.
func Allreduce(c dist.Comm, p Preset, loraRank, warm, reps int) (AllreduceResult, error) {
	if reps < 1 || warm < 0 || loraRank < 0 {
		return AllreduceResult{}, fmt.Errorf("bench allreduce: reps %d, warmup %d, LoRA rank %d out of range", reps, warm, loraRank)
	}
	sizes := GradientSizes(p.Config, loraRank)
	grads := make([][]float64, len(sizes))
	total := 0
	for i, n := range sizes {
		grads[i] = make([]float64, n)
		total += n
	}
	res := AllreduceResult{Kind: "allreduce", Preset: p.Name, LoRARank: loraRank, Ranks: c.Size(), Params: total,
		Tensors: len(sizes), Bytes: int64(total) * 8, Reps: reps}
	want := float64(c.Size() * (c.Size() + 1) / 2)
	for it := range warm + reps {
		for _, g := range grads {
			for j := range g {
				g[j] = float64(c.Rank() + 1)
			}
		}
		start := time.Now()
		if err := dist.AllreduceBuckets(c, grads, dist.DefaultBucketFloats); err != nil {
			return res, err
		}
		elapsed := time.Since(start).Seconds()
		for _, g := range grads {
			if g[0] != want || g[len(g)-1] != want {
				return res, fmt.Errorf("bench allreduce: sum %v, want %v", g[0], want)
			}
		}
		// The slowest rank's time is the step's.
		all, err := c.Allgather([]byte(fmt.Sprint(elapsed)))
		if err != nil {
			return res, err
		}
		var worst float64
		for _, b := range all {
			var s float64
			if _, err := fmt.Sscan(string(b), &s); err != nil {
				return res, fmt.Errorf("bench allreduce: a rank's time %q: %w", b, err)
			}
			worst = max(worst, s)
		}
		if it >= warm {
			res.Seconds = append(res.Seconds, worst)
		}
	}
	res.Median = Median(res.Seconds)
	wire := 2 * float64(c.Size()-1) / float64(c.Size()) * float64(res.Bytes) * 8 // bits per rank
	if c.Size() == 1 {
		wire = 0
	}
	res.LinkSeconds = map[string]float64{"1gbit": wire / 1e9, "10gbit": wire / 1e10, "100gbit": wire / 1e11}
	return res, nil
}
