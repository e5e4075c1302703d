package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// graphSharedDir finds ../shared next to the repository root (the directory holding go.mod), or
// skips the test.
func graphSharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the test directory, so no ../shared")
		}
		dir = parent
	}
	shared := filepath.Join(dir, "..", "shared")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("reference files are absent (%s): %v", shared, err)
	}
	return shared
}

// readF32Safetensors is a minimal reader for a single-file, all-F32 safetensors checkpoint: an
// 8-byte little-endian header length, a JSON header of {name: {dtype, shape, data_offsets}}, then
// the data.
func readF32Safetensors(path string) (map[string]*Tensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 8 {
		return nil, fmt.Errorf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	if n > uint64(len(raw)-8) {
		return nil, fmt.Errorf("%s: header length %d exceeds the file", path, n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		return nil, fmt.Errorf("%s: header: %v", path, err)
	}
	data := raw[8+n:]
	out := map[string]*Tensor{}
	for name, msg := range header {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Dtype   string  `json:"dtype"`
			Shape   []int   `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &info); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %v", path, name, err)
		}
		if info.Dtype != "F32" || len(info.Offsets) != 2 || info.Offsets[1] > int64(len(data)) {
			return nil, fmt.Errorf("%s: tensor %s: dtype %s offsets %v not supported by this test reader", path, name, info.Dtype, info.Offsets)
		}
		t := NewTensor(info.Shape...)
		b := data[info.Offsets[0]:info.Offsets[1]]
		if len(b) != 4*len(t.Data) {
			return nil, fmt.Errorf("%s: tensor %s: %d bytes for shape %v", path, name, len(b), info.Shape)
		}
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		out[name] = t
	}
	return out, nil
}

func loadStories260K(t *testing.T) *Weights {
	t.Helper()
	dir := filepath.Join(graphSharedDir(t), "models", "stories260K")
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	tensors, err := readF32Safetensors(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	w := &Weights{Config: cfg, Tensors: tensors}
	if err := w.Check("stories260K"); err != nil {
		t.Fatal(err)
	}
	return w
}

type referenceCase struct {
	Name      string  `json:"name"`
	InputIDs  []int32 `json:"inputIds_sentencepiece"`
	Positions []struct {
		Position int          `json:"position"`
		Top5     [][2]float64 `json:"top5_llamacpp"`
		Top5T    [][2]float64 `json:"top5_torch_f64"`
	} `json:"positions"`
	LastLogSoftmax []float64 `json:"lastPosition_logSoftmax_torch_f64"`
	LastLogits     []float64 `json:"lastPosition_logits_torch_f64"`
}

func logSoftmax(x []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - m - math.Log(s)
	}
	return out
}

// The float32 graph reproduces llama.cpp's and PyTorch's (float64) next-token log-probabilities on
// the real stories260K checkpoint: the top-5 entries at every position and the whole last-position
// distribution, within 1e-4.
func TestGraphParityStories260K(t *testing.T) {
	w := loadStories260K(t)
	raw, err := os.ReadFile(filepath.Join(graphSharedDir(t), "reference", "stories260K_llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases []referenceCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) == 0 {
		t.Fatal("no reference cases")
	}
	for _, c := range ref.Cases {
		t.Run(c.Name, func(t *testing.T) {
			logits, err := Forward(w, c.InputIDs)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Positions) != len(c.InputIDs) {
				t.Fatalf("%d reference positions for %d tokens", len(c.Positions), len(c.InputIDs))
			}
			worst := 0.0
			for _, p := range c.Positions {
				ls := logSoftmax(logits[p.Position])
				for _, top := range append(p.Top5, p.Top5T...) {
					d := math.Abs(ls[int(top[0])] - top[1])
					worst = math.Max(worst, d)
					if d > 1e-4 {
						t.Errorf("position %d token %d: log-prob %.7f, reference %.7f", p.Position, int(top[0]), ls[int(top[0])], top[1])
					}
				}
			}
			last := logSoftmax(logits[len(logits)-1])
			if len(c.LastLogSoftmax) != len(last) {
				t.Fatalf("reference last position has %d values, vocab %d", len(c.LastLogSoftmax), len(last))
			}
			for i, want := range c.LastLogSoftmax {
				d := math.Abs(last[i] - want)
				worst = math.Max(worst, d)
				if d > 1e-4 {
					t.Fatalf("last position token %d: log-prob %.7f, torch %.7f", i, last[i], want)
				}
				if d := math.Abs(float64(logits[len(logits)-1][i]) - c.LastLogits[i]); d > 1e-4 {
					t.Fatalf("last position token %d: logit %.7f, torch %.7f", i, logits[len(logits)-1][i], c.LastLogits[i])
				}
			}
			t.Logf("worst |Δ log-prob| %.2g over %d positions", worst, len(c.Positions))

			// The LM head's summed target log-probabilities agree with the log-softmax above.
			tg := append(append([]int32(nil), c.InputIDs[1:]...), -1)
			gr, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: len(c.InputIDs)})
			if err != nil {
				t.Fatal(err)
			}
			_, s, err := gr.Run(Inputs{Tokens: c.InputIDs, Targets: tg}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var want float64
			for i := 0; i+1 < len(c.InputIDs); i++ {
				want += logSoftmax(logits[i])[c.InputIDs[i+1]]
			}
			if math.Abs(s.LogProb[0]-want) > 1e-4 || s.Tokens[0] != float64(len(c.InputIDs)-1) {
				t.Fatalf("LogProb %g (want %g), Tokens %g", s.LogProb[0], want, s.Tokens[0])
			}
		})
	}
}

func TestGraphRejectsBadInputs(t *testing.T) {
	cfg := tinyConfig(tinyOpts{})
	w := InitRandom(cfg, 1, 0.1)
	gr, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 3})
	if err != nil {
		t.Fatal(err)
	}
	ok := func() Inputs {
		return Inputs{Tokens: []int32{1, 2, 3, 4, 5, 6}, Targets: []int32{2, 3, 4, 5, 6, 7}}
	}
	for _, tc := range []struct {
		edit func(*Inputs)
		want string
	}{
		{func(in *Inputs) { in.Tokens = in.Tokens[:5] }, "model: Inputs.Tokens has 5 values, want 6 (batch 2 × seq_len 3)"},
		{func(in *Inputs) { in.Tokens[4] = int32(cfg.VocabSize) }, fmt.Sprintf("model: Inputs.Tokens[4] = %d is outside the vocabulary (0..%d)", cfg.VocabSize, cfg.VocabSize-1)},
		{func(in *Inputs) { in.Targets[1] = 999 }, fmt.Sprintf("model: Inputs.Targets[1] = 999 is outside the vocabulary (0..%d)", cfg.VocabSize-1)},
		{func(in *Inputs) { in.Positions = []int32{0, 1, -2, 0, 1, 2} }, "model: Inputs.Positions[2] = -2 is outside 0..1048576"},
		{func(in *Inputs) { in.Weights = []float32{1, 1, float32(math.NaN()), 1, 1, 1} }, "model: Inputs.Weights[2] = NaN is not finite"},
		{func(in *Inputs) { in.Segments = []int32{1} }, "model: Inputs.Segments has 1 values, want 6 (batch 2 × seq_len 3)"},
	} {
		in := ok()
		tc.edit(&in)
		_, _, err := gr.Run(in, nil)
		if err == nil || err.Error() != tc.want {
			t.Fatalf("error %v, want %q", err, tc.want)
		}
	}
	// An ignored target may hold anything.
	in := ok()
	in.Targets[1] = 999
	in.Weights = []float32{1, 0, 1, 1, 1, 1}
	if _, _, err := gr.Run(in, nil); err != nil {
		t.Fatal(err)
	}
	// Objective errors and non-finite losses come back as errors.
	_, _, err = gr.Run(ok(), func(Stats) (float64, []float64, []float64, error) { return math.NaN(), nil, nil, nil })
	if err == nil || !strings.Contains(err.Error(), "the objective's loss is NaN") {
		t.Fatalf("NaN loss: %v", err)
	}
	_, _, err = gr.Run(ok(), func(Stats) (float64, []float64, []float64, error) { return 0, []float64{1}, nil, nil })
	if err == nil || !strings.Contains(err.Error(), "the objective's dLogProb has 1 values, want 2") {
		t.Fatalf("short gradient: %v", err)
	}
	if _, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: 4, Head: ScoreHead}); err == nil || !strings.Contains(err.Error(), "score.weight") {
		t.Fatalf("score head without score.weight: %v", err)
	}
}
