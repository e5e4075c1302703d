package dist

import (
	"fmt"
	"sync"
)

// Local returns an in-process group of n ranks, one Comm per rank, each to be used by its own
// goroutine: the same collectives as MPI's over shared memory. It runs data-parallel code paths
// without mpirun (the training loop's tests use it). Sums are taken in rank order, so every rank
// gets bit-identical results.
func Local(n int) []Comm {
	h := &hub{n: n, vals: make([]any, n)}
	h.cond = sync.NewCond(&h.mu)
	cs := make([]Comm, n)
	for r := range cs {
		cs[r] = &localComm{h: h, rank: r}
	}
	return cs
}

// hub is the meeting point of a Local group: each collective is one round in which every rank
// deposits a value and, once all have, reads all of them.
type hub struct {
	mu       sync.Mutex
	cond     *sync.Cond
	n        int
	vals     []any
	arrived  int
	gen      int
	result   []any
	left     int
	draining bool
}

func (h *hub) exchange(rank int, v any) []any {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.draining {
		h.cond.Wait()
	}
	h.vals[rank] = v
	h.arrived++
	gen := h.gen
	if h.arrived == h.n {
		h.result, h.vals = h.vals, make([]any, h.n)
		h.gen++
		h.draining, h.left = true, h.n
		h.cond.Broadcast()
	} else {
		for h.gen == gen {
			h.cond.Wait()
		}
	}
	res := h.result
	h.left--
	if h.left == 0 {
		h.draining, h.arrived = false, 0
		h.cond.Broadcast()
	}
	return res
}

type localComm struct {
	h    *hub
	rank int
}

func (c *localComm) Rank() int { return c.rank }
func (c *localComm) Size() int { return c.h.n }

func (c *localComm) AllreduceFloat32(buf []float32) error {
	all := c.h.exchange(c.rank, append([]float32(nil), buf...))
	clear(buf)
	for r, v := range all {
		x := v.([]float32)
		if len(x) != len(buf) {
			return fmt.Errorf("dist: allreduce of %d values, rank %d sent %d", len(buf), r, len(x))
		}
		for i := range buf {
			buf[i] += x[i]
		}
	}
	return nil
}

func (c *localComm) AllreduceFloat64(buf []float64) error {
	all := c.h.exchange(c.rank, append([]float64(nil), buf...))
	clear(buf)
	for r, v := range all {
		x := v.([]float64)
		if len(x) != len(buf) {
			return fmt.Errorf("dist: allreduce of %d values, rank %d sent %d", len(buf), r, len(x))
		}
		for i := range buf {
			buf[i] += x[i]
		}
	}
	return nil
}

func (c *localComm) Allgather(b []byte) ([][]byte, error) {
	all := c.h.exchange(c.rank, append([]byte(nil), b...))
	out := make([][]byte, len(all))
	for r, v := range all {
		out[r] = append([]byte(nil), v.([]byte)...)
	}
	return out, nil
}

func (c *localComm) Bcast(b []byte, root int) ([]byte, error) {
	if root < 0 || root >= c.h.n {
		return nil, fmt.Errorf("dist: broadcast root %d in a group of %d", root, c.h.n)
	}
	all := c.h.exchange(c.rank, append([]byte(nil), b...))
	return append([]byte(nil), all[root].([]byte)...), nil
}
