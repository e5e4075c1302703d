package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"
)

type tinyOpts struct {
	window int  // Mistral sliding window
	moe    bool // Mixtral: 4 experts, top 2
	untied bool // a separate lm_head
	reward bool // *ForSequenceClassification with score.weight
	layers int  // default 2
}

// tinyConfig is a small model with every feature the graph supports: GQA (4 query heads over 2 KV
// heads of 8), odd sizes elsewhere.
func tinyConfig(o tinyOpts) Config {
	c := Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 37, HiddenSize: 16, IntermediateSize: 24, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 64,
		TieWordEmbeddings: !o.untied, BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
	if o.layers > 0 {
		c.NumHiddenLayers = o.layers
	}
	arch := "LlamaForCausalLM"
	if o.window > 0 {
		c.ModelType, arch, c.SlidingWindow = "mistral", "MistralForCausalLM", o.window
	}
	if o.moe {
		c.ModelType, arch = "mixtral", "MixtralForCausalLM"
		c.NumLocalExperts, c.NumExpertsPerTok, c.RouterAuxLossCoef = 4, 2, 0.3
		c.SlidingWindow = o.window
	}
	if o.reward {
		arch = arch[:len(arch)-len("CausalLM")] + "SequenceClassification"
		c.NumLabels = 1
	}
	c.Architectures = []string{arch}
	return c
}

// packedInputs is a batch of two rows of seven: row 0 packs two examples (4 + 2 tokens) and one
// padding token; row 1 holds one example of 5 with two padding tokens. Targets are the next token
// within each example; the last token of each example and padding have weight 0, and one target
// in the middle is masked too.
func packedInputs(rng *rand.Rand, v int) Inputs {
	in := Inputs{
		Segments:  []int32{1, 1, 1, 1, 2, 2, 0, 3, 3, 3, 3, 3, 0, 0},
		Positions: []int32{0, 1, 2, 3, 0, 1, 0, 0, 1, 2, 3, 4, 0, 0},
		LastIndex: []int32{5, 4},
	}
	n := len(in.Segments)
	in.Tokens = make([]int32, n)
	in.Targets = make([]int32, n)
	in.Weights = make([]float32, n)
	for i := range in.Tokens {
		in.Tokens[i] = int32(rng.IntN(v))
	}
	for i := 0; i < n; i++ {
		if i+1 < n && in.Segments[i] != 0 && in.Segments[i+1] == in.Segments[i] && i%7 != 6 {
			in.Targets[i] = in.Tokens[i+1]
			in.Weights[i] = float32(0.5 + rng.Float64())
		} else {
			in.Targets[i] = -1
		}
	}
	in.Weights[9] = 0 // a masked target inside an example
	return in
}

// smoothObjective is a nonlinear function of every row's statistic, so that each row gets its own
// gradient: loss = Σ_b a_b·x_b + 0.05·(x_0 − x_1)² with x = LogProb (LM) or Reward (score).
func smoothObjective(head Head) Objective {
	a := []float64{-0.7, -1.3}
	return func(s Stats) (float64, []float64, []float64, error) {
		x := s.LogProb
		if head == ScoreHead {
			x = s.Reward
		}
		d := make([]float64, len(x))
		loss := 0.05 * (x[0] - x[1]) * (x[0] - x[1])
		for b := range x {
			loss += a[b] * x[b]
			d[b] = a[b]
		}
		d[0] += 0.1 * (x[0] - x[1])
		d[1] -= 0.1 * (x[0] - x[1])
		if head == ScoreHead {
			return loss, nil, d, nil
		}
		return loss, d, nil, nil
	}
}

// tokenObjective is a nonlinear function of every position's log-prob, as GRPO's per-token ratios
// are: loss = Σ_i c_i·x_i + 0.05·x_i² with x = TokenLogProb and c_i varying along the row, so that
// the per-token derivatives (c_i + 0.1·x_i) cannot be expressed through the row sums.
func tokenObjective(s Stats) (float64, []float64, []float64, error) {
	x := s.TokenLogProb
	d := make([]float64, len(x))
	loss := 0.0
	for i, v := range x {
		c := -0.3 - 0.2*float64(i%5)
		loss += c*v + 0.05*v*v
		d[i] = c + 0.1*v
	}
	return loss, d, nil, nil
}

