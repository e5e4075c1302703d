// Package dist is the process group of a data-parallel job: each process's rank, the number of
// processes, and the few collectives alignkit needs (a sum of float slices, a gather of bytes, a
// broadcast). Built with the build tag mpi it binds Open MPI's libmpi through cgo and World is
// MPI_COMM_WORLD of a job started by mpirun; built without it, or started without mpirun, World is a
// single rank and every collective is the identity.
//
// MPI is initialised on the first call to World (only when mpirun started the process) and ended by
// Finalize, which a command calls once before it exits with status 0. Failures:
//
//   - A rank that returns an error exits non-zero without Finalize (which would wait for its peers):
//     mpirun stops the whole job and says "Primary job terminated normally, but 1 process returned
//     a non-zero exit code"; the rank's own error line names it ("alignkit: rank 1: ...").
//   - A rank that dies (killed, out of memory) ends the job: mpirun reaps it and sends the others
//     SIGTERM, then SIGKILL one second later. The ranks exchange their host and pid when World
//     opens, so a survivor on the same machine sees which one is gone (LostPeers) and alignkit
//     prints one line before exiting: "alignkit: rank 1 (pid 4242 on node1) died; the job stops
//     (resume_from_checkpoint: latest continues from the last checkpoint)". mpirun adds "mpirun
//     noticed that process rank 1 with PID ... exited on signal 9 (Killed)." (with PID 0 in Open
//     MPI 4.1, and only after the job has ended). A rank alone on its machine is named by mpirun
//     alone.
//   - A rank that hangs or is cut off leaves its peers blocked inside MPI with nothing to return; each
//     collective has a watchdog (ALIGNKIT_MPI_TIMEOUT, default 30m as transformers' ddp_timeout),
//     past which the waiting rank prints "alignkit: rank 0: MPI_Allreduce waited 30m0s for the other
//     ranks: ..." and aborts the job.
//   - Errors MPI reports come back as Go errors (the communicator's handler is MPI_ERRORS_RETURN, not
//     MPI's default abort).
//
// In every case the job's last checkpoint is complete (rank 0 writes checkpoints atomically) and
// resume_from_checkpoint: latest continues it.
package dist

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// Comm is a process group. Every rank must call the same collectives in the same order with
// matching lengths; a Comm is not safe for concurrent use.
type Comm interface {
	// Rank is this process's index, 0..Size-1. Rank 0 is the one that writes files and logs.
	Rank() int
	// Size is the number of processes.
	Size() int
	// AllreduceFloat32 replaces buf, on every rank, by its element-wise sum over the ranks.
	AllreduceFloat32(buf []float32) error
	// AllreduceFloat64 is AllreduceFloat32 for float64.
	AllreduceFloat64(buf []float64) error
	// Allgather returns every rank's b, indexed by rank (lengths may differ).
	Allgather(b []byte) ([][]byte, error)
	// Bcast returns root's b on every rank (b is ignored on the others).
	Bcast(b []byte, root int) ([]byte, error)
}

// Single is the group of one process: every collective returns its input.
func Single() Comm { return single{} }

type single struct{}

func (single) Rank() int                            { return 0 }
func (single) Size() int                            { return 1 }
func (single) AllreduceFloat32([]float32) error     { return nil }
func (single) AllreduceFloat64([]float64) error     { return nil }
func (single) Allgather(b []byte) ([][]byte, error) { return [][]byte{append([]byte(nil), b...)}, nil }
func (single) Bcast(b []byte, root int) ([]byte, error) {
	if root != 0 {
		return nil, fmt.Errorf("dist: broadcast root %d in a group of 1", root)
	}
	return append([]byte(nil), b...), nil
}

// The world group is process-wide state by nature (MPI_Init may be called once per process), so it
// lives here behind a sync.Once rather than being threaded through every package's API.
var (
	worldOnce sync.Once
	world     Comm
	worldErr  error
)

// World is the job's process group: MPI_COMM_WORLD when alignkit is built with MPI and was started
// by mpirun (or another launcher that sets Open MPI's environment), Single otherwise.
func World() (Comm, error) {
	worldOnce.Do(func() { world, worldErr = openWorld() })
	return world, worldErr
}

// Finalize ends MPI when World started it; it is a no-op otherwise. Call it once, at exit.
func Finalize() error { return finalize() }

// Implementation names the MPI library compiled in ("" without the mpi build tag).
func Implementation() string { return implementation() }

// DefaultBucketFloats is the size of the buffers AllreduceBuckets packs tensors into: 4 Mi float32
// values (16 MiB), near PyTorch DDP's 25 MB default, large enough that per-message latency is
// negligible and small enough that packing stays in cache-sized pieces.
const DefaultBucketFloats = 4 << 20

