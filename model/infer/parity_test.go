package infer

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

type refCase struct {
	Name      string  `json:"name"`
	IDs       []int32 `json:"inputIds_sentencepiece"`
	Positions []struct {
		Position int          `json:"position"`
		Top5     [][2]float64 `json:"top5_llamacpp"`
	} `json:"positions"`
	LastLogSoftmax []float64 `json:"lastPosition_logSoftmax_torch_f64"`
	Greedy         []int32   `json:"greedy_llamacpp"`
}

func loadReference(t *testing.T) []refCase {
	t.Helper()
	path := filepath.Join(sharedtest.Dir(t), "reference", "stories260K_llamacpp.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("reference absent: %v", err)
	}
	var ref struct {
		Cases []refCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(ref.Cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return ref.Cases
}

// TestParityStories260K compares the real pretrained model against llama.cpp and a float64 PyTorch
// forward pass: the full last-position log-softmax, the top-5 at every position, and the greedy
// continuation.
func TestParityStories260K(t *testing.T) {
	e := loadStories(t)
	for _, c := range loadReference(t) {
		t.Run(c.Name, func(t *testing.T) {
			logits, err := e.Forward(c.IDs, nil)
			if err != nil {
				t.Fatal(err)
			}
			last := LogSoftmax(logits[len(logits)-1])
			if len(last) != len(c.LastLogSoftmax) {
				t.Fatalf("vocab %d, reference %d", len(last), len(c.LastLogSoftmax))
			}
			var worst float64
			for i, want := range c.LastLogSoftmax {
				worst = math.Max(worst, math.Abs(last[i]-want))
			}
			if worst > 1e-4 {
				t.Errorf("last-position log-softmax differs from torch float64 by %.3g (> 1e-4)", worst)
			}
			t.Logf("last-position max |Δ log p| vs torch f64: %.3g", worst)
			if len(c.Positions) != len(c.IDs) {
				t.Fatalf("%d reference positions for %d tokens", len(c.Positions), len(c.IDs))
			}
			for _, p := range c.Positions {
				lp := LogSoftmax(logits[p.Position])
				got := topIDs(lp, 5)
				for r, want := range p.Top5 {
					if got[r] != int(want[0]) {
						t.Errorf("position %d rank %d: id %d, llama.cpp %d", p.Position, r, got[r], int(want[0]))
						continue
					}
					if d := math.Abs(lp[got[r]] - want[1]); d > 1e-4 {
						t.Errorf("position %d id %d: log p %.8f, llama.cpp %.8f", p.Position, got[r], lp[got[r]], want[1])
					}
				}
			}
			gen, err := e.Generate(context.Background(), [][]int32{c.IDs}, Sampling{MaxNewTokens: len(c.Greedy)})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gen[0], c.Greedy) {
				t.Errorf("greedy continuation\n got %v\nwant %v", gen[0], c.Greedy)
			}
		})
	}
}