func (gr *Graph) gradF64(i int) []float64 {
	return gr.params[i].grad.Value().(*tensor.Dense).Data().([]float64)
}

// Whole-graph gradient check in float64 (the graph is dtype-generic): for every parameter tensor,
// a few random elements' dLoss/dParam against central differences with eps 1e-6. The loss includes
// the objective and, for Mixtral, router_aux_loss_coef × the aux loss. The float32 graph on the same
// weights then agrees with the float64 one.
func TestGraphGradientCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    tinyOpts
		head Head
		// perToken uses tokenObjective (derivatives per position) instead of smoothObjective.
		perToken bool
	}{
		{"llama gqa tied", tinyOpts{}, LMHead, false},
		{"llama per-token objective", tinyOpts{}, LMHead, true},
		{"mixtral per-token objective untied", tinyOpts{moe: true, untied: true}, LMHead, true},
		{"mistral window untied", tinyOpts{window: 3, untied: true}, LMHead, false},
		{"mixtral moe aux", tinyOpts{moe: true}, LMHead, false},
		{"mixtral moe window untied", tinyOpts{moe: true, window: 2, untied: true}, LMHead, false},
		{"llama reward score head", tinyOpts{reward: true}, ScoreHead, false},
		{"mixtral reward score head", tinyOpts{moe: true, reward: true}, ScoreHead, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(21, uint64(len(tc.name))))
			cfg := tinyConfig(tc.o)
			w := InitRandom(cfg, 7, 0.3) // large enough weights for attention and routing to matter
			spec := GraphSpec{Batch: 2, SeqLen: 7, Head: tc.head, Grad: true}
			gr, err := newGraph(w, spec, tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			in := packedInputs(rng, cfg.VocabSize)
			obj := smoothObjective(tc.head)
			if tc.perToken {
				obj = tokenObjective
			}
			loss, s, err := gr.Run(in, obj)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.IsMoE() && !(s.AuxLoss > 0) {
				t.Fatalf("aux loss %g", s.AuxLoss)
			}
			grads := make([][]float64, len(gr.params))
			for i := range gr.params {
				grads[i] = append([]float64(nil), gr.gradF64(i)...)
			}
			const eps = 1e-6
			checked := 0
			for i, p := range gr.params {
				scale := 0.0
				for _, g := range grads[i] {
					scale = math.Max(scale, math.Abs(g))
				}
				for _, j := range rng.Perm(len(p.f64))[:min(4, len(p.f64))] {
					orig := p.f64[j]
					p.f64[j] = orig + eps
					lp, _, err := gr.Run(in, obj)
					if err != nil {
						t.Fatal(err)
					}
					p.f64[j] = orig - eps
					lm, _, err := gr.Run(in, obj)
					if err != nil {
						t.Fatal(err)
					}
					p.f64[j] = orig
					num := (lp - lm) / (2 * eps)
					if d := math.Abs(num - grads[i][j]); d > 1e-6*(1+scale) {
						t.Errorf("%s[%d]: symbolic %.9g, finite difference %.9g (diff %.2g, scale %.2g)", p.name, j, grads[i][j], num, d, scale)
					}
					checked++
				}
			}
			t.Logf("%d parameter elements checked, loss %.6f, aux %.6f", checked, loss, s.AuxLoss)

			// float32 graph on the same weights: same loss and gradients up to float32 rounding.
			g32, err := NewGraph(w, spec)
			if err != nil {
				t.Fatal(err)
			}
			loss32, _, err := g32.Run(in, obj)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(loss32-loss) > 1e-5*(1+math.Abs(loss)) {
				t.Fatalf("float32 loss %.8f, float64 %.8f", loss32, loss)
			}
			for i, p := range g32.Params() {
				if p.Name != gr.params[i].name {
					t.Fatalf("param order differs: %s vs %s", p.Name, gr.params[i].name)
				}
				scale := 0.0
				for _, g := range grads[i] {
					scale = math.Max(scale, math.Abs(g))
				}
				for j, g := range p.Grad {
					if d := math.Abs(float64(g) - grads[i][j]); d > 1e-4*(scale+1e-3) {
						t.Fatalf("%s[%d]: float32 gradient %g, float64 %g", p.Name, j, g, grads[i][j])
					}
				}
			}
		})
	}
}
