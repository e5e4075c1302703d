package infer

import (
	"sync"
	"sync/atomic"
)

// minParallelWork is the estimated number of floating-point operations below which fanning out to
// goroutines costs more than it saves (a goroutine start and a WaitGroup are a few microseconds).
const minParallelWork = 1 << 16

// fanOut runs fn(task, worker) for task in [0, tasks) on up to e.workers goroutines, handing out tasks
// one at a time so that uneven tasks (causal attention rows) balance. worker is in [0, e.workers) and
// indexes per-worker scratch. work is the estimated total cost; small jobs run inline.
func (e *Engine) fanOut(tasks, work int, fn func(task, worker int)) {
	nw := min(e.workers, tasks)
	if nw <= 1 || work < minParallelWork {
		for t := 0; t < tasks; t++ {
			fn(t, 0)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	loop := func(w int) {
		for {
			t := int(next.Add(1) - 1)
			if t >= tasks {
				return
			}
			fn(t, w)
		}
	}
	wg.Add(nw - 1)
	for w := 1; w < nw; w++ {
		go func(w int) {
			defer wg.Done()
			loop(w)
		}(w)
	}
	loop(0)
	wg.Wait()
}

// fanRows splits rows [0, n) into contiguous blocks, one per worker, when the job is big enough.
// costPerRow is the estimated work of one row.
func (e *Engine) fanRows(n, costPerRow int, fn func(lo, hi int)) {
	nw := min(e.workers, n)
	if nw <= 1 || n*costPerRow < minParallelWork {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(nw - 1)
	for w := 1; w < nw; w++ {
		lo, hi := w*n/nw, (w+1)*n/nw
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(0, n/nw)
	wg.Wait()
}
