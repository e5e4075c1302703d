package model

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
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
	if err == nil || err.Error() != "model: graph run: the objective's loss is NaN" {
		t.Fatalf("NaN loss: %v", err)
	}
	_, _, err = gr.Run(ok(), func(Stats) (float64, []float64, []float64, error) { return 0, []float64{1}, nil, nil })
	if err == nil || err.Error() != "model: graph run: the objective's dLogProb has 1 values, want 2 (per row) or 6 (per token)" {
		t.Fatalf("short gradient: %v", err)
	}
	// The objective's own error comes back wrapped, so that the trainer can test for it.
	errBeta := errors.New("dpo: beta must be positive")
	_, _, err = gr.Run(ok(), func(Stats) (float64, []float64, []float64, error) { return 0, nil, nil, errBeta })
	if !errors.Is(err, errBeta) || err.Error() != "model: graph run: dpo: beta must be positive" {
		t.Fatalf("objective error: %v", err)
	}
	if _, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: 4, Head: ScoreHead}); err == nil || !strings.Contains(err.Error(), "score.weight") {
		t.Fatalf("score head without score.weight: %v", err)
	}
}

// NewGraph and Forward reject what they cannot build, and a score-head graph checks LastIndex.
func TestGraphRejectsBadSpecs(t *testing.T) {
	w := InitRandom(tinyConfig(tinyOpts{}), 1, 0.1)
	for _, tc := range []struct {
		w    *Weights
		spec GraphSpec
		want string
	}{
		{nil, GraphSpec{Batch: 1, SeqLen: 3}, "model: NewGraph: weights are nil"},
		{w, GraphSpec{Batch: 0, SeqLen: 3}, "model: NewGraph: batch 0 and seq_len 3 must be positive"},
		{w, GraphSpec{Batch: 1, SeqLen: 3, Head: Head(7)}, "model: NewGraph: unknown head Head(7)"},
	} {
		if _, err := NewGraph(tc.w, tc.spec); err == nil || err.Error() != tc.want {
			t.Errorf("NewGraph(%+v): error %v, want %q", tc.spec, err, tc.want)
		}
	}
	if _, err := Forward(w, nil); err == nil || err.Error() != "model: Forward: no tokens" {
		t.Errorf("Forward without tokens: %v", err)
	}
	rw := InitRandom(tinyConfig(tinyOpts{reward: true}), 1, 0.1)
	gr, err := NewGraph(rw, GraphSpec{Batch: 2, SeqLen: 3, Head: ScoreHead})
	if err != nil {
		t.Fatal(err)
	}
	toks := []int32{1, 2, 3, 4, 5, 6}
	for _, tc := range []struct {
		last []int32
		want string
	}{
		{[]int32{2}, "model: Inputs.LastIndex has 1 values, want one per row (2)"},
		{[]int32{2, 3}, "model: Inputs.LastIndex[1] = 3 is outside the row (0..2)"},
	} {
		if _, _, err := gr.Run(Inputs{Tokens: toks, LastIndex: tc.last}, nil); err == nil || err.Error() != tc.want {
			t.Errorf("LastIndex %v: error %v, want %q", tc.last, err, tc.want)
		}
	}
	if _, _, err := gr.Run(Inputs{Tokens: toks, LastIndex: []int32{2, 0}}, nil); err != nil {
		t.Fatal(err)
	}
}

