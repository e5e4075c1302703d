package model

import (
	"fmt"
	"math"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/alignkit/alignkit/model/blas"
	"github.com/alignkit/alignkit/model/ops"
)

// Head selects what the training graph computes on top of the transformer.
type Head int

const (
	// LMHead computes each target token's log-probability (causal LM: SFT, DPO, reference log-probs).
	LMHead Head = iota
	// ScoreHead computes score.weight · h at each row's LastIndex (a reward model).
	ScoreHead
	// ValueHead computes score.weight · rmsnorm(h) at every position (B·T values, no LastIndex
	// gather): PPO's value model, a reward model's head read per token (TRL's PolicyAndValueWrapper
	// runs the value model's score on every hidden state).
	ValueHead
)

func (h Head) String() string {
	switch h {
	case LMHead:
		return "lm"
	case ScoreHead:
		return "score"
	case ValueHead:
		return "value"
	}
	return fmt.Sprintf("Head(%d)", int(h))
}

// GraphSpec fixes a graph's shape. A graph is built once per spec and re-run on new inputs.
type GraphSpec struct {
	Batch, SeqLen int
	Head          Head
	// Grad adds the backward pass; false builds a forward-only graph (reference log-probs, eval).
	Grad bool
	// KeepLogits keeps each run's logits (B·T, V) for Logits (LM head only); it costs one (B·T, V)
	// buffer, which the fused head otherwise never holds.
	KeepLogits bool
	// Adapter, when non-nil, freezes the base: its linear weights are read through
	// ops.FrozenLinear and nothing of it is a Param; the adapter's A/B pairs and modules_to_save
	// copies are the Params. Its dropout applies in Grad graphs only.
	Adapter *Adapter
	// AdaptersOff runs the base alone (TRL's reference model for a PEFT policy: the same weights
	// with adapters disabled, no second copy). Such a graph has no Params.
	AdaptersOff bool
	// Checkpoint recomputes each decoder layer's activations in the backward pass (transformers'
	// gradient_checkpointing): the graph keeps only each layer's input and output, at the cost of a
	// second forward pass through every layer. Results are bitwise those of the plain graph.
	// A LoRA graph keeps some of its frozen products' outputs and its frozen head's exponentials
	// for the backward pass within ckptSaveBytes (selective checkpointing; see planSaves).
	Checkpoint bool
	// Temperature divides the LM head's logits (0 or 1: none): the log-probs are those of the
	// distribution sampled at this temperature, as TRL's PPOTrainer computes them for its ratios and
	// KL. Kept logits and MeanLogit are the divided ones.
	Temperature float64
	// saveBytes overrides ckptSaveBytes for tests; a negative value keeps nothing.
	saveBytes int64
	// unfusedLoRAHead lays a LoRA-adapted LM head out unfused, FrozenLinear + LoRA + TokenLogProbs
	// with its (N, V) logits held: the reference that tests check the fused head against. Like
	// saveBytes, only this package's tests set it; no config reaches it.
	unfusedLoRAHead bool
}

// Inputs is one micro-batch. Per-token slices are row-major (B·T): row b's tokens are
// b·T .. b·T+T-1.
type Inputs struct {
	Tokens []int32 // (B·T) input ids
	// Targets (B·T) are the ids whose log-probabilities are summed (LM head); a negative target is
	// ignored, as is any target whose weight is 0.
	Targets []int32
	// Weights (B·T) scale each target's log-probability; nil means 1 for every non-negative target.
	Weights []float32
	// Positions (B·T) are RoPE positions, restarting at 0 for each packed example; nil means 0..T-1
	// in every row.
	Positions []int32
	// Segments (B·T) are block-diagonal attention ids: a token sees earlier tokens of its own id
	// only. 0 marks padding, which sees only itself and is left out of the MoE aux loss. nil means 1
	// everywhere (one example per row).
	Segments []int32
	// LastIndex (B) is, per row, the index within the row whose hidden state the score head reads.
	LastIndex []int32
	// Seed draws the LoRA dropout masks of this run (adapter graphs with Grad); derive it from
	// (seed, step, micro-batch) with DropoutSeed so a resumed run draws the same masks.
	Seed uint64
}

