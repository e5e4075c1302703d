package infer

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"gonum.org/v1/gonum/blas/gonum"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/blas"
	"github.com/alignkit/alignkit/model/ops"
)

// Engine runs a model's forward pass. It only reads the weights it was built from, so it is safe for
// concurrent use; mutating those weights while the Engine is in use is a data race.
type Engine struct {
	cfg    model.Config
	bl     blas.Implementation
	pureGo bool // bl is gonum's: matmulT tiles and parallelises products itself

	D, H, KV, HD, F, V, E, K int  // hidden, query heads, KV heads, head_dim, SwiGLU width, vocab, experts, top-k
	FE                       int  // each expert's SwiGLU width (Qwen3-MoE's moe_intermediate_size; F for Mixtral)
	normTopK                 bool // renormalise the top-k routing weights (Mixtral; Qwen3-MoE's norm_topk_prob)
	window                   int  // Mistral sliding window W; 0 is full causal attention

	embed     []float32 // (V, D)
	head      weight    // (V, D): lm_head or the tied embedding; none for a reward model
	score     []float32 // (D): score.weight of a reward model; nil otherwise
	finalNorm []float32 // (D)
	layers    []layerWeights
	invFreq   []float64 // (HD/2): theta^(-2i/HD) / rope_scaling factor

	workers int
}

// loraPair is one adapted weight's A (r, in) and B (out, r) with the adapter's scale.
type loraPair struct {
	a, b  []float32
	r     int
	scale float32
}

// weight is a linear layer's (out, in) matrix: dense float32, or frozen storage (model/quant) that
// the products go through when the tensor's Data is nil; lora, when set, is the adapter pair added
// to its products (NewAdapted).
type weight struct {
	d    []float32
	f    ops.Frozen
	lora *loraPair
}

type layerWeights struct {
	attnNorm, mlpNorm []float32 // (D)
	wq                weight    // (H*HD, D)
	wk, wv            weight    // (KV*HD, D)
	wo                weight    // (D, H*HD)
	bq, bk, bv, bo    []float32 // (H*HD), (KV*HD), (KV*HD), (D): projection biases; nil when absent
	qNorm, kNorm      []float32 // (HD): Qwen3's per-head q/k RMSNorm gains; nil when absent

	gate, up weight // (F, D), dense SwiGLU
	down     weight // (D, F)

	router  weight // (E, D); none for a dense layer
	experts []expertWeights
}

type expertWeights struct {
	w1, w3 weight // (FE, D): gate and up
	w2     weight // (D, FE): down
}

// New builds an engine over w after checking that every tensor the configuration implies is present
// with the right shape.
func New(w *model.Weights) (*Engine, error) { return NewAdapted(w, nil) }

