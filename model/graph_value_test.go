package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// The value head is the score head read at every position: its value at each row's LastIndex is
// exactly the score head's reward for that row (same weights, same float32 graph up to the gather),
// and its other positions are the score the reward model would give the prefix ending there (the
// causal mask makes h_t depend on tokens ≤ t only), checked by running the score head with
// LastIndex moved to each position.
func TestValueHeadMatchesScoreHead(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    tinyOpts
	}{{"llama", tinyOpts{reward: true}}, {"mixtral", tinyOpts{moe: true, reward: true}}, {"qwen3", tinyOpts{family: "qwen3", reward: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig(tc.o)
			w := InitRandom(cfg, 5, 0.3)
			rng := rand.New(rand.NewPCG(3, 4))
			in := packedInputs(rng, cfg.VocabSize)
			vg, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: ValueHead})
			if err != nil {
				t.Fatal(err)
			}
			sg, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: ScoreHead})
			if err != nil {
				t.Fatal(err)
			}
			_, vs, err := vg.Run(Inputs{Tokens: in.Tokens, Positions: in.Positions, Segments: in.Segments}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs.Values) != 14 || vs.Reward != nil {
				t.Fatalf("value head stats: %d values, reward %v", len(vs.Values), vs.Reward)
			}
			for p := int32(0); p < 7; p++ {
				in.LastIndex = []int32{p, p}
				_, ss, err := sg.Run(in, nil)
				if err != nil {
					t.Fatal(err)
				}
				for b := 0; b < 2; b++ {
					if got, want := vs.Values[b*7+int(p)], ss.Reward[b]; math.Abs(got-want) > 1e-6*(1+math.Abs(want)) {
						t.Fatalf("row %d position %d: value %v, score head %v", b, p, got, want)
					}
				}
			}
		})
	}
}

// The value head trains through a LoRA adapter (score.weight among modules_to_save, as PEFT's
// SEQ_CLS task saves it) with gradient checkpointing: the checkpointed graph's loss, values and
// gradients are bitwise the plain graph's, and its gradients agree with central differences in
// float64.
func TestValueHeadAdapterCheckpoint(t *testing.T) {
	cfg := tinyConfig(tinyOpts{reward: true, layers: 3})
	w := InitRandom(cfg, 9, 0.3)
	rng := rand.New(rand.NewPCG(8, 1))
	ad := testAdapter(w, 3, 0.3, rng, allLinear, ScoreKey, FinalNormKey)
	in := packedInputs(rng, cfg.VocabSize)
	in.Seed = 77
	var graphs []*Graph
	for _, ck := range []bool{false, true} {
		g, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: ValueHead, Grad: true, Adapter: ad, Checkpoint: ck})
		if err != nil {
			t.Fatal(err)
		}
		graphs = append(graphs, g)
	}
	l0, s0, err := graphs[0].Run(in, valueObjective)
	if err != nil {
		t.Fatal(err)
	}
	l1, s1, err := graphs[1].Run(in, valueObjective)
	if err != nil {
		t.Fatal(err)
	}
	if l0 != l1 {
		t.Fatalf("loss %v plain, %v checkpointed", l0, l1)
	}
	sameStats(t, "value head", s0, s1)
	saw := map[string]bool{}
	for i, p := range graphs[0].Params() {
		q := graphs[1].Params()[i]
		if p.Name != q.Name {
			t.Fatalf("param %d: %s vs %s", i, p.Name, q.Name)
		}
		saw[p.Name] = true
		for j := range p.Grad {
			if math.Float32bits(p.Grad[j]) != math.Float32bits(q.Grad[j]) {
				t.Fatalf("%s[%d]: gradient %v plain, %v checkpointed", p.Name, j, p.Grad[j], q.Grad[j])
			}
		}
	}
	if !saw[ScoreKey] {
		t.Fatalf("score.weight (modules_to_save) is not trained: params %v", saw)
	}

	// float64 central differences through the adapter and the per-token head, checkpointed.
	g64, err := newGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: ValueHead, Grad: true, Adapter: ad, Checkpoint: true}, tensor.Float64)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g64.Run(in, valueObjective); err != nil {
		t.Fatal(err)
	}
	const eps = 1e-6
	checked := 0
	for i, p := range g64.params {
		grad := append([]float64(nil), g64.gradF64(i)...)
		scale := 0.0
		for _, g := range grad {
			scale = math.Max(scale, math.Abs(g))
		}
		for _, j := range rng.Perm(len(p.f64))[:min(3, len(p.f64))] {
			orig := p.f64[j]
			p.f64[j] = orig + eps
			lp, _, err := g64.Run(in, valueObjective)
			if err != nil {
				t.Fatal(err)
			}
			p.f64[j] = orig - eps
			lm, _, err := g64.Run(in, valueObjective)
			if err != nil {
				t.Fatal(err)
			}
			p.f64[j] = orig
			if num := (lp - lm) / (2 * eps); math.Abs(num-grad[j]) > 1e-6*(1+scale) {
				t.Errorf("%s[%d]: symbolic %.9g, finite difference %.9g", p.name, j, grad[j], num)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d elements checked", checked)
	}
}

func TestValueHeadBadObjective(t *testing.T) {
	cfg := tinyConfig(tinyOpts{reward: true})
	w := InitRandom(cfg, 5, 0.3)
	g, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: ValueHead, Grad: true})
	if err != nil {
		t.Fatal(err)
	}
	in := packedInputs(rand.New(rand.NewPCG(1, 1)), cfg.VocabSize)
	_, _, err = g.Run(in, func(s Stats) (float64, []float64, []float64, error) { return 0, nil, make([]float64, 2), nil })
	if err == nil || !strings.Contains(err.Error(), "the objective's dReward has 2 values, want 14 (one per position of the value head)") {
		t.Fatalf("err = %v", err)
	}
	lw := InitRandom(tinyConfig(tinyOpts{}), 5, 0.3)
	if _, err := NewGraph(lw, GraphSpec{Batch: 1, SeqLen: 3, Head: ValueHead}); err == nil || !strings.Contains(err.Error(), "the value head needs score.weight, which this model lacks") {
		t.Fatalf("err = %v", err)
	}
}