// Stats are a run's per-row (b) results, in float64.
type Stats struct {
	LogProb   []float64 // (B) Σ_t Weights·log p(target) (LM head)
	Tokens    []float64 // (B) Σ_t Weights over counted targets (LM head)
	Correct   []float64 // (B) Σ_t Weights·[argmax = target] (LM head)
	MeanLogit []float64 // (B) mean logit over the counted positions and the whole vocabulary (TRL's logits/chosen)
	Reward    []float64 // (B) score head output
	// Values (B·T) are the value head's outputs, one per position (padding included).
	Values []float64
	// TokenLogProb (B·T) is each position's Weights·log p(target) (LM head; 0 where not counted):
	// the terms LogProb sums, for objectives on individual tokens (GRPO's and PPO's per-token
	// ratios and KL).
	TokenLogProb []float64
	// AuxLoss is the MoE load-balancing loss as transformers' load_balancing_loss_func returns it,
	// NOT multiplied by router_aux_loss_coef; the graph adds RouterAuxLossCoef·AuxLoss to the loss.
	AuxLoss float64
}

// Objective is the trainer's loss: it returns the loss and its derivatives with respect to
// Stats.LogProb (LM head) or Stats.Reward (score head), each of length B; the other may be nil.
// With the value head, dReward holds the derivatives with respect to Stats.Values: B·T values.
// With the LM head, dLogProb may instead have B·T values: the derivatives with respect to
// Stats.TokenLogProb, one per position, for a loss that is not a function of the row sums alone.
// It must not keep s's slices past the call.
type Objective func(s Stats) (loss float64, dLogProb, dReward []float64, err error)

// Param is one trainable tensor.
type Param struct {
	Name  string
	Value []float32 // aliases Weights.Tensors[Name].Data: the graph reads it on every run
	// Grad is dLoss/dValue from the last Run with Grad; overwritten (not accumulated) by each Run. In
	// a float32 graph it is the gradient op's own buffer (no second copy of a model's worth of
	// gradients), nil before the first Run: read it through Params after each Run.
	Grad []float32
}

// Graph is the Gorgonia float32 training graph of one model and one GraphSpec: built once, re-run
// on every micro-batch (its inputs are copied into tensors bound at build time, and the fused ops
// reuse their buffers). It is not safe for concurrent use. In OpenBLAS builds a Run holds
// ops.SerialBLAS, so other OpenBLAS users in the process run single-threaded meanwhile.
type Graph struct {
	cfg  Config
	spec GraphSpec
	dt   tensor.Dtype
	n    int // B·T
	w    *Weights
	seed uint64 // the running Inputs.Seed, read by the LoRA ops

	g *G.ExprGraph
	m G.VM

	tokens, targets, positions, segments, lastRows *tensor.Dense // Int32 inputs
	weights                                        *tensor.Dense // (B·T) float

	params  []graphParam
	out     []Param
	lp      *ops.LogProbs
	layers  int   // MoE layers feeding the aux loss
	saved   int64 // bytes planSaves granted (frozen products' memos and the head's exponentials)
	experts int

	// Per-run state read by the loss closure.
	obj        Objective
	auxTokens  int
	stats      Stats
	loss       float64
	effWeights []float64
}

type graphParam struct {
	name  string
	node  *G.Node
	grad  *G.Node
	value *tensor.Dense
	f64   []float64 // the float64 copy behind value, for float64 test graphs
	data  []float32 // the float32 values the Param aliases
	// own is the graph's copy of the gradient, used when the gradient node's value cannot be
	// aliased: a float64 graph, or a node whose buffer changed between runs.
	own []float32
}

var useBLAS sync.Once

// NewGraph builds the graph for spec. The parameters' values are w's own Data slices: updating
// them in place (an optimizer step) updates the graph; replacing a slice does not.
func NewGraph(w *Weights, spec GraphSpec) (*Graph, error) {
	return newGraph(w, spec, tensor.Float32)
}