// Three examples packed into one row (with restarting positions, their own segments and a padding
// token) give the same logits and per-example log-probabilities as each example run alone.
func TestGraphPackedMatchesOneByOne(t *testing.T) {
	for _, o := range []tinyOpts{{}, {moe: true}, {window: 2}} {
		cfg := tinyConfig(o)
		w := InitRandom(cfg, 3, 0.3)
		rng := rand.New(rand.NewPCG(5, 5))
		lens := []int{5, 3, 4}
		var examples [][]int32
		packed := Inputs{}
		for e, n := range lens {
			ex := make([]int32, n)
			for i := range ex {
				ex[i] = int32(rng.IntN(cfg.VocabSize))
			}
			examples = append(examples, ex)
			for i := range ex {
				packed.Tokens = append(packed.Tokens, ex[i])
				packed.Positions = append(packed.Positions, int32(i))
				packed.Segments = append(packed.Segments, int32(e+1))
				tg := int32(-1)
				if i+1 < n {
					tg = ex[i+1]
				}
				packed.Targets = append(packed.Targets, tg)
			}
		}
		packed.Tokens = append(packed.Tokens, 0)
		packed.Positions = append(packed.Positions, 0)
		packed.Segments = append(packed.Segments, 0)
		packed.Targets = append(packed.Targets, -1)
		T := len(packed.Tokens)
		gp, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: T, KeepLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		off := 0
		for e, ex := range examples {
			// Weights select example e's targets only.
			in := packed
			in.Weights = make([]float32, T)
			for i := range ex {
				in.Weights[off+i] = 1
			}
			_, sp, err := gp.Run(in, nil)
			if err != nil {
				t.Fatal(err)
			}
			packedLogits := append([]float32(nil), gp.Logits()...)

			gs, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: len(ex), KeepLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			tg := append(append([]int32(nil), ex[1:]...), -1)
			_, ss, err := gs.Run(Inputs{Tokens: ex, Targets: tg}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := math.Abs(sp.LogProb[0] - ss.LogProb[0]); d > 1e-5 || sp.Tokens[0] != ss.Tokens[0] {
				t.Fatalf("%+v example %d: packed log-prob %.7f (%g tokens), alone %.7f (%g tokens)", o, e, sp.LogProb[0], sp.Tokens[0], ss.LogProb[0], ss.Tokens[0])
			}
			V := cfg.VocabSize
			for i := range ex {
				for v := 0; v < V; v++ {
					a, b := packedLogits[(off+i)*V+v], gs.Logits()[i*V+v]
					if math.Abs(float64(a-b)) > 1e-5 {
						t.Fatalf("%+v example %d position %d token %d: packed logit %g, alone %g", o, e, i, v, a, b)
					}
				}
			}
			off += len(ex)
		}
	}
}

func gradsOf(gr *Graph) [][]float32 {
	var out [][]float32
	for _, p := range gr.Params() {
		out = append(out, append([]float32(nil), p.Grad...))
	}
	return out
}

func sameGrads(t *testing.T, what string, a, b [][]float32, names []Param) {
	t.Helper()
	for i := range a {
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				t.Fatalf("%s: %s[%d] = %g, then %g", what, names[i].Name, j, a[i][j], b[i][j])
			}
		}
	}
}

// A target with weight 0 (or a negative one) contributes exactly nothing: changing its id leaves
// the loss and every gradient bit-for-bit unchanged.
func TestGraphMaskedTargetHasNoGradient(t *testing.T) {
	for _, o := range []tinyOpts{{}, {moe: true}} {
		cfg := tinyConfig(o)
		w := InitRandom(cfg, 9, 0.3)
		gr, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Grad: true})
		if err != nil {
			t.Fatal(err)
		}
		in := packedInputs(rand.New(rand.NewPCG(1, 1)), cfg.VocabSize)
		obj := smoothObjective(LMHead)
		loss, s, err := gr.Run(in, obj)
		if err != nil {
			t.Fatal(err)
		}
		before := gradsOf(gr)
		for _, edit := range []func(*Inputs){
			func(in *Inputs) { in.Targets[9] = (in.Targets[9] + 5) % int32(cfg.VocabSize) }, // weight 0 inside an example
			func(in *Inputs) { in.Targets[6] = 11 },                                         // padding, weight 0
			func(in *Inputs) { in.Targets[3], in.Weights[3] = -1, 1 },                       // negative target, weight 1
		} {
			in2 := in
			in2.Targets = append([]int32(nil), in.Targets...)
			in2.Weights = append([]float32(nil), in.Weights...)
			if in.Targets[3] != -1 {
				t.Fatal("the fixture changed: position 3 should be an example's last token")
			}
			edit(&in2)
			loss2, s2, err := gr.Run(in2, obj)
			if err != nil {
				t.Fatal(err)
			}
			if loss2 != loss || s2.LogProb[0] != s.LogProb[0] || s2.Tokens[1] != s.Tokens[1] {
				t.Fatalf("%+v: loss %v → %v", o, loss, loss2)
			}
			sameGrads(t, "masked target", before, gradsOf(gr), gr.Params())
		}
	}
}

// With a window of 3 and two layers, token 0 reaches position 4 at most (0→2→4): positions 5 and
// later are bit-for-bit unchanged when it changes, position 4 is not.
func TestGraphSlidingWindow(t *testing.T) {
	for _, tc := range []struct {
		window    int
		unchanged int // first position that must not change
	}{{3, 5}, {0, -1}} {
		cfg := tinyConfig(tinyOpts{window: tc.window})
		w := InitRandom(cfg, 4, 0.3)
		T := 10
		gr, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: T, KeepLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		tokens := []int32{3, 17, 5, 9, 30, 2, 8, 21, 4, 11}
		in := Inputs{Tokens: tokens, Targets: make([]int32, T), Weights: make([]float32, T)}
		if _, _, err := gr.Run(in, nil); err != nil {
			t.Fatal(err)
		}
		before := append([]float32(nil), gr.Logits()...)
		in.Tokens = append([]int32{29}, tokens[1:]...)
		if _, _, err := gr.Run(in, nil); err != nil {
			t.Fatal(err)
		}
		after := gr.Logits()
		V := cfg.VocabSize
		changed := func(p int) bool {
			for v := 0; v < V; v++ {
				if before[p*V+v] != after[p*V+v] {
					return true
				}
			}
			return false
		}
		if tc.unchanged < 0 {
			if !changed(T - 1) {
				t.Fatal("without a window, token 0 should reach the last position")
			}
			continue
		}
		if !changed(tc.unchanged - 1) {
			t.Fatalf("position %d should see token 0 through two layers", tc.unchanged-1)
		}
		for p := tc.unchanged; p < T; p++ {
			if changed(p) {
				t.Fatalf("position %d changed although token 0 is outside its two-layer window", p)
			}
		}
	}
}

