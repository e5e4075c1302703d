package model

import (
	"fmt"
	"runtime"
	"sort"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/alignkit/alignkit/model/ops"
)

// build lays out the transformer exactly as transformers' Llama/Mistral/Mixtral/Qwen2/Qwen3/Qwen3-MoE
// forward pass (tensor names from Config.TensorKey, the architecture table):
//
//	h = embed(tokens)                                         (N, D)
//	per layer: h += o_proj(attn(rope(qn(q_proj(n1))), rope(kn(k_proj(n1))), v_proj(n1))), n1 = rmsnorm(h)
//	           (projections plus their biases where the architecture has them; qn/kn are Qwen3's
//	           per-head q_norm/k_norm, identity elsewhere; rope with Llama 3's scaled frequencies)
//	           h += mlp(n2) or moe(n2),                        n2 = rmsnorm(h)
//	LM head:    logits = head(rmsnorm(h))/T (N, V) → weighted target log-probs (N), fused and chunked
//	score head: reward = score(rmsnorm(h[b·T + LastIndex[b]])) (B, 1)
//	value head: values = score(rmsnorm(h)) (N, 1), every position
//
// and feeds the head's output (plus each MoE layer's router statistics) to one ExternalLoss node.
func (gr *Graph) build(w *Weights) error {
	c := gr.cfg
	g := gr.g
	N, B := gr.n, gr.spec.Batch
	intVec := func(name string, n int) (*G.Node, *tensor.Dense) {
		t := tensor.New(tensor.WithShape(n), tensor.WithBacking(make([]int32, n)))
		return G.NewVector(g, G.Int32, G.WithShape(n), G.WithName(name), G.WithValue(t)), t
	}
	tokens, tt := intVec("tokens", N)
	positions, pt := intVec("positions", N)
	segments, st := intVec("segments", N)
	gr.tokens, gr.positions, gr.segments = tt, pt, st

	lm := gr.spec.Head == LMHead
	if lm && !c.TieWordEmbeddings && w.Tensors[LMHeadKey] == nil {
		return fmt.Errorf("the LM head needs %s or tied embeddings, and this model has neither", LMHeadKey)
	}
	if !lm && w.Tensors[ScoreKey] == nil {
		return fmt.Errorf("the %v head needs %s, which this model lacks", gr.spec.Head, ScoreKey)
	}
	ad := gr.spec.Adapter
	adOn := ad != nil && !gr.spec.AdaptersOff
	// trainable: without an adapter every tensor held as float32 values is; with one, only the
	// adapter's own tensors (its A/B pairs and modules_to_save copies) are, and only while it is on.
	trainable := func(name string) bool {
		if ad == nil {
			t := w.Tensors[name]
			return t != nil && t.Frozen == nil
		}
		return adOn && ad.Saved[name] != nil
	}
	byName := map[string]*G.Node{}
	node := func(name string, t *Tensor, train bool) (*G.Node, error) {
		if n, ok := byName[name]; ok {
			return n, nil
		}
		if t.Data == nil {
			return nil, fmt.Errorf("tensor %q is held as a frozen %T, and this use needs its values", name, t.Frozen)
		}
		p := graphParam{name: name, data: t.Data}
		if gr.dt == tensor.Float32 {
			p.value = tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(t.Data))
		} else {
			p.f64 = make([]float64, len(t.Data))
			for i, v := range t.Data {
				p.f64[i] = float64(v)
			}
			p.value = tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(p.f64))
		}
		p.node = G.NewTensor(g, gr.dt, len(t.Shape), G.WithShape(t.Shape...), G.WithName(name), G.WithValue(p.value))
		byName[name] = p.node
		if train {
			gr.params = append(gr.params, p)
		}
		return p.node, nil
	}
	param := func(name string) (*G.Node, error) {
		t, err := w.Get(name)
		if err != nil {
			return nil, err
		}
		if adOn && ad.Saved[name] != nil {
			t = ad.Saved[name]
		}
		return node(name, t, trainable(name))
	}
	frozen := map[string]ops.Frozen{}
	frozenOf := func(name string) (ops.Frozen, error) {
		if f, ok := frozen[name]; ok {
			return f, nil
		}
		t, err := w.Get(name)
		if err != nil {
			return nil, err
		}
		f := t.Frozen
		if f == nil {
			if f, err = ops.NewDenseFrozen(t.Data, t.Shape[0], t.Shape[1]); err != nil {
				return nil, fmt.Errorf("tensor %q: %w", name, err)
			}
		}
		frozen[name] = f
		return f, nil
	}
	var dropout float64
	if ad != nil && gr.spec.Grad {
		dropout = ad.Dropout // as PEFT's nn.Dropout: active in training only
	}
	// loraOf is the named weight's adapter pair A (r, in), B (out, r) as trainable nodes, and the
	// spec of its LoRA op: the dropout mask keyed by the weight's name.
	loraOf := func(name string) (a, b *G.Node, spec ops.LoRASpec, err error) {
		l := ad.Layers[name]
		ka, kb := LoRAKeys(name)
		if a, err = node(ka, l.A, true); err != nil {
			return nil, nil, spec, err
		}
		if b, err = node(kb, l.B, true); err != nil {
			return nil, nil, spec, err
		}
		key := dropoutKey(name)
		return a, b, ops.LoRASpec{Scale: ad.Scale(), Dropout: dropout, Seed: &gr.seed, Key: &key}, nil
	}
	// linear is x·Wᵀ for the named weight: a trainable Linear, or a FrozenLinear plus, when the
	// weight is adapted and adapters are on, its LoRA term.
	linear := func(x *G.Node, name string) (*G.Node, error) {
		if trainable(name) {
			wn, err := param(name)
			if err != nil {
				return nil, err
			}
			return ops.Linear(x, wn)
		}
		f, err := frozenOf(name)
		if err != nil {
			return nil, err
		}
		y, err := ops.FrozenLinear(x, f)
		if err != nil || !adOn || ad.Layers[name] == nil {
			return y, err
		}
		a, b, spec, err := loraOf(name)
		if err != nil {
			return nil, err
		}
		d, err := ops.LoRA(x, a, b, spec)
		if err != nil {
			return nil, err
		}
		return ops.Add(y, d)
	}
	var err error
	must := func(n *G.Node, e error) *G.Node {
		if e != nil && err == nil {
			err = e
		}
		return n
	}
	lin := func(x *G.Node, name string) *G.Node { return must(linear(x, name)) }

	rope, e := ops.NewRoPEFreqs(c.InvFreq()) // theta^(-2i/hd), divided by Llama 3's rope_scaling factors
	if e != nil {
		return e
	}
	attn := ops.AttentionSpec{Batch: B, SeqLen: gr.spec.SeqLen, Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim, Window: c.SlidingWindow}
	// layer lays out decoder layer l on the residual stream h (N, D) and returns the new stream and,
	// for MoE, the layer's router statistics (2, E). Every tensor it reads comes through ts, and
	// positions and segments are its arguments, so that gradient checkpointing can lay the same
	// layer out on a sub-graph's placeholders (graph_ckpt.go).
	layer := func(l int, h, positions, segments *G.Node, ts layerTensors) (out, stats *G.Node) {
		param := ts.param
		p := func(r Role) *G.Node { return must(param(c.TensorKey(l, r, 0))) }
		lin := func(x *G.Node, name string) *G.Node { return must(ts.linear(x, name)) }
		// proj is x·Wᵀ (trainable, or frozen plus its LoRA term) plus the role's bias when the
		// architecture has one (Qwen2's q/k/v, attention_bias).
		proj := func(x *G.Node, w, b Role, biased bool) *G.Node {
			y := lin(x, c.TensorKey(l, w, 0))
			if biased {
				y = must(ops.AddBias(y, p(b)))
			}
			return y
		}
		// qkNorm is Qwen3's per-head RMSNorm on q or k, applied after the projection, before RoPE.
		qkNorm := func(x *G.Node, r Role) *G.Node {
			if !c.QKNorm() {
				return x
			}
			return must(ops.RMSNorm(x, p(r), c.RMSNormEps))
		}
		n1 := must(ops.RMSNorm(h, p(RoleAttnNorm), c.RMSNormEps))                                    // (N, D)
		q := must(rope.Apply(qkNorm(proj(n1, RoleQ, RoleQBias, c.QKVBias()), RoleQNorm), positions)) // (N, H·hd)
		k := must(rope.Apply(qkNorm(proj(n1, RoleK, RoleKBias, c.QKVBias()), RoleKNorm), positions)) // (N, KV·hd)
		v := proj(n1, RoleV, RoleVBias, c.QKVBias())                                                 // (N, KV·hd)
		a := must(ops.Attention(attn, q, k, v, segments))                                            // (N, H·hd)
		h = must(ops.Add(h, proj(a, RoleO, RoleOBias, c.OBias())))
		n2 := must(ops.RMSNorm(h, p(RoleMLPNorm), c.RMSNormEps))
		var mlp *G.Node
		if c.MoELayer(l) {
			z := lin(n2, c.TensorKey(l, RoleRouter, 0)) // (N, E)
			comb := must(ops.RouteTopK(z, c.NumExpertsPerTok, c.NormTopK()))
			stats = must(ops.RouterStats(z, segments, c.NumExpertsPerTok))
			mlp = gr.expertMLP(l, n2, comb, lin, param, must)
		} else {
			gate := lin(n2, c.TensorKey(l, RoleGate, 0)) // (N, F)
			up := lin(n2, c.TensorKey(l, RoleUp, 0))     // (N, F)
			mlp = lin(must(ops.SwiGLU(gate, up)), c.TensorKey(l, RoleDown, 0))
		}
		return must(ops.Add(h, mlp)), stats
	}
	outer := layerTensors{param: param, linear: linear}
	h := must(ops.Embedding(must(param(EmbedKey)), tokens)) // (N, D)
	// With checkpointing, layers laid out alike share one template (graph_ckpt.go).
	var env *ckptEnv
	templates := map[string]*layerCheckpoint{}
	var names []string // sorted once for every layer's signature
	if gr.spec.Checkpoint {
		names = sortedKeys(w.Tensors)
		env = &ckptEnv{
			trainable: trainable,
			tensor: func(name string) (*Tensor, error) {
				if adOn && ad.Saved[name] != nil {
					return ad.Saved[name], nil
				}
				return w.Get(name)
			},
			frozenOf: frozenOf,
			lora: func(name string) *LoRALayer {
				if !adOn {
					return nil
				}
				return ad.Layers[name]
			},
			outer: outer,
			outerLoRA: func(weight string) (*G.Node, *G.Node, error) {
				ll := ad.Layers[weight]
				if !adOn || ll == nil {
					return nil, nil, fmt.Errorf("%s has no LoRA pair in this layer, unlike the layer its template was laid out from", weight)
				}
				ka, kb := LoRAKeys(weight)
				a, err := node(ka, ll.A, true)
				if err != nil {
					return nil, nil, err
				}
				b, err := node(kb, ll.B, true)
				return a, b, err
			},
			failed: func() error { return err },
		}
		if ad != nil {
			env.loraSpec = ops.LoRASpec{Scale: ad.Scale(), Dropout: dropout, Seed: &gr.seed}
		}
	}
	var routerStats G.Nodes
	var saves []saveCandidate // what a checkpointed graph may keep for its backward pass (planSaves)
	size := int(gr.dt.Size())
	for l := 0; l < c.NumHiddenLayers && err == nil; l++ {
		var stats *G.Node
		if env != nil {
			sig := gr.layerSignature(l, env, names)
			lc := templates[sig]
			if lc == nil {
				if lc, err = gr.newLayerCheckpoint(l, layer, env); err != nil {
					return err
				}
				templates[sig] = lc
			}
			var app *layerApp
			var e error
			h, stats, app, e = lc.apply(l, h, positions, segments)
			if must(h, e); app != nil {
				saves = append(saves, layerSaves(app, N, size)...)
			}
		} else {
			h, stats = layer(l, h, positions, segments, outer)
		}
		if stats != nil {
			routerStats = append(routerStats, stats)
		}
	}
	if err != nil {
		return err
	}
	var headOut *G.Node
	if lm {
		targets, tgt := intVec("targets", N)
		gr.targets = tgt
		gr.weights = tensor.New(tensor.Of(gr.dt), tensor.WithShape(N))
		weights := G.NewVector(g, gr.dt, G.WithShape(N), G.WithName("weights"), G.WithValue(gr.weights))
		hn := must(ops.RMSNorm(h, must(param(FinalNormKey)), c.RMSNormEps))
		if t := gr.spec.Temperature; t != 0 && t != 1 {
			hn = must(ops.Scale(hn, 1/t)) // head(h)/T = head(h/T): the head is linear
		}
		headName := LMHeadKey
		if w.Tensors[LMHeadKey] == nil {
			headName = EmbedKey // tied: the embedding node itself, so its gradient sums both uses
		}
		var lp *ops.LogProbs
		chunk := headChunk(N, c.VocabSize)
		switch {
		case trainable(headName):
			// The fused head never holds the (N, V) logits or their gradient (headChunk rows at a time).
			headOut, lp, e = ops.HeadLogProbs(hn, must(param(headName)), targets, weights, chunk)
		case adOn && ad.Layers[headName] != nil && gr.spec.unfusedLoRAHead:
			// Tests only: the unfused LoRA head, (N, V) logits and all, as the reference.
			headOut, lp, e = ops.TokenLogProbs(lin(hn, headName), targets, weights)
		default:
			// A frozen head (a LoRA run's, or a quantized base's): fused and chunked too, with no
			// gradient for the weight. A LoRA-adapted one (lm_head among the target modules) keeps
			// its down-projection u = dropout(hn)·Aᵀ (N, r) in the graph, which differentiates it
			// into dA and dhn; the op adds Scale·u·Bᵀ to each chunk's logits and gives du and dB.
			var f ops.Frozen
			if f, e = frozenOf(headName); e == nil && adOn && ad.Layers[headName] != nil {
				var a, b, u *G.Node // A (r, D), B (V, r), u (N, r)
				var spec ops.LoRASpec
				if a, b, spec, e = loraOf(headName); e == nil {
					u, e = ops.LoRADown(hn, a, spec)
				}
				if e == nil {
					headOut, lp, e = ops.FrozenHeadLoRALogProbs(hn, f, ops.HeadLoRA{U: u, B: b, Scale: spec.Scale}, targets, weights, chunk)
				}
			} else if e == nil {
				headOut, lp, e = ops.FrozenHeadLogProbs(hn, f, targets, weights, chunk)
			}
			if e == nil && env != nil {
				saves = append(saves, saveCandidate{bytes: int64(N) * int64(c.VocabSize) * int64(size), in: c.HiddenSize})
			}
		}
		if e != nil {
			return e
		}
		lp.KeepLogits(gr.spec.KeepLogits)
		gr.lp = lp
	} else if gr.spec.Head == ValueHead {
		hn := must(ops.RMSNorm(h, must(param(FinalNormKey)), c.RMSNormEps)) // (N, D)
		headOut = lin(hn, ScoreKey)                                         // (N, 1)
	} else {
		last, lt := intVec("last_rows", B)
		gr.lastRows = lt
		hl := must(ops.Embedding(h, last)) // (B, D)
		hn := must(ops.RMSNorm(hl, must(param(FinalNormKey)), c.RMSNormEps))
		headOut = lin(hn, ScoreKey) // (B, 1)
	}
	budget := int64(ckptSaveBytes)
	switch {
	case !gr.spec.Grad:
		budget = 0 // no backward pass to save work for
	case gr.spec.saveBytes != 0:
		budget = max(0, gr.spec.saveBytes)
	}
	head, total := planSaves(saves, budget)
	if head > 0 {
		gr.lp.SaveBytes(int(head)) // only a frozen LM head is a candidate
	}
	gr.saved = total
	if err != nil {
		return err
	}
	gr.layers, gr.experts = len(routerStats), c.NumLocalExperts
	loss, e := ops.ExternalLoss(gr.lossFn, append(G.Nodes{headOut}, routerStats...)...)
	if e != nil {
		return e
	}
	sortParams(gr.params)
	gr.out = make([]Param, len(gr.params))
	for i, p := range gr.params {
		gr.out[i] = Param{Name: p.name, Value: p.data}
	}
	if gr.spec.Grad && len(gr.params) == 0 {
		return fmt.Errorf("the graph has nothing to train (every weight is frozen and no adapter is on)")
	}
	if gr.spec.Grad {
		wrt := make(G.Nodes, len(gr.params))
		for i, p := range gr.params {
			wrt[i] = p.node
		}
		grads, e := G.Grad(loss, wrt...)
		if e != nil {
			return fmt.Errorf("symbolic gradient: %w", e)
		}
		for i := range gr.params {
			gr.params[i].grad = grads[i] // Run aliases or copies its value into gr.out[i].Grad
		}
	}
	gr.m = G.NewTapeMachine(g)
	// Gorgonia gives the tape machine a finalizer (a no-op without the cuda build tag). The machine
	// reaches the ExternalLoss op, whose closure is gr.lossFn, which reaches gr and so the machine:
	// Go never frees a cycle that holds a finalizer, so every Graph and the weights it binds would
	// live forever (a dropped reference model, say). Clearing the finalizer makes it collectable.
	runtime.SetFinalizer(gr.m, nil)
	return nil
}

