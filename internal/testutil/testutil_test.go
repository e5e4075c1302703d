package testutil

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestJSONLAndMetrics: rows written by WriteJSONL are the lines ReadMetrics reads back, in order,
// and the file is exactly one JSON object a line.
func TestJSONLAndMetrics(t *testing.T) {
	p := WriteJSONL(t, "metrics.jsonl", map[string]any{"step": 1, "loss": 2.5}, map[string]any{"step": 2, "loss": 1.25})
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\"loss\":2.5,\"step\":1}\n{\"loss\":1.25,\"step\":2}\n"; string(raw) != want {
		t.Errorf("file:\n%s\nwant:\n%s", raw, want)
	}
	got := ReadMetrics(t, filepath.Dir(p))
	want := []map[string]float64{{"step": 1, "loss": 2.5}, {"step": 2, "loss": 1.25}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadMetrics = %v, want %v", got, want)
	}
}

// FiniteMetrics names the first line with a missing, NaN or infinite key.
func TestFiniteMetrics(t *testing.T) {
	ok := map[string]float64{"loss": 1, "kl": 0}
	for _, c := range []struct {
		ms   []map[string]float64
		want string
	}{
		{[]map[string]float64{ok, ok}, ""},
		{[]map[string]float64{ok, {"loss": 1}}, "metrics line 2: kl = 0 (present false)"},
		{[]map[string]float64{{"loss": math.NaN(), "kl": 0}}, "metrics line 1: loss = NaN (present true)"},
		{[]map[string]float64{ok, ok, {"loss": 1, "kl": math.Inf(-1)}}, "metrics line 3: kl = -Inf (present true)"},
	} {
		err := FiniteMetrics(c.ms, "loss", "kl")
		if got := fmt.Sprint(err); c.want == "" && err != nil || c.want != "" && got != c.want {
			t.Errorf("FiniteMetrics(%v) = %v, want %q", c.ms, err, c.want)
		}
	}
}

// TestStories opens the real model: 5 layers and a 512-token vocabulary (../shared/README.md).
func TestStories(t *testing.T) {
	ck := Stories(t)
	if c := ck.Weights.Config; c.NumHiddenLayers != 5 || c.VocabSize != 512 {
		t.Errorf("stories260K: %d layers, vocab %d; want 5, 512", c.NumHiddenLayers, c.VocabSize)
	}
}