// Re-running one graph on new inputs gives exactly what a fresh graph gives on them: no state
// leaks between runs and gradients are not accumulated.
func TestGraphRerunMatchesFreshGraph(t *testing.T) {
	for _, tc := range []struct {
		o    tinyOpts
		head Head
	}{{tinyOpts{moe: true, window: 3}, LMHead}, {tinyOpts{reward: true}, ScoreHead}} {
		cfg := tinyConfig(tc.o)
		w := InitRandom(cfg, 2, 0.3)
		spec := GraphSpec{Batch: 2, SeqLen: 7, Head: tc.head, Grad: true}
		obj := smoothObjective(tc.head)
		a := packedInputs(rand.New(rand.NewPCG(1, 2)), cfg.VocabSize)
		b := packedInputs(rand.New(rand.NewPCG(3, 4)), cfg.VocabSize)
		b.LastIndex = []int32{3, 6}
		used, err := NewGraph(w, spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := used.Run(a, obj); err != nil {
			t.Fatal(err)
		}
		loss1, s1, err := used.Run(b, obj)
		if err != nil {
			t.Fatal(err)
		}
		g1 := gradsOf(used)
		fresh, err := NewGraph(w, spec)
		if err != nil {
			t.Fatal(err)
		}
		loss2, s2, err := fresh.Run(b, obj)
		if err != nil {
			t.Fatal(err)
		}
		if loss1 != loss2 || s1.AuxLoss != s2.AuxLoss || fmt.Sprint(s1) != fmt.Sprint(s2) {
			t.Fatalf("re-run: loss %v stats %+v; fresh: loss %v stats %+v", loss1, s1, loss2, s2)
		}
		sameGrads(t, "re-run vs fresh", g1, gradsOf(fresh), fresh.Params())
	}
}

// Stats follow their definitions on a hand-checkable case: Tokens sums the weights of counted
// targets, Correct the weights of argmax hits, MeanLogit averages the counted rows' logits over the
// vocabulary; a forward-only graph has no gradients.
func TestGraphStats(t *testing.T) {
	cfg := tinyConfig(tinyOpts{})
	w := InitRandom(cfg, 8, 0.3)
	gr, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: 4, KeepLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	if gr.Params()[0].Grad != nil {
		t.Fatal("forward-only graph has gradients")
	}
	in := Inputs{Tokens: []int32{1, 2, 3, 4}, Targets: []int32{5, 6, -1, 7}, Weights: []float32{0.5, 0, 1, 2}}
	if _, _, err := gr.Run(in, nil); err != nil {
		t.Fatal(err)
	}
	// Make position 0's target its argmax, so that Correct counts one hit of weight 0.5.
	V := cfg.VocabSize
	first := gr.Logits()[:V]
	for v, x := range first {
		if x > first[in.Targets[0]] {
			in.Targets[0] = int32(v)
		}
	}
	_, s, err := gr.Run(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	logits := gr.Logits()
	var lp, correct, mean float64
	for _, i := range []int{0, 3} { // the counted positions
		row := logits[i*V : (i+1)*V]
		ls := logSoftmax(row)
		lp += float64(in.Weights[i]) * ls[in.Targets[i]]
		arg := 0
		for v, x := range row {
			mean += float64(x)
			if x > row[arg] {
				arg = v
			}
		}
		if arg == int(in.Targets[i]) {
			correct += float64(in.Weights[i])
		}
	}
	mean /= float64(2 * V)
	if correct < 0.5 {
		t.Fatalf("fixture: position 0 should be a hit (correct %g)", correct)
	}
	if math.Abs(s.LogProb[0]-lp) > 1e-5 || s.Tokens[0] != 2.5 || s.Correct[0] != correct || math.Abs(s.MeanLogit[0]-mean) > 1e-6 {
		t.Fatalf("stats %+v; want LogProb %g, Tokens 2.5, Correct %g, MeanLogit %g", s, lp, correct, mean)
	}
}