// expertMLP is a Mixtral layer's expert MLPs. Trainable experts (no adapter) and experts that an
// adapter leaves as dense frozen matrices run sparsely in one Experts op; experts that are adapted
// or held as non-dense Frozen run densely, each through linear, weighted by MixExperts.
func (gr *Graph) expertMLP(l int, x, comb *G.Node, lin func(*G.Node, string) *G.Node,
	param func(string) (*G.Node, error), must func(*G.Node, error) *G.Node) *G.Node {
	c, ad := gr.cfg, gr.spec.Adapter
	adOn := ad != nil && !gr.spec.AdaptersOff
	dense := false
	for e := 0; e < c.NumLocalExperts; e++ {
		for _, r := range []Role{RoleExpertGate, RoleExpertUp, RoleExpertDown} {
			name := c.TensorKey(l, r, e)
			if t := gr.w.Tensors[name]; t != nil && t.Frozen != nil && t.Data == nil {
				dense = true
			}
			if adOn && (ad.Layers[name] != nil || ad.Saved[name] != nil) {
				dense = true
			}
		}
	}
	if !dense {
		var w1, w3, w2 []*G.Node
		for e := 0; e < c.NumLocalExperts; e++ {
			w1 = append(w1, must(param(c.TensorKey(l, RoleExpertGate, e))))
			w3 = append(w3, must(param(c.TensorKey(l, RoleExpertUp, e))))
			w2 = append(w2, must(param(c.TensorKey(l, RoleExpertDown, e))))
		}
		if ad != nil {
			return must(ops.FrozenExperts(x, comb, w1, w3, w2))
		}
		return must(ops.Experts(x, comb, w1, w3, w2))
	}
	ys := make([]*G.Node, c.NumLocalExperts)
	for e := range ys {
		gate := lin(x, c.TensorKey(l, RoleExpertGate, e)) // (N, F)
		up := lin(x, c.TensorKey(l, RoleExpertUp, e))     // (N, F)
		ys[e] = lin(must(ops.SwiGLU(gate, up)), c.TensorKey(l, RoleExpertDown, e))
	}
	return must(ops.MixExperts(comb, ys))
}

func sortParams(ps []graphParam) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].name < ps[j].name })
}