// NewAdapted builds an engine that runs w with a LoRA adapter unmerged, as PEFT's forward does:
// every adapted projection adds scale·(x·Aᵀ)·Bᵀ to x·Wᵀ, and modules_to_save tensors replace the
// base's. ad nil is New. The adapter is checked against w.
func NewAdapted(w *model.Weights, ad *model.Adapter) (*Engine, error) {
	if w == nil {
		return nil, errors.New("infer: weights are nil")
	}
	if ad != nil {
		if err := ad.Check(w, "infer: adapter"); err != nil {
			return nil, err
		}
		// modules_to_save: the trained copies stand in for the base's tensors.
		merged := &model.Weights{Config: w.Config, Tensors: make(map[string]*model.Tensor, len(w.Tensors))}
		for name, t := range w.Tensors {
			merged.Tensors[name] = t
		}
		for name, t := range ad.Saved {
			merged.Tensors[name] = t
		}
		w = merged
	}
	c := w.Config
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("infer: invalid model config: %w", err)
	}
	if err := w.Check("weights"); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	e := &Engine{
		cfg: c, bl: blas.Impl(),
		D: c.HiddenSize, H: c.NumAttentionHeads, KV: c.NumKeyValueHeads, HD: c.HeadDim,
		F: c.IntermediateSize, V: c.VocabSize, E: c.NumLocalExperts, K: c.NumExpertsPerTok,
		FE: c.ExpertIntermediateSize(), normTopK: c.NormTopK(),
		window:  c.SlidingWindow,
		workers: max(1, runtime.GOMAXPROCS(0)),
	}
	// Check proved presence and shape. Only linear weights may be frozen: the embedding is read by
	// row and the norms and score head element by element.
	var frozen string
	get := func(name string) []float32 {
		if w.Tensors[name].Frozen != nil && frozen == "" {
			frozen = name
		}
		return w.Tensors[name].Data
	}
	// The adapter's pairs by the name of the weight they adapt.
	pairs := map[string]*loraPair{}
	if ad != nil {
		for name, l := range ad.Layers {
			pairs[name] = &loraPair{a: l.A.Data, b: l.B.Data, r: ad.R, scale: float32(ad.Scale())}
		}
	}
	lin := func(name string) weight {
		t := w.Tensors[name]
		p := pairs[name]
		delete(pairs, name)
		return weight{t.Data, t.Frozen, p}
	}
	_, e.pureGo = e.bl.(gonum.Implementation)
	e.embed = get(model.EmbedKey)
	e.finalNorm = get(model.FinalNormKey)
	if c.IsRewardModel() {
		e.score = get(model.ScoreKey)
	} else {
		t := w.OutputHead()
		e.head = weight{d: t.Data, f: t.Frozen}
		if _, ok := w.Tensors[model.LMHeadKey]; ok {
			e.head = lin(model.LMHeadKey)
		}
	}
	e.layers = make([]layerWeights, c.NumHiddenLayers)
	for l := range e.layers {
		L := &e.layers[l]
		lk := func(r model.Role) []float32 { return get(c.TensorKey(l, r, 0)) }
		lw := func(r model.Role) weight { return lin(c.TensorKey(l, r, 0)) }
		L.attnNorm, L.mlpNorm = lk(model.RoleAttnNorm), lk(model.RoleMLPNorm)
		L.wq, L.wk, L.wv, L.wo = lw(model.RoleQ), lw(model.RoleK), lw(model.RoleV), lw(model.RoleO)
		if c.QKVBias() {
			L.bq, L.bk, L.bv = lk(model.RoleQBias), lk(model.RoleKBias), lk(model.RoleVBias)
		}
		if c.OBias() {
			L.bo = lk(model.RoleOBias)
		}
		if c.QKNorm() {
			L.qNorm, L.kNorm = lk(model.RoleQNorm), lk(model.RoleKNorm)
		}
		if c.MoELayer(l) {
			L.router = lw(model.RoleRouter)
			L.experts = make([]expertWeights, e.E)
			for x := range L.experts {
				L.experts[x] = expertWeights{
					w1: lin(c.TensorKey(l, model.RoleExpertGate, x)),
					w2: lin(c.TensorKey(l, model.RoleExpertDown, x)),
					w3: lin(c.TensorKey(l, model.RoleExpertUp, x)),
				}
			}
		} else {
			L.gate, L.up, L.down = lw(model.RoleGate), lw(model.RoleUp), lw(model.RoleDown)
		}
	}
	if frozen != "" {
		return nil, fmt.Errorf("infer: tensor %q is frozen, but only linear weights can be (it is not multiplied)", frozen)
	}
	for name := range pairs {
		return nil, fmt.Errorf("infer: adapter: %s is not a linear weight the engine multiplies", name)
	}
	// transformers: inv_freq = 1 / theta^(arange(0, hd, 2) / hd), divided by Llama 3's rope_scaling
	// factors; computed in float64 here, which is what the float64 reference does and what float32
	// rounds to at small positions.
	e.invFreq = c.InvFreq()
	return e, nil
}

// Config returns the model configuration the engine runs.
func (e *Engine) Config() model.Config { return e.cfg }

// checkTokens reports the first token id outside the vocabulary; offset is added to the index so that
// session errors name the absolute position.
func (e *Engine) checkTokens(tokens []int32, offset int) error {
	for i, t := range tokens {
		if t < 0 || int(t) >= e.V {
			return fmt.Errorf("token id %d at position %d is outside the vocabulary (%d)", t, i+offset, e.V)
		}
	}
	return nil
}

// checkSequence validates a whole, cache-free sequence.
func (e *Engine) checkSequence(tokens []int32) error {
	if len(tokens) == 0 {
		return errors.New("the token sequence is empty")
	}
	if len(tokens) > e.cfg.MaxPositionEmbeddings {
		return fmt.Errorf("sequence of %d tokens is longer than max_position_embeddings (%d)", len(tokens), e.cfg.MaxPositionEmbeddings)
	}
	return e.checkTokens(tokens, 0)
}

func (e *Engine) needLMHead() error {
	if e.head.d == nil && e.head.f == nil {
		return errors.New("a reward model (score head) has no language-model head: use Score")
	}
	return nil
}

// Forward runs the full sequence without a cache and returns the logits at every position, (T, V).
// positions gives each token's RoPE position (nil means 0..T-1); the causal mask and sliding window
// follow the order of tokens, as transformers' position_ids do.
func (e *Engine) Forward(tokens []int32, positions []int32) ([][]float32, error) {
	if err := e.needLMHead(); err != nil {
		return nil, err
	}
	if err := e.checkSequence(tokens); err != nil {
		return nil, err
	}
	pos, err := e.positions(len(tokens), positions)
	if err != nil {
		return nil, err
	}
	T := len(tokens)
	ws := &work{}
	all := make([]int, T)
	for i := range all {
		all[i] = i
	}
	h := e.run(ws, tokens, pos, []seg{{row0: 0, n: T}}, all) // (T, D)
	out := e.logits(h, T)
	for t, row := range out {
		if err := checkLogits(row); err != nil {
			return nil, fmt.Errorf("position %d: %w", t, err)
		}
	}
	return out, nil
}