func newGraph(w *Weights, spec GraphSpec, dt tensor.Dtype) (*Graph, error) {
	useBLAS.Do(func() { G.Use(blas.Impl()) })
	if w == nil {
		return nil, fmt.Errorf("model: NewGraph: weights are nil")
	}
	if spec.Batch <= 0 || spec.SeqLen <= 0 {
		return nil, fmt.Errorf("model: NewGraph: batch %d and seq_len %d must be positive", spec.Batch, spec.SeqLen)
	}
	if spec.Head != LMHead && spec.Head != ScoreHead && spec.Head != ValueHead {
		return nil, fmt.Errorf("model: NewGraph: unknown head %v", spec.Head)
	}
	if t := spec.Temperature; math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
		return nil, fmt.Errorf("model: NewGraph: temperature %v: want > 0 (or 0: none)", t)
	}
	if err := w.Config.Validate(); err != nil {
		return nil, fmt.Errorf("model: NewGraph: %w", err)
	}
	if err := w.Check("model: NewGraph"); err != nil {
		return nil, err
	}
	if spec.Adapter != nil {
		if err := spec.Adapter.Check(w, "model: NewGraph: adapter"); err != nil {
			return nil, err
		}
	}
	gr := &Graph{cfg: w.Config, spec: spec, dt: dt, n: spec.Batch * spec.SeqLen, w: w, g: G.NewGraph()}
	if err := gr.build(w); err != nil {
		return nil, fmt.Errorf("model: NewGraph: %w", err)
	}
	return gr, nil
}

// Spec returns the graph's shape.
func (gr *Graph) Spec() GraphSpec { return gr.spec }

// Params lists the trainable tensors in name order. Their Grad slices are owned by the graph and
// rewritten by each Run; nil in a forward-only graph.
func (gr *Graph) Params() []Param { return gr.out }

// Logits returns the last run's logits (B·T·V, row-major) when the spec asked to keep them, else nil.
// The slice is reused by the next run.
func (gr *Graph) Logits() []float32 {
	if gr.lp == nil || gr.lp.Logits() == nil || gr.dt != tensor.Float32 {
		return nil
	}
	return gr.lp.Logits().Data().([]float32)
}

// Run binds the inputs, runs the forward pass, calls obj (nil means a loss of 0 plus the aux loss)
// and, when the graph has Grad, the backward pass, leaving dLoss/dParam in Params()[i].Grad. It
// returns the total loss (objective + router_aux_loss_coef·AuxLoss) and the run's Stats. A NaN or
// infinite loss is an error, raised before the backward pass. obj runs on another goroutine than
// Run's caller (Gorgonia's tape runs in its own), during the run.
func (gr *Graph) Run(in Inputs, obj Objective) (float64, Stats, error) {
	if err := gr.bind(in); err != nil {
		return 0, Stats{}, err
	}
	gr.seed = in.Seed
	gr.obj = obj
	gr.stats = Stats{}
	defer func() { gr.obj = nil }()
	defer ops.SerialBLAS()() // held for the whole run rather than toggled op by op
	gr.m.Reset()
	if err := gr.m.RunAll(); err != nil {
		return 0, Stats{}, fmt.Errorf("model: graph run: %w", ops.Cause(err))
	}
	if gr.spec.Grad {
		for i := range gr.params {
			if err := gr.copyGrad(i); err != nil {
				return 0, Stats{}, err
			}
		}
	}
	return gr.loss, gr.stats, nil
}

func (gr *Graph) copyGrad(i int) error {
	p := &gr.params[i]
	v, ok := p.grad.Value().(*tensor.Dense)
	if !ok {
		return fmt.Errorf("model: gradient of %s is a %T", p.name, p.grad.Value())
	}
	switch d := v.Data().(type) {
	case []float32:
		// The fused ops return the same buffer on every run: alias it. Should a node ever hand back
		// another buffer, keep a copy of our own from then on.
		if p.own == nil && (gr.out[i].Grad == nil || &gr.out[i].Grad[0] == &d[0]) {
			gr.out[i].Grad = d
			return nil
		}
		if p.own == nil {
			p.own = make([]float32, len(d))
			gr.out[i].Grad = p.own
		}
		copy(p.own, d)
	case []float64:
		if p.own == nil {
			p.own = make([]float32, len(d))
			gr.out[i].Grad = p.own
		}
		for j, x := range d {
			p.own[j] = float32(x)
		}
	default:
		return fmt.Errorf("model: gradient of %s has dtype %v", p.name, v.Dtype())
	}
	return nil
}

