package dist

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestMain ends MPI after the tests, when the test binary runs under mpirun (make test-mpi).
func TestMain(m *testing.M) {
	code := m.Run()
	if err := Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// checkCollectives runs every collective on c and checks the results against values computed
// from the rank and size alone. Every rank of a group calls it.
func checkCollectives(c Comm) error {
	rank, size := c.Rank(), c.Size()
	// Allreduce: rank r contributes (r+1)·(i+1); the sum is (i+1)·size(size+1)/2, exact in float.
	f32 := make([]float32, 1000)
	f64 := make([]float64, 3)
	for i := range f32 {
		f32[i] = float32((rank + 1) * (i + 1))
	}
	for i := range f64 {
		f64[i] = float64((rank + 1) * (i + 1))
	}
	if err := c.AllreduceFloat32(f32); err != nil {
		return err
	}
	if err := c.AllreduceFloat64(f64); err != nil {
		return err
	}
	tri := size * (size + 1) / 2
	for i, v := range f32 {
		if v != float32((i+1)*tri) {
			return fmt.Errorf("rank %d: AllreduceFloat32[%d] = %v, want %d", rank, i, v, (i+1)*tri)
		}
	}
	for i, v := range f64 {
		if v != float64((i+1)*tri) {
			return fmt.Errorf("rank %d: AllreduceFloat64[%d] = %v, want %d", rank, i, v, (i+1)*tri)
		}
	}
	// Allgather of lengths that differ by rank, rank 0's empty.
	mine := make([]byte, rank)
	for i := range mine {
		mine[i] = byte(rank)
	}
	all, err := c.Allgather(mine)
	if err != nil {
		return err
	}
	if len(all) != size {
		return fmt.Errorf("rank %d: Allgather returned %d parts, want %d", rank, len(all), size)
	}
	for r, p := range all {
		if len(p) != r || slices.ContainsFunc(p, func(b byte) bool { return b != byte(r) }) {
			return fmt.Errorf("rank %d: Allgather part %d is %v", rank, r, p)
		}
	}
	// Bcast from the last rank.
	root := size - 1
	got, err := c.Bcast([]byte(fmt.Sprintf("from %d", rank)), root)
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("from %d", root); string(got) != want {
		return fmt.Errorf("rank %d: Bcast got %q, want %q", rank, got, want)
	}
	if _, err := c.Bcast(nil, size); err == nil {
		return fmt.Errorf("rank %d: Bcast from root %d of %d: no error", rank, size, size)
	}
	// Buckets of 5 values: tensors packed (3, then 1), flushed (3 does not fit after 3), and one
	// longer than a bucket reduced in pieces (12 = 5+5+2).
	ts := [][]float32{make([]float32, 3), make([]float32, 3), make([]float32, 12), make([]float32, 1)}
	for i, t := range ts {
		for j := range t {
			t[j] = float32((rank + 1) * (100*i + j))
		}
	}
	if err := AllreduceBuckets(c, ts, 5); err != nil {
		return err
	}
	for i, t := range ts {
		for j, v := range t {
			if v != float32(tri*(100*i+j)) {
				return fmt.Errorf("rank %d: AllreduceBuckets tensor %d [%d] = %v, want %d", rank, i, j, v, tri*(100*i+j))
			}
		}
	}
	return nil
}

// TestWorld checks the collectives of the process's world: one rank under go test, every rank of
// the job under mpirun (make test-mpi runs this binary with -np 2).
func TestWorld(t *testing.T) {
	c, err := World()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rank %d of %d (%q)", c.Rank(), c.Size(), Implementation())
	if err := checkCollectives(c); err != nil {
		t.Fatal(err)
	}
}

// TestLocal checks the in-process group with 1, 2 and 3 ranks.
func TestLocal(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := Local(n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for r, c := range cs {
				wg.Go(func() { errs[r] = checkCollectives(c) })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestShare(t *testing.T) {
	for _, tc := range []struct {
		n, rank, size int
		want          []int
	}{
		{7, 0, 2, []int{0, 2, 4, 6}},
		{7, 1, 2, []int{1, 3, 5}},
		{2, 2, 3, nil},
		{5, 0, 1, []int{0, 1, 2, 3, 4}},
	} {
		if got := Share(tc.n, tc.rank, tc.size); !slices.Equal(got, tc.want) {
			t.Errorf("Share(%d, %d, %d) = %v, want %v", tc.n, tc.rank, tc.size, got, tc.want)
		}
	}
}

// TestChunks: 7 chunks over 1, 2 and 3 ranks come back in order on every rank, each computed by
// the rank that owns it; a failing chunk stops every rank with its error and rank.
func TestChunks(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := Local(n)
			outs := make([][]string, n)
			errs := make([]error, n)
			failOuts := make([]error, n)
			var wg sync.WaitGroup
			for r, c := range cs {
				wg.Go(func() {
					outs[r], errs[r] = Chunks(c, 7, func(i int) (string, error) { return fmt.Sprintf("%d@%d", i, r), nil })
					_, failOuts[r] = Chunks(c, 7, func(i int) (int, error) {
						if i == 4 || i == 5 {
							return 0, fmt.Errorf("chunk %d broke", i)
						}
						return i, nil
					})
				})
			}
			wg.Wait()
			var want []string
			for i := range 7 {
				want = append(want, fmt.Sprintf("%d@%d", i, i%n))
			}
			for r := range n {
				if errs[r] != nil || !slices.Equal(outs[r], want) {
					t.Errorf("rank %d: %v, %v; want %v", r, outs[r], errs[r], want)
				}
				wantErr := "chunk 4 broke"
				if n > 1 {
					wantErr = fmt.Sprintf("rank %d: chunk 4 broke", 4%n)
				}
				if failOuts[r] == nil || failOuts[r].Error() != wantErr {
					t.Errorf("rank %d: failing chunks gave %v, want %q", r, failOuts[r], wantErr)
				}
			}
		})
	}
}

// TestOnLeader: fn runs on rank 0 alone; its result, or its error prefixed with "rank 0: " on the
// other ranks, reaches every rank.
func TestOnLeader(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := Local(n)
			calls := make([]int, n)
			got := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for r, c := range cs {
				wg.Go(func() {
					b, err := OnLeader(c, func() ([]byte, error) { calls[r]++; return []byte("state"), nil })
					got[r] = string(b)
					if err != nil {
						t.Errorf("rank %d: %v", r, err)
					}
					errs[r] = LeaderDo(c, func() error { calls[r]++; return fmt.Errorf("disk full") })
				})
			}
			wg.Wait()
			for r := range n {
				want, wantErr, wantCalls := "state", "disk full", 0
				if r == 0 {
					wantCalls = 2
				} else {
					wantErr = "rank 0: disk full"
				}
				if got[r] != want || errs[r] == nil || errs[r].Error() != wantErr || calls[r] != wantCalls {
					t.Errorf("rank %d: %q, %v, %d calls; want %q, %q, %d calls", r, got[r], errs[r], calls[r], want, wantErr, wantCalls)
				}
			}
		})
	}
}

// TestAlive: this process is alive; a child that has exited is not, before it is reaped (a
// zombie, as a killed rank is until mpirun reaps it) and after.
func TestAlive(t *testing.T) {
	if !alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(cmd.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatal("a child that exited is still alive 10s later")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", cmd.Process.Pid)); err != nil {
		t.Errorf("the child was reaped before Wait: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if alive(cmd.Process.Pid) {
		t.Error("a reaped child is alive")
	}
}
