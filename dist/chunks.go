package dist

import (
	"bytes"
	"encoding/gob"
	"fmt"
)

// chunkResult is one chunk's outcome as it travels between ranks.
type chunkResult[T any] struct {
	Index int
	Value T
	Err   string
}

// Chunks runs fn on this rank's share of the chunks 0..n-1 (chunk i on rank i mod size, in order)
// and returns every chunk's value, in chunk order, on every rank. Values travel gob-encoded, so T
// must be gob-encodable. A failure stops the rank's share; every rank then returns the error of the
// lowest failed chunk, naming the rank that ran it, so no rank waits for a peer that has given up.
// With one rank it is a plain loop and the error is fn's, unwrapped.
func Chunks[T any](c Comm, n int, fn func(i int) (T, error)) ([]T, error) {
	out := make([]T, n)
	if c.Size() == 1 {
		for i := range n {
			v, err := fn(i)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	var mine []chunkResult[T]
	for _, i := range Share(n, c.Rank(), c.Size()) {
		v, err := fn(i)
		if err != nil {
			mine = append(mine, chunkResult[T]{Index: i, Err: err.Error()})
			break
		}
		mine = append(mine, chunkResult[T]{Index: i, Value: v})
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(mine); err != nil {
		return nil, fmt.Errorf("dist: encoding rank %d's results: %w", c.Rank(), err)
	}
	parts, err := c.Allgather(buf.Bytes())
	if err != nil {
		return nil, err
	}
	failed, failedRank, why := n, 0, ""
	seen := make([]bool, n)
	for rank, p := range parts {
		var rs []chunkResult[T]
		if err := gob.NewDecoder(bytes.NewReader(p)).Decode(&rs); err != nil {
			return nil, fmt.Errorf("dist: results of rank %d: %w", rank, err)
		}
		for _, r := range rs {
			if r.Index < 0 || r.Index >= n || r.Index%c.Size() != rank {
				return nil, fmt.Errorf("dist: rank %d sent chunk %d of %d", rank, r.Index, n)
			}
			if r.Err != "" {
				if r.Index < failed {
					failed, failedRank, why = r.Index, rank, r.Err
				}
				continue
			}
			out[r.Index], seen[r.Index] = r.Value, true
		}
	}
	if failed < n {
		return nil, fmt.Errorf("rank %d: %s", failedRank, why)
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("dist: no rank returned chunk %d of %d", i, n)
		}
	}
	return out, nil
}