// bind validates the inputs and copies them into the graph's input tensors.
func (gr *Graph) bind(in Inputs) error {
	B, T, N, V := gr.spec.Batch, gr.spec.SeqLen, gr.n, gr.cfg.VocabSize
	checkLen := func(name string, got, want int, optional bool) error {
		if got == 0 && optional {
			return nil
		}
		if got != want {
			return fmt.Errorf("model: Inputs.%s has %d values, want %d (batch %d × seq_len %d)", name, got, want, B, T)
		}
		return nil
	}
	lm := gr.spec.Head == LMHead
	for _, c := range []struct {
		name     string
		got      int
		want     int
		optional bool
	}{
		{"Tokens", len(in.Tokens), N, false},
		{"Targets", len(in.Targets), N, !lm},
		{"Weights", len(in.Weights), N, true},
		{"Positions", len(in.Positions), N, true},
		{"Segments", len(in.Segments), N, true},
	} {
		if err := checkLen(c.name, c.got, c.want, c.optional); err != nil {
			return err
		}
	}
	if gr.spec.Head == ScoreHead && len(in.LastIndex) != B {
		return fmt.Errorf("model: Inputs.LastIndex has %d values, want one per row (%d)", len(in.LastIndex), B)
	}
	tok := gr.tokens.Data().([]int32)
	for i, id := range in.Tokens {
		if id < 0 || int(id) >= V {
			return fmt.Errorf("model: Inputs.Tokens[%d] = %d is outside the vocabulary (0..%d)", i, id, V-1)
		}
	}
	copy(tok, in.Tokens)
	pos := gr.positions.Data().([]int32)
	if in.Positions == nil {
		for i := range pos {
			pos[i] = int32(i % T)
		}
	} else {
		for i, p := range in.Positions {
			if p < 0 || p > ops.MaxRoPEPosition {
				return fmt.Errorf("model: Inputs.Positions[%d] = %d is outside 0..%d", i, p, ops.MaxRoPEPosition)
			}
		}
		copy(pos, in.Positions)
	}
	seg := gr.segments.Data().([]int32)
	if in.Segments == nil {
		for i := range seg {
			seg[i] = 1
		}
	} else {
		copy(seg, in.Segments)
	}
	gr.auxTokens = 0
	for _, s := range seg {
		if s != 0 {
			gr.auxTokens++
		}
	}
	if lm {
		tg := gr.targets.Data().([]int32)
		if len(gr.effWeights) != N {
			gr.effWeights = make([]float64, N)
		}
		for i := 0; i < N; i++ {
			t, w := in.Targets[i], float32(1)
			if in.Weights != nil {
				w = in.Weights[i]
			}
			if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
				return fmt.Errorf("model: Inputs.Weights[%d] = %g is not finite", i, w)
			}
			if t < 0 || w == 0 {
				t, w = 0, 0
			} else if int(t) >= V {
				return fmt.Errorf("model: Inputs.Targets[%d] = %d is outside the vocabulary (0..%d)", i, t, V-1)
			}
			tg[i] = t
			gr.effWeights[i] = float64(w)
		}
		switch d := gr.weights.Data().(type) {
		case []float32:
			for i, w := range gr.effWeights {
				d[i] = float32(w)
			}
		case []float64:
			copy(d, gr.effWeights)
		}
	} else if gr.spec.Head == ScoreHead {
		rows := gr.lastRows.Data().([]int32)
		for b, li := range in.LastIndex {
			if li < 0 || int(li) >= T {
				return fmt.Errorf("model: Inputs.LastIndex[%d] = %d is outside the row (0..%d)", b, li, T-1)
			}
			rows[b] = int32(b*T) + li
		}
	}
	return nil
}

