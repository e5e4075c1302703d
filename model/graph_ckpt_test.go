package model

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestCheckpointMatchesPlainGraph: with GraphSpec.Checkpoint the float32 graph gives bitwise the
// same loss, stats and gradients as the plain graph, on dense and MoE models (aux loss on), with
// packed rows (segments, restarting positions, padding), for both heads, over two runs on different
// inputs; a forward-only checkpointed graph gives the same stats, and its kept logits are the same.
func TestCheckpointMatchesPlainGraph(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    tinyOpts
		head Head
	}{
		{"llama dense tied", tinyOpts{layers: 3}, LMHead},
		{"mixtral moe window untied", tinyOpts{moe: true, window: 3, untied: true, layers: 3}, LMHead},
		{"mixtral reward", tinyOpts{moe: true, reward: true}, ScoreHead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig(tc.o)
			w := InitRandom(cfg, 11, 0.3)
			obj := smoothObjective(tc.head)
			build := func(ckpt, grad bool) *Graph {
				g, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: tc.head, Grad: grad, Checkpoint: ckpt, KeepLogits: !grad && tc.head == LMHead})
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			plain, ckpt := build(false, true), build(true, true)
			plainFwd, ckptFwd := build(false, false), build(true, false)
			rng := rand.New(rand.NewPCG(5, 5))
			for run := 0; run < 2; run++ {
				in := packedInputs(rng, cfg.VocabSize)
				l0, s0, err := plain.Run(in, obj)
				if err != nil {
					t.Fatal(err)
				}
				l1, s1, err := ckpt.Run(in, obj)
				if err != nil {
					t.Fatal(err)
				}
				if l0 != l1 {
					t.Fatalf("run %d: loss %v plain, %v checkpointed", run, l0, l1)
				}
				if cfg.IsMoE() && !(s0.AuxLoss > 0) {
					t.Fatalf("aux loss %g: the MoE path is not exercised", s0.AuxLoss)
				}
				sameStats(t, "grad graphs", s0, s1)
				for i, p := range plain.Params() {
					q := ckpt.Params()[i]
					if p.Name != q.Name {
						t.Fatalf("param %d: %s plain, %s checkpointed", i, p.Name, q.Name)
					}
					if !slices.Equal(p.Grad, q.Grad) {
						for j := range p.Grad {
							if math.Float32bits(p.Grad[j]) != math.Float32bits(q.Grad[j]) {
								t.Fatalf("run %d: %s[%d]: gradient %v plain, %v checkpointed", run, p.Name, j, p.Grad[j], q.Grad[j])
							}
						}
					}
				}
				_, f0, err := plainFwd.Run(in, obj)
				if err != nil {
					t.Fatal(err)
				}
				_, f1, err := ckptFwd.Run(in, obj)
				if err != nil {
					t.Fatal(err)
				}
				sameStats(t, "forward graphs", f0, f1)
				sameStats(t, "forward and grad graphs", s0, f1)
				if !slices.Equal(plainFwd.Logits(), ckptFwd.Logits()) {
					t.Fatal("kept logits differ")
				}
			}
			// Every parameter got a gradient (the test would not miss a lost one), except experts that
			// the score head's last rows may never route to.
			for _, p := range ckpt.Params() {
				if !strings.Contains(p.Name, ".experts.") && !slices.ContainsFunc(p.Grad, func(g float32) bool { return g != 0 }) {
					t.Fatalf("%s has an all-zero gradient", p.Name)
				}
			}
		})
	}
}

func sameStats(t *testing.T, what string, a, b Stats) {
	t.Helper()
	for _, c := range []struct {
		name string
		x, y []float64
	}{{"LogProb", a.LogProb, b.LogProb}, {"Tokens", a.Tokens, b.Tokens}, {"Correct", a.Correct, b.Correct}, {"MeanLogit", a.MeanLogit, b.MeanLogit}, {"Reward", a.Reward, b.Reward}, {"Values", a.Values, b.Values}} {
		if !slices.Equal(c.x, c.y) {
			t.Fatalf("%s: %s %v vs %v", what, c.name, c.x, c.y)
		}
	}
	if a.AuxLoss != b.AuxLoss {
		t.Fatalf("%s: AuxLoss %v vs %v", what, a.AuxLoss, b.AuxLoss)
	}
}

