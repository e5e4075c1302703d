//go:build mpi

package dist

/*
#cgo pkg-config: ompi
#include <mpi.h>
#include <stdlib.h>

// Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, ...) are addresses of C globals that cgo cannot
// name from Go, so every call goes through a small wrapper.
static int ak_init(int *provided) {
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static int ak_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int ak_size(int *n) { return MPI_Comm_size(MPI_COMM_WORLD, n); }
static int ak_allreduce_f32(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int ak_allreduce_f64(double *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static int ak_allgather_int(int v, int *out) {
	return MPI_Allgather(&v, 1, MPI_INT, out, 1, MPI_INT, MPI_COMM_WORLD);
}
static int ak_allgatherv(void *send, int n, void *recv, int *counts, int *displs) {
	return MPI_Allgatherv(send, n, MPI_BYTE, recv, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
}
static int ak_bcast(void *buf, int n, int root) { return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD); }
static int ak_bcast_int(int *v, int root) { return MPI_Bcast(v, 1, MPI_INT, root, MPI_COMM_WORLD); }
static int ak_finalize(void) { return MPI_Finalize(); }
static int ak_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static void ak_error_string(int rc, char *buf) {
	int len = 0;
	MPI_Error_string(rc, buf, &len);
	buf[len] = 0;
}
static void ak_version(char *buf) {
	int len = 0;
	MPI_Get_library_version(buf, &len);
	buf[len] = 0;
}
static int ak_max_string(void) { return MPI_MAX_ERROR_STRING > MPI_MAX_LIBRARY_VERSION_STRING ? MPI_MAX_ERROR_STRING : MPI_MAX_LIBRARY_VERSION_STRING; }
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// launched reports whether mpirun (Open MPI's launcher, or PMIx's) started this process. Without
// it MPI_Init would start a singleton runtime, slow and pointless for a group of one.
func launched() bool {
	return os.Getenv("OMPI_COMM_WORLD_SIZE") != "" || os.Getenv("PMIX_RANK") != ""
}

var (
	initMu      sync.Mutex
	initialised bool
	finalised   bool
)

func openWorld() (Comm, error) {
	if !launched() {
		return Single(), nil
	}
	initMu.Lock()
	defer initMu.Unlock()
	var provided C.int
	if rc := C.ak_init(&provided); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Init_thread", rc)
	}
	initialised = true
	// Calls come from one goroutine at a time (Comm is not for concurrent use) but Go may move that
	// goroutine between OS threads, which MPI_THREAD_SERIALIZED allows and FUNNELED does not.
	if provided < C.MPI_THREAD_SERIALIZED {
		return nil, fmt.Errorf("dist: the MPI library provides thread level %d, alignkit needs MPI_THREAD_SERIALIZED", int(provided))
	}
	var r, n C.int
	if rc := C.ak_rank(&r); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Comm_rank", rc)
	}
	if rc := C.ak_size(&n); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Comm_size", rc)
	}
	timeout, err := collectiveTimeout()
	if err != nil {
		return nil, err
	}
	c := &mpiComm{rank: int(r), size: int(n), timeout: timeout}
	if c.peers, err = exchangePeers(c); err != nil {
		return nil, err
	}
	return c, nil
}

// exchangePeers tells every rank each rank's host and process id, so that a survivor can name a
// rank that died (LostPeers).
func exchangePeers(c *mpiComm) ([]Peer, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("dist: %w", err)
	}
	all, err := c.Allgather([]byte(fmt.Sprintf("%d %s", os.Getpid(), host)))
	if err != nil {
		return nil, err
	}
	peers := make([]Peer, len(all))
	for r, b := range all {
		pid, h, ok := strings.Cut(string(b), " ")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil {
			return nil, fmt.Errorf("dist: rank %d sent %q for its process", r, b)
		}
		peers[r] = Peer{Rank: r, Host: h, PID: n}
	}
	return peers, nil
}

// DefaultTimeout is how long a collective waits for the other ranks before this rank gives up on
// them: transformers' ddp_timeout default (1800 s). It bounds a rank's wait for a peer's whole
// step, checkpoint or evaluation, so it must be generous; TimeoutEnv changes it.
const DefaultTimeout = 30 * time.Minute

// TimeoutEnv names the environment variable that sets the collective timeout (a Go duration such as
// "90s"; "0" waits forever). mpirun passes it to every rank with -x.
const TimeoutEnv = "ALIGNKIT_MPI_TIMEOUT"

func collectiveTimeout() (time.Duration, error) {
	v, ok := os.LookupEnv(TimeoutEnv)
	if !ok {
		return DefaultTimeout, nil
	}
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("dist: %s=%q: want a positive duration such as 90s (or 0 for no timeout)", TimeoutEnv, v)
	}
	return d, nil
}

func finalize() error {
	initMu.Lock()
	defer initMu.Unlock()
	if !initialised || finalised {
		return nil
	}
	finalised = true
	if rc := C.ak_finalize(); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Finalize", rc)
	}
	return nil
}

func implementation() string {
	buf := (*C.char)(C.malloc(C.size_t(C.ak_max_string()) + 1))
	defer C.free(unsafe.Pointer(buf))
	C.ak_version(buf)
	v := C.GoString(buf)
	if i := strings.IndexAny(v, ",\n"); i >= 0 {
		v = v[:i] // "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"
	}
	return strings.TrimSpace(v)
}

func mpiError(op string, rc C.int) error {
	buf := (*C.char)(C.malloc(C.size_t(C.ak_max_string()) + 1))
	defer C.free(unsafe.Pointer(buf))
	C.ak_error_string(rc, buf)
	return fmt.Errorf("dist: %s: %s (MPI error %d)", op, C.GoString(buf), int(rc))
}

type mpiComm struct {
	rank, size int
	timeout    time.Duration
	peers      []Peer
}

func (c *mpiComm) processes() []Peer { return c.peers }

// watch arms the watchdog of one collective: a rank that has stopped responding (hung, stopped, cut
// off) leaves its peers blocked inside MPI with no error to return, so past the timeout this rank
// says what it was waiting for and aborts the job, which mpirun then stops. The returned function
// disarms it.
func (c *mpiComm) watch(op string) func() {
	if c.timeout <= 0 {
		return func() {}
	}
	t := time.AfterFunc(c.timeout, func() {
		// fd 2 itself: a command may have pointed os.Stderr of a rank other than 0 elsewhere.
		fmt.Fprintf(os.NewFile(2, "stderr"), "alignkit: rank %d: %s waited %s for the other ranks: one of them has stopped responding (%s sets the limit); aborting the job\n",
			c.rank, op, c.timeout, TimeoutEnv)
		C.ak_abort(1)
		os.Exit(1)
	})
	return func() { t.Stop() }
}

func (c *mpiComm) Rank() int { return c.rank }
func (c *mpiComm) Size() int { return c.size }

// errTooLarge guards the C int counts of MPI's calls.
var errTooLarge = errors.New("dist: a message of 2^31 or more elements (split it)")

func (c *mpiComm) AllreduceFloat32(buf []float32) error {
	if len(buf) == 0 {
		return nil
	}
	if len(buf) > math.MaxInt32 {
		return errTooLarge
	}
	done := c.watch("MPI_Allreduce")
	rc := C.ak_allreduce_f32((*C.float)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	done()
	if rc != C.MPI_SUCCESS {
		return mpiError("MPI_Allreduce", rc)
	}
	return nil
}

func (c *mpiComm) AllreduceFloat64(buf []float64) error {
	if len(buf) == 0 {
		return nil
	}
	if len(buf) > math.MaxInt32 {
		return errTooLarge
	}
	done := c.watch("MPI_Allreduce")
	rc := C.ak_allreduce_f64((*C.double)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	done()
	if rc != C.MPI_SUCCESS {
		return mpiError("MPI_Allreduce", rc)
	}
	return nil
}

func (c *mpiComm) Allgather(b []byte) ([][]byte, error) {
	if len(b) > math.MaxInt32 {
		return nil, errTooLarge
	}
	counts := make([]C.int, c.size)
	done := c.watch("MPI_Allgather")
	rc := C.ak_allgather_int(C.int(len(b)), &counts[0])
	done()
	if rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Allgather", rc)
	}
	displs := make([]C.int, c.size)
	total := 0
	for i, n := range counts {
		displs[i] = C.int(total)
		total += int(n)
		if total > math.MaxInt32 {
			return nil, errTooLarge
		}
	}
	// C memory: the receive buffer must not move while MPI writes it, and one byte keeps a zero
	// total a valid pointer.
	recv := C.malloc(C.size_t(total) + 1)
	defer C.free(recv)
	send := C.malloc(C.size_t(len(b)) + 1)
	defer C.free(send)
	copy(unsafe.Slice((*byte)(send), len(b)), b)
	done = c.watch("MPI_Allgatherv")
	rc = C.ak_allgatherv(send, C.int(len(b)), recv, &counts[0], &displs[0])
	done()
	if rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Allgatherv", rc)
	}
	all := unsafe.Slice((*byte)(recv), total)
	out := make([][]byte, c.size)
	for i := range out {
		lo := int(displs[i])
		out[i] = append([]byte(nil), all[lo:lo+int(counts[i])]...)
	}
	return out, nil
}

func (c *mpiComm) Bcast(b []byte, root int) ([]byte, error) {
	if root < 0 || root >= c.size {
		return nil, fmt.Errorf("dist: broadcast root %d in a group of %d", root, c.size)
	}
	if len(b) > math.MaxInt32 {
		return nil, errTooLarge
	}
	n := C.int(len(b))
	done := c.watch("MPI_Bcast")
	rc := C.ak_bcast_int(&n, C.int(root))
	done()
	if rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Bcast", rc)
	}
	buf := C.malloc(C.size_t(n) + 1)
	defer C.free(buf)
	if c.rank == root {
		copy(unsafe.Slice((*byte)(buf), int(n)), b)
	}
	done = c.watch("MPI_Bcast")
	rc = C.ak_bcast(buf, n, C.int(root))
	done()
	if rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Bcast", rc)
	}
	return C.GoBytes(buf, n), nil
}
