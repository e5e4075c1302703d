package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

type tinyOpts struct {
	window int    // Mistral sliding window
	moe    bool   // Mixtral: 4 experts, top 2
	untied bool   // a separate lm_head
	reward bool   // *ForSequenceClassification with score.weight
	layers int    // default 2
	family string // "llama3", "qwen2", "qwen3", "qwen3moe", "qwen3moe-norm": see familyTiny
}

// familyTiny turns c into a model of a family beyond Llama 2/Mistral/Mixtral with its features on:
// Llama 3's rope_scaling (hd 8 and original 256 put the pairs in the high, blended and low bands) with
// attention biases; Qwen2's q/k/v biases; Qwen3's q/k norms (head_dim 8 ≠ D/H = 4) with
// attention_bias; Qwen3-MoE top-3 of 5 experts of width 12, unnormalised with layer 1 dense
// (mlp_only_layers), or renormalised.
func familyTiny(c Config, family string) Config {
	switch family {
	case "":
	case "llama3":
		c.AttentionBias = true
		c.RopeScaling = &RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 256}
	case "qwen2":
		c.ModelType, c.HeadDim = "qwen2", 4
	case "qwen3":
		c.ModelType, c.AttentionBias = "qwen3", true
	case "qwen3moe", "qwen3moe-norm":
		c.ModelType, c.NumLocalExperts, c.NumExpertsPerTok, c.MoEIntermediateSize = "qwen3_moe", 5, 3, 12
		c.RouterAuxLossCoef, c.DecoderSparseStep, c.MLPOnlyLayers = 0.3, 1, []int{1}
		c.NormTopKProb = family == "qwen3moe-norm"
		if c.NormTopKProb {
			c.MLPOnlyLayers = nil
		}
	default:
		panic("unknown family " + family)
	}
	if qwen := map[string]string{"qwen2": "Qwen2", "qwen3": "Qwen3", "qwen3_moe": "Qwen3Moe"}[c.ModelType]; qwen != "" {
		c.Architectures = []string{qwen + c.Architectures[0][len("Llama"):]}
	}
	return c
}

// perturbVectors makes every 1-D tensor (norm gains, biases) non-trivial, so that a gain or bias
// that the graph ignored, or applied in the wrong place, would change the loss.
func perturbVectors(w *Weights, rng *rand.Rand) {
	for _, name := range w.Names() {
		if t := w.Tensors[name]; len(t.Shape) == 1 {
			for i := range t.Data {
				t.Data[i] += float32(0.3 * rng.NormFloat64())
			}
		}
	}
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
	return familyTiny(c, o.family)
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

// valueObjective is a nonlinear function of every position's value, as PPO's clipped value loss
// is: loss = Σ_i c_i·v_i + 0.05·v_i² with v = Values, derivatives c_i + 0.1·v_i returned as
// dReward (one per position).
func valueObjective(s Stats) (float64, []float64, []float64, error) {
	x := s.Values
	d := make([]float64, len(x))
	loss := 0.0
	for i, v := range x {
		c := 0.4 - 0.25*float64(i%3)
		loss += c*v + 0.05*v*v
		d[i] = c + 0.1*v
	}
	return loss, nil, d, nil
}

func (gr *Graph) gradF64(i int) []float64 {
	return gr.params[i].grad.Value().(*tensor.Dense).Data().([]float64)
}

// Whole-graph gradient check in float64 (the graph is dtype-generic): for every parameter tensor,
// a few random elements' dLoss/dParam against central differences with eps 1e-6. The loss includes
// the objective and, for Mixtral, router_aux_loss_coef × the aux loss. The float32 graph on the same
// weights then agrees with the float64 one. Every case runs plain and with gradient checkpointing.
func TestGraphGradientCheck(t *testing.T) {
	type gradCase struct {
		name string
		o    tinyOpts
		head Head
		ckpt bool
		// perToken uses tokenObjective (derivatives per position) instead of smoothObjective.
		perToken bool
		temp     float64 // GraphSpec.Temperature
	}
	var cases []gradCase
	for _, tc := range []gradCase{
		{name: "llama gqa tied", head: LMHead},
		{name: "llama per-token objective", head: LMHead, perToken: true},
		{name: "mixtral per-token objective untied", o: tinyOpts{moe: true, untied: true}, head: LMHead, perToken: true},
		{name: "mistral window untied", o: tinyOpts{window: 3, untied: true}, head: LMHead},
		{name: "mixtral moe aux", o: tinyOpts{moe: true}, head: LMHead},
		{name: "mixtral moe window untied", o: tinyOpts{moe: true, window: 2, untied: true}, head: LMHead},
		{name: "llama reward score head", o: tinyOpts{reward: true}, head: ScoreHead},
		{name: "mixtral reward score head", o: tinyOpts{moe: true, reward: true}, head: ScoreHead},
		{name: "llama3 rope scaling attention bias", o: tinyOpts{family: "llama3"}, head: LMHead},
		{name: "qwen2 biases untied", o: tinyOpts{family: "qwen2", untied: true}, head: LMHead},
		{name: "qwen3 qk norm attention bias", o: tinyOpts{family: "qwen3"}, head: LMHead},
		{name: "qwen3moe top-3 unnormalised dense layer", o: tinyOpts{family: "qwen3moe", untied: true}, head: LMHead},
		{name: "qwen3moe top-3 renormalised", o: tinyOpts{family: "qwen3moe-norm"}, head: LMHead},
		{name: "qwen3 reward score head", o: tinyOpts{family: "qwen3", reward: true}, head: ScoreHead},
		{name: "llama value head", o: tinyOpts{reward: true}, head: ValueHead},
		{name: "llama per-token objective temperature 0.7", head: LMHead, perToken: true, temp: 0.7},
		{name: "mistral temperature 1.3 untied", o: tinyOpts{window: 3, untied: true}, head: LMHead, temp: 1.3},
		{name: "mixtral value head", o: tinyOpts{moe: true, reward: true}, head: ValueHead},
		{name: "qwen3 value head", o: tinyOpts{family: "qwen3", reward: true}, head: ValueHead},
	} {
		cases = append(cases, tc)
		if strings.Contains(tc.name, "dense layer") {
			continue // checkpointing refuses mixed dense and expert layers (TestCheckpointRefusals)
		}
		ck := tc
		ck.name, ck.ckpt = tc.name+" checkpointed", true
		cases = append(cases, ck)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(21, uint64(len(strings.TrimSuffix(tc.name, " checkpointed")))))
			cfg := tinyConfig(tc.o)
			w := InitRandom(cfg, 7, 0.3) // large enough weights for attention and routing to matter
			if tc.o.family != "" {
				perturbVectors(w, rng)
			}
			spec := GraphSpec{Batch: 2, SeqLen: 7, Head: tc.head, Grad: true, Checkpoint: tc.ckpt, Temperature: tc.temp}
			gr, err := newGraph(w, spec, tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			in := packedInputs(rng, cfg.VocabSize)
			obj := smoothObjective(tc.head)
			if tc.perToken {
				obj = tokenObjective
			}
			if tc.head == ValueHead {
				obj = valueObjective
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
