package train

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// AdamWConfig holds torch.optim.AdamW's hyper-parameters (the learning rate is passed to each Step).
type AdamWConfig struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64
	// Workers is the number of goroutines for the element-wise update; 0 means GOMAXPROCS. The result
	// does not depend on it.
	Workers int
}

// AdamW is torch.optim.AdamW (amsgrad=False, maximize=False) on float32 tensors, following the
// single-tensor implementation operation by operation, with the Python-side scalars computed in
// float64 and rounded to float32 where torch hands them to a float32 kernel:
//
//	p  *= 1 - lr*wd                                  (decoupled decay; skipped for NoDecay params)
//	m   = lerp(m, g, 1-beta1)                        (m + w*(g-m), or g - (g-m)*(1-w) when w >= 0.5)
//	v   = v*beta2 + (1-beta2)*g*g
//	p  += -(lr / (1-beta1^t)) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
//
// The update runs in parallel over fixed chunks of every tensor; each element is computed by the same
// float32 operations whatever the number of workers, so results are reproducible bit for bit.
type AdamW struct {
	cfg     AdamWConfig
	step    int64
	m, v    [][]float32
	noDecay []bool
	names   []string
	chunks  []chunk
}

// chunk is a contiguous range of one tensor, the unit of parallel work.
type chunk struct{ t, lo, hi int }

// chunkSize bounds the work of one parallel task; a power of two near L2 size for three float32 arrays.
const chunkSize = 1 << 15

func makeChunks(sizes []int) []chunk {
	var cs []chunk
	for t, n := range sizes {
		for lo := 0; lo < n; lo += chunkSize {
			cs = append(cs, chunk{t, lo, min(n, lo+chunkSize)})
		}
	}
	return cs
}

// parallel runs fn(i) for i in [0, n) on up to workers goroutines.
func parallel(workers, n int, fn func(i int)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// NewAdamW allocates zeroed moment buffers for params.
func NewAdamW(params []Param, cfg AdamWConfig) *AdamW {
	o := &AdamW{cfg: cfg}
	sizes := make([]int, len(params))
	for i, p := range params {
		sizes[i] = len(p.Value)
		o.m = append(o.m, make([]float32, len(p.Value)))
		o.v = append(o.v, make([]float32, len(p.Value)))
		o.noDecay = append(o.noDecay, p.NoDecay)
		o.names = append(o.names, p.Name)
	}
	o.chunks = makeChunks(sizes)
	return o
}

// StepCount is the number of updates applied (torch's state["step"]).
func (o *AdamW) StepCount() int64 { return o.step }

// Moments returns the first and second moment buffers (aliased, one per param).
func (o *AdamW) Moments() (m, v [][]float32) { return o.m, o.v }

// SetState restores a saved step count and moments, checking that they fit the params.
func (o *AdamW) SetState(step int64, m, v [][]float32) error {
	if step < 0 {
		return fmt.Errorf("adamw state: negative step %d", step)
	}
	if len(m) != len(o.m) || len(v) != len(o.v) {
		return fmt.Errorf("adamw state: %d/%d moment tensors for %d params", len(m), len(v), len(o.m))
	}
	for i := range o.m {
		if len(m[i]) != len(o.m[i]) || len(v[i]) != len(o.v[i]) {
			return fmt.Errorf("adamw state: %s has %d/%d moment values, param has %d", o.names[i], len(m[i]), len(v[i]), len(o.m[i]))
		}
	}
	for i := range o.m {
		copy(o.m[i], m[i])
		copy(o.v[i], v[i])
	}
	o.step = step
	return nil
}

// Step applies one AdamW update with learning rate lr to params using grads (same order and sizes as the
// params given to NewAdamW).
func (o *AdamW) Step(params []Param, grads [][]float32, lr float64) error {
	if len(params) != len(o.m) || len(grads) != len(o.m) {
		return fmt.Errorf("adamw step: %d params and %d grads, optimizer has %d", len(params), len(grads), len(o.m))
	}
	for i, p := range params {
		if len(p.Value) != len(o.m[i]) || len(grads[i]) != len(o.m[i]) {
			return fmt.Errorf("adamw step: %s has %d values and %d grads, optimizer has %d", p.Name, len(p.Value), len(grads[i]), len(o.m[i]))
		}
	}
	o.step++
	t := float64(o.step)
	c := o.cfg
	decay := float32(1 - lr*c.WeightDecay)
	w := float32(1 - c.Beta1) // lerp weight, as torch passes it to the float32 kernel
	oneMinusW := 1 - w
	b2 := float32(c.Beta2)
	omb2 := float32(1 - c.Beta2)
	negStep := float32(-(lr / (1 - math.Pow(c.Beta1, t))))
	bc2Sqrt := float32(math.Sqrt(1 - math.Pow(c.Beta2, t)))
	eps := float32(c.Eps)

	parallel(c.Workers, len(o.chunks), func(ci int) {
		ch := o.chunks[ci]
		p := params[ch.t].Value[ch.lo:ch.hi]
		g := grads[ch.t][ch.lo:ch.hi]
		m := o.m[ch.t][ch.lo:ch.hi]
		v := o.v[ch.t][ch.lo:ch.hi]
		doDecay := c.WeightDecay != 0 && !o.noDecay[ch.t]
		// Explicit float32 conversions keep the compiler from fusing into FMAs, so every element is
		// rounded after each operation as torch's non-fused kernels do.
		for i := range p {
			pi := p[i]
			if doDecay {
				pi = float32(pi * decay)
			}
			gi, mi := g[i], m[i]
			if w < 0.5 {
				mi = mi + float32(w*float32(gi-mi))
			} else {
				mi = gi - float32(float32(gi-mi)*oneMinusW)
			}
			vi := float32(v[i]*b2) + float32(float32(omb2*gi)*gi)
			denom := float32(float32(math.Sqrt(float64(vi)))/bc2Sqrt) + eps
			p[i] = pi + float32(negStep*float32(mi/denom))
			m[i], v[i] = mi, vi
		}
	})
	return nil
}

// ClipGradNorm is torch.nn.utils.clip_grad_norm_(norm_type=2): it returns the global L2 norm of all
// grads (before clipping) and, when maxNorm > 0 and the norm exceeds it, scales every gradient by
// maxNorm / (norm + 1e-6). The norm is accumulated in float64 per fixed chunk and the chunk sums are
// added in order, so it does not depend on the number of workers. A non-finite norm leaves the grads
// untouched (the caller stops the run).
func ClipGradNorm(grads [][]float32, maxNorm float64, workers int) float64 {
	sizes := make([]int, len(grads))
	for i, g := range grads {
		sizes[i] = len(g)
	}
	chunks := makeChunks(sizes)
	partial := make([]float64, len(chunks))
	parallel(workers, len(chunks), func(ci int) {
		ch := chunks[ci]
		var s float64
		for _, x := range grads[ch.t][ch.lo:ch.hi] {
			s += float64(x) * float64(x)
		}
		partial[ci] = s
	})
	var sum float64
	for _, s := range partial {
		sum += s
	}
	norm := math.Sqrt(sum)
	if maxNorm <= 0 || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm // torch clamps the coefficient to 1.0; multiplying by 1 changes nothing
	}
	c := float32(coef)
	parallel(workers, len(chunks), func(ci int) {
		ch := chunks[ci]
		g := grads[ch.t][ch.lo:ch.hi]
		for i := range g {
			g[i] *= c
		}
	})
	return norm
}
