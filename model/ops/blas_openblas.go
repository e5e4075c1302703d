//go:build openblas

package ops

/*
#cgo LDFLAGS: -lopenblas
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
*/
import "C"

import "sync"

// With OpenBLAS the ops hold SerialBLAS while they compute, so every OpenBLAS call runs on its
// caller's thread and the ops spread work over the cores themselves. Left to its own thread pool,
// OpenBLAS (a) makes concurrent callers wait on each other in spin loops (measured 4× slower than
// serial calls) and (b) keeps its pool threads spinning for a while after each call, competing with
// the ops' Go loops for the same cores: a training step then burned about a third more CPU.
const (
	tileM, tileN = 1 << 30, 1 << 30 // serial calls: no need to cut them
	tileMNK      = 0
)

// splitMatmul: whole products are cut into a few large chunks, one serial OpenBLAS call each.
const splitMatmul = true

// serialState counts SerialBLAS holders. OpenBLAS's thread count is process-wide state of the C
// library, so the count is too.
var serialState struct {
	sync.Mutex
	holders, saved int
}

// SerialBLAS sets OpenBLAS to one thread (each call runs on its caller's thread) until the last
// holder calls release, which restores the previous count. Holds nest and may overlap between
// goroutines. While held, other OpenBLAS users in the process (the inference engine, say) also run
// single-threaded.
func SerialBLAS() (release func()) {
	serialState.Lock()
	if serialState.holders == 0 {
		serialState.saved = int(C.openblas_get_num_threads())
		if serialState.saved != 1 {
			C.openblas_set_num_threads(1)
		}
	}
	serialState.holders++
	serialState.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			serialState.Lock()
			serialState.holders--
			if serialState.holders == 0 && serialState.saved != 1 {
				C.openblas_set_num_threads(C.int(serialState.saved))
			}
			serialState.Unlock()
		})
	}
}

// blasThreads is OpenBLAS's current thread count (for tests).
func blasThreads() int { return int(C.openblas_get_num_threads()) }