// lossFn is the ExternalLoss function: it turns the head's per-token (or per-row) values into Stats,
// calls the objective, adds the aux loss and returns the gradients for every loss input.
func (gr *Graph) lossFn(in [][]float64) (float64, [][]float64, error) {
	B, T := gr.spec.Batch, gr.spec.SeqLen
	s := Stats{}
	grads := make([][]float64, len(in))
	grads[0] = make([]float64, len(in[0]))
	if gr.spec.Head == LMHead {
		s.LogProb = make([]float64, B)
		s.Tokens = make([]float64, B)
		s.Correct = make([]float64, B)
		s.MeanLogit = make([]float64, B)
		s.TokenLogProb = append([]float64(nil), in[0]...)
		correct, sums := gr.lp.Correct(), gr.lp.LogitSums()
		for b := 0; b < B; b++ {
			var counted float64
			for t := 0; t < T; t++ {
				i := b*T + t
				w := gr.effWeights[i]
				s.LogProb[b] += in[0][i]
				if w == 0 {
					continue
				}
				s.Tokens[b] += w
				s.Correct[b] += w * correct[i]
				s.MeanLogit[b] += sums[i]
				counted++
			}
			if counted > 0 {
				s.MeanLogit[b] /= counted * float64(gr.cfg.VocabSize)
			}
		}
	} else if gr.spec.Head == ValueHead {
		s.Values = append([]float64(nil), in[0]...)
	} else {
		s.Reward = append([]float64(nil), in[0]...)
	}
	if gr.layers > 0 {
		aux, auxGrads := ops.SwitchAuxLoss(in[1:], gr.experts, gr.auxTokens)
		s.AuxLoss = aux
		for l, g := range auxGrads {
			for j := range g {
				g[j] *= gr.cfg.RouterAuxLossCoef
			}
			grads[1+l] = g
		}
	}
	loss := 0.0
	if gr.obj != nil {
		l, dLogProb, dReward, err := gr.obj(s)
		if err != nil {
			return 0, nil, err
		}
		loss = l
		d, name := dLogProb, "dLogProb"
		if gr.spec.Head != LMHead {
			d, name = dReward, "dReward"
		}
		perToken := gr.spec.Head == LMHead && len(d) == B*T && B*T != B
		if gr.spec.Head == ValueHead {
			if d != nil && len(d) != B*T {
				return 0, nil, fmt.Errorf("the objective's dReward has %d values, want %d (one per position of the value head)", len(d), B*T)
			}
			perToken = d != nil
		}
		if d != nil && len(d) != B && !perToken {
			if gr.spec.Head == LMHead {
				return 0, nil, fmt.Errorf("the objective's %s has %d values, want %d (per row) or %d (per token)", name, len(d), B, B*T)
			}
			return 0, nil, fmt.Errorf("the objective's %s has %d values, want %d", name, len(d), B)
		}
		if perToken {
			copy(grads[0], d)
			d = nil
		}
		for b := 0; b < len(d); b++ {
			if gr.spec.Head == ScoreHead {
				grads[0][b] = d[b]
				continue
			}
			for t := 0; t < T; t++ {
				grads[0][b*T+t] = d[b]
			}
		}
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, nil, fmt.Errorf("the objective's loss is %g", loss)
	}
	total := loss + gr.cfg.RouterAuxLossCoef*s.AuxLoss
	if math.IsNaN(total) || math.IsInf(total, 0) {
		return 0, nil, fmt.Errorf("the loss is %g (objective %g, MoE aux %g)", total, loss, s.AuxLoss)
	}
	gr.stats, gr.loss = s, total
	return total, grads, nil
}

// DropoutSeed is the LoRA dropout seed of one micro-batch, from the run's seed, the optimizer step
// and the micro-batch's index within it (train.Batch's Seed, Step and Micro): a pure function, so a
// resumed run draws the masks the uninterrupted run drew.
func DropoutSeed(seed int64, step, micro int) uint64 {
	z := uint64(seed)*0x9e3779b97f4a7c15 ^ uint64(step)*0xd1b54a32d192ed03 ^ uint64(micro)*0x8cb92ba72f3d8dd7
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Forward runs the model (LM head) on one sequence and returns each position's logits: len(tokens)
// rows of vocab_size. It builds a graph per call; trainers build one with NewGraph and re-run it.
func Forward(w *Weights, tokens []int32) ([][]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("model: Forward: no tokens")
	}
	gr, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: len(tokens), Head: LMHead, KeepLogits: true})
	if err != nil {
		return nil, err
	}
	t := len(tokens)
	if _, _, err := gr.Run(Inputs{Tokens: tokens, Targets: make([]int32, t), Weights: make([]float32, t)}, nil); err != nil {
		return nil, err
	}
	v := w.Config.VocabSize
	logits := gr.Logits()
	out := make([][]float32, t)
	for i := range out {
		out[i] = append([]float32(nil), logits[i*v:(i+1)*v]...)
	}
	return out, nil
}