// With Temperature T the LM head's per-token log-probs are log_softmax(logits/T) at the target,
// computed here from the plain graph's kept logits in float64.
func TestTemperatureLogProbs(t *testing.T) {
	cfg := tinyConfig(tinyOpts{untied: true})
	w := InitRandom(cfg, 5, 0.3)
	in := packedInputs(rand.New(rand.NewPCG(9, 9)), cfg.VocabSize)
	plain, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: LMHead, KeepLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := plain.Run(in, nil); err != nil {
		t.Fatal(err)
	}
	logits := append([]float32(nil), plain.Logits()...)
	const temp = 0.7
	g, err := NewGraph(w, GraphSpec{Batch: 2, SeqLen: 7, Head: LMHead, Temperature: temp})
	if err != nil {
		t.Fatal(err)
	}
	_, s, err := g.Run(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	V := cfg.VocabSize
	checked := 0
	for i, tg := range in.Targets {
		if tg < 0 || in.Weights[i] == 0 {
			continue
		}
		row := logits[i*V : (i+1)*V]
		mx := math.Inf(-1)
		for _, z := range row {
			mx = math.Max(mx, float64(z)/temp)
		}
		var sum float64
		for _, z := range row {
			sum += math.Exp(float64(z)/temp - mx)
		}
		want := float64(in.Weights[i]) * (float64(row[tg])/temp - mx - math.Log(sum))
		if got := s.TokenLogProb[i]; math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
			t.Fatalf("position %d: log-prob %v at temperature %v, want %v", i, got, temp, want)
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("%d positions checked", checked)
	}
	if _, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: 3, Head: LMHead, Temperature: -1}); err == nil || err.Error() != "model: NewGraph: temperature -1: want > 0 (or 0: none)" {
		t.Fatalf("err = %v", err)
	}
}