// TestCheckpointCutsGraphMemory measures the Go heap that a built-and-run training graph holds
// (its op buffers: activations, gradients, the head's chunk) for an 8-layer model at 2×128, plain and
// checkpointed. The plain graph keeps all eight layers' activations; the checkpointed one keeps
// each layer's input and output plus one layer's activations in its sub-graphs.
func TestCheckpointCutsGraphMemory(t *testing.T) {
	cfg := Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", VocabSize: 512, HiddenSize: 64,
		IntermediateSize: 172, NumHiddenLayers: 8, NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 16,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 256, TieWordEmbeddings: true,
	}
	w := InitRandom(cfg, 3, 0.02)
	const B, T = 2, 128
	in := Inputs{Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range in.Tokens {
		in.Tokens[i] = int32(i * 7 % cfg.VocabSize)
		in.Targets[i] = int32(i * 11 % cfg.VocabSize)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	held := func(ckpt bool) uint64 {
		before := heap()
		g, err := NewGraph(w, GraphSpec{Batch: B, SeqLen: T, Head: LMHead, Grad: true, Checkpoint: ckpt})
		if err != nil {
			t.Fatal(err)
		}
		obj := func(s Stats) (float64, []float64, []float64, error) {
			d := make([]float64, B)
			for b := range d {
				d[b] = -1
			}
			return -s.LogProb[0] - s.LogProb[1], d, nil, nil
		}
		if _, _, err := g.Run(in, obj); err != nil {
			t.Fatal(err)
		}
		after := heap()
		runtime.KeepAlive(g)
		return after - before
	}
	plain, ckpt := held(false), held(true)
	t.Logf("graph heap: plain %.1f MiB, checkpointed %.1f MiB (%.2fx)", float64(plain)/(1<<20), float64(ckpt)/(1<<20), float64(plain)/float64(ckpt))
	if ckpt*5/2 > plain {
		t.Fatalf("checkpointed graph holds %d bytes, plain %d: want at most 40%%", ckpt, plain)
	}
}

// TestGradAliasesOpBuffers: a float32 graph's Param.Grad is the gradient op's own buffer, the same
// slice run after run (no second model-sized copy, and no fallback copy), for plain and
// checkpointed, dense and MoE, tied and untied graphs; the values are those of a fresh graph.
func TestGradAliasesOpBuffers(t *testing.T) {
	for _, o := range []tinyOpts{{}, {moe: true, untied: true}} {
		for _, ckpt := range []bool{false, true} {
			cfg := tinyConfig(o)
			w := InitRandom(cfg, 4, 0.3)
			spec := GraphSpec{Batch: 2, SeqLen: 7, Head: LMHead, Grad: true, Checkpoint: ckpt}
			gr, err := NewGraph(w, spec)
			if err != nil {
				t.Fatal(err)
			}
			if gr.Params()[0].Grad != nil {
				t.Fatal("a gradient before the first run")
			}
			rng := rand.New(rand.NewPCG(8, 8))
			obj := smoothObjective(LMHead)
			if _, _, err := gr.Run(packedInputs(rng, cfg.VocabSize), obj); err != nil {
				t.Fatal(err)
			}
			first := slices.Clone(gr.Params())
			in := packedInputs(rng, cfg.VocabSize)
			if _, _, err := gr.Run(in, obj); err != nil {
				t.Fatal(err)
			}
			fresh, err := NewGraph(w, spec)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := fresh.Run(in, obj); err != nil {
				t.Fatal(err)
			}
			for i, p := range gr.Params() {
				if &p.Grad[0] != &first[i].Grad[0] || gr.params[i].own != nil {
					t.Fatalf("%+v checkpoint %v: %s's gradient moved to another buffer", o, ckpt, p.Name)
				}
				if !slices.Equal(p.Grad, fresh.Params()[i].Grad) {
					t.Fatalf("%+v checkpoint %v: %s's second-run gradient differs from a fresh graph's", o, ckpt, p.Name)
				}
			}
		}
	}
}
