// Package testutil holds the fixtures that the tests of several packages share: the real
// stories260K model from ../shared, metrics.jsonl reading and JSONL writing. Only tests import it.
package testutil

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/checkpoint"
)

// StoriesDir is ../shared/models/stories260K; the test is skipped when it is absent.
func StoriesDir(t testing.TB) string {
	t.Helper()
	return sharedtest.Path(t, "models", "stories260K")
}

// Stories opens stories260K afresh (it is small), so a test may train it in place.
func Stories(t testing.TB) *checkpoint.Model {
	t.Helper()
	ck, err := checkpoint.Open(StoriesDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// ReadMetrics reads dir/metrics.jsonl, one map per logged line.
func ReadMetrics(t testing.TB, dir string) []map[string]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics.jsonl: %v", err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// FiniteMetrics says which logged line first lacks one of keys or holds NaN or ±Inf in it (nil when
// none does); lines count from 1, as steps do when every step is logged.
func FiniteMetrics(ms []map[string]float64, keys ...string) error {
	for i, m := range ms {
		for _, k := range keys {
			if v, ok := m[k]; !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("metrics line %d: %s = %v (present %v)", i+1, k, v, ok)
			}
		}
	}
	return nil
}

// WriteJSONL writes rows, one JSON object a line, to a file name in a fresh temporary directory and
// returns its path.
func WriteJSONL(t testing.TB, name string, rows ...map[string]any) string {
	t.Helper()
	var b []byte
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b = append(append(b, line...), '\n')
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