// AllreduceBuckets sums every slice of ts over the ranks, in place. Small slices are packed into
// buffers of up to bucket values so that a model with hundreds of tensors needs a few messages, not
// hundreds; a slice longer than bucket is reduced in place in pieces of bucket values (MPI counts
// are C ints). The bucket layout depends only on the lengths, so every rank forms the same messages.
func AllreduceBuckets[T float32 | float64](c Comm, ts [][]T, bucket int) error {
	if c.Size() == 1 {
		return nil
	}
	if bucket <= 0 {
		return fmt.Errorf("dist: bucket size %d", bucket)
	}
	buf := make([]T, 0, min(bucket, totalLen(ts)))
	var pending [][]T
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := allreduce(c, buf); err != nil {
			return err
		}
		off := 0
		for _, t := range pending {
			off += copy(t, buf[off:off+len(t)])
		}
		buf, pending = buf[:0], pending[:0]
		return nil
	}
	for _, t := range ts {
		if len(t) > bucket {
			for lo := 0; lo < len(t); lo += bucket {
				if err := allreduce(c, t[lo:min(lo+bucket, len(t))]); err != nil {
					return err
				}
			}
			continue
		}
		if len(buf)+len(t) > bucket {
			if err := flush(); err != nil {
				return err
			}
		}
		buf = append(buf, t...)
		pending = append(pending, t)
	}
	return flush()
}

func totalLen[T any](ts [][]T) int {
	n := 0
	for _, t := range ts {
		n += len(t)
	}
	return n
}

// allreduce is c's AllreduceFloat32 or AllreduceFloat64, by T.
func allreduce[T float32 | float64](c Comm, buf []T) error {
	switch b := any(buf).(type) {
	case []float32:
		return c.AllreduceFloat32(b)
	case []float64:
		return c.AllreduceFloat64(b)
	}
	return fmt.Errorf("dist: allreduce of %T", buf) // not reached: T is float32 or float64
}

// Share returns the indices i in [0, n) that rank takes when n items are dealt round-robin over
// size ranks (i % size == rank): the split the generation stages and the training loop use, which
// keeps each rank's share within one item of the others'.
func Share(n, rank, size int) []int {
	var idx []int
	for i := rank; i < n; i += size {
		idx = append(idx, i)
	}
	return idx
}

// OnLeader runs fn on rank 0 alone and returns its result, or its error, on every rank. The steps
// of a job that read or write its output directory go through it, so that the other ranks neither
// race rank 0 on its files nor wait in a later collective for a rank 0 that has failed: they return
// "rank 0: " and rank 0's error. With one rank it is fn().
func OnLeader(c Comm, fn func() ([]byte, error)) ([]byte, error) {
	if c.Size() == 1 {
		return fn()
	}
	var msg []byte
	var err error
	if c.Rank() == 0 {
		var b []byte
		if b, err = fn(); err != nil {
			msg = append([]byte{'e'}, err.Error()...)
		} else {
			msg = append([]byte{'o'}, b...)
		}
	}
	got, berr := c.Bcast(msg, 0)
	if berr != nil {
		return nil, berr
	}
	if c.Rank() == 0 {
		return msg[1:], err
	}
	if len(got) == 0 {
		return nil, errors.New("dist: empty message from rank 0")
	}
	if got[0] == 'e' {
		return nil, fmt.Errorf("rank 0: %s", got[1:])
	}
	return got[1:], nil
}

// LeaderDo is OnLeader for a step without a result.
func LeaderDo(c Comm, fn func() error) error {
	_, err := OnLeader(c, func() ([]byte, error) { return nil, fn() })
	return err
}

// Peer is one rank's process, as the ranks tell each other when the world group opens.
type Peer struct {
	Rank int
	Host string
	PID  int
}

// LostPeers returns the ranks of the world group that ran on this machine and whose process has
// ended (nil when there is none or the world is one process), and whether this rank is the lowest
// surviving one here, which speaks for them. When a rank dies (killed, out of memory) mpirun reaps it
// and stops the others with SIGTERM, one second before SIGKILL; a survivor that calls LostPeers on
// that signal can say which rank it was, where mpirun's own message may give PID 0. Ranks on other
// machines cannot be checked from here: their host's survivors, if any, name them.
func LostPeers() (lost []Peer, first bool) {
	c, err := World()
	if err != nil {
		return nil, false
	}
	pc, ok := c.(interface{ processes() []Peer })
	if !ok {
		return nil, false
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, false
	}
	first = true
	for _, p := range pc.processes() {
		switch {
		case p.Rank == c.Rank() || p.Host != host:
		case !alive(p.PID):
			lost = append(lost, p)
		case p.Rank < c.Rank():
			first = false
		}
	}
	return lost, first
}

// alive reports whether process pid exists and is not a zombie (a killed rank stays one until its
// parent reaps it).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false
		}
		return syscall.Kill(pid, 0) == nil // no /proc: ask the kernel
	}
	// pid (comm) S ...: the state follows the last ')', since comm may hold one.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		if st := b[i+2]; st == 'Z' || st == 'X' {
			return false
		}
	}
	return true
}