// Hidden returns the final-normed hidden states, (T, D): the input of the LM or score head.
func (e *Engine) Hidden(tokens []int32) ([][]float32, error) {
	if err := e.checkSequence(tokens); err != nil {
		return nil, err
	}
	T := len(tokens)
	pos, _ := e.positions(T, nil)
	all := make([]int, T)
	for i := range all {
		all[i] = i
	}
	h := e.run(&work{}, tokens, pos, []seg{{row0: 0, n: T}}, all)
	out := make([][]float32, T)
	buf := make([]float32, T*e.D)
	copy(buf, h)
	for i := range out {
		out[i] = buf[i*e.D : (i+1)*e.D : (i+1)*e.D]
	}
	return out, nil
}

// Score returns a reward model's scalar for the sequence: score.weight · h_last, the final-normed hidden
// state of the last token (the sequence is taken to be unpadded).
func (e *Engine) Score(tokens []int32) (float32, error) {
	s, err := e.ScoreBatch([][]int32{tokens})
	if err != nil {
		return 0, err
	}
	return s[0], nil
}

// maxBatchRows bounds the rows of one cache-free batched pass, so that activations stay small.
const maxBatchRows = 2048

// ScoreBatch scores several sequences, packing them into shared passes (each attends only to itself).
func (e *Engine) ScoreBatch(seqs [][]int32) ([]float32, error) {
	if e.score == nil {
		return nil, errors.New("the model is not a reward model (it has no score.weight)")
	}
	for i, s := range seqs {
		if err := e.checkSequence(s); err != nil {
			return nil, fmt.Errorf("sequence %d: %w", i, err)
		}
	}
	out := make([]float32, len(seqs))
	ws := &work{}
	for i := 0; i < len(seqs); {
		var toks, pos []int32
		var segs []seg
		var last []int
		j := i
		for ; j < len(seqs) && (j == i || len(toks)+len(seqs[j]) <= maxBatchRows); j++ {
			segs = append(segs, seg{row0: len(toks), n: len(seqs[j])})
			for p := range seqs[j] {
				pos = append(pos, int32(p))
			}
			toks = append(toks, seqs[j]...)
			last = append(last, len(toks)-1)
		}
		h := e.run(ws, toks, pos, segs, last) // (len(last), D)
		for r := range last {
			var acc float64
			for d, w := range e.score {
				acc += float64(w) * float64(h[r*e.D+d])
			}
			if math.IsNaN(acc) || math.IsInf(float64(float32(acc)), 0) {
				return nil, fmt.Errorf("sequence %d: the reward model's score is %v (its weights or activations overflowed)", i+r, float32(acc))
			}
			out[i+r] = float32(acc)
		}
		i = j
	}
	return out, nil
}

func (e *Engine) positions(T int, given []int32) ([]int32, error) {
	if given == nil {
		pos := make([]int32, T)
		for i := range pos {
			pos[i] = int32(i)
		}
		return pos, nil
	}
	if len(given) != T {
		return nil, fmt.Errorf("positions has %d entries for %d tokens", len(given), T)
	}
	for i, p := range given {
		if p < 0 || int(p) >= e.cfg.MaxPositionEmbeddings {
			return nil, fmt.Errorf("position %d at index %d is outside 0..%d (max_position_embeddings)", p, i, e.cfg.MaxPositionEmbeddings-1)
		}
	}
	return given, nil
}

// logits applies the output head to R final-normed rows h (R, D) and returns (R, V) as row slices of
// one fresh backing array.
func (e *Engine) logits(h []float32, R int) [][]float32 {
	return e.logitsInto(make([]float32, R*e.V), h, R)
}

// logitsInto is logits with buf (at least R·V) as the backing array.
func (e *Engine) logitsInto(buf, h []float32, R int) [][]float32 {
	e.matmulT(h, R, e.D, e.head, e.V, buf)
	out := make([][]float32, R)
	for i := range out {
		out[i] = buf[i*e.V : (i+1)*e.V : (i+1)*e.V]
	}
	return out
}

// checkLogits reports the first NaN or Inf in a row of logits: sampling or scoring from it would
// silently pick token 0 or give NaN log-probabilities.
func checkLogits(row []float32) error {
	for v, x := range row {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("the model produced a non-finite logit (%v for token %d): its weights or activations overflowed", x, v)
		}
	}
	return nil
}

// LogSoftmax returns log p over the vocabulary, computed in float64 from float32 logits.
func LogSoftmax(logits []float32) []float64 {
	out := make([]float64, len(logits))
	if len(logits) == 0 {
		return out
	}
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v) - m)
	}
	lse := m + math.Log(s)
	for i, v := range logits {
		out[i] = float64(v) - lse
	}
	return out
}
