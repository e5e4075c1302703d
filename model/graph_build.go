package model

import (
	"fmt"
	"runtime"
	"sort"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/alignkit/alignkit/model/ops"
)

// build lays out the transformer exactly as transformers' Llama/Mistral/Mixtral forward pass:
//
//	h = embed(tokens)                                         (N, D)
//	per layer: h += o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))), n1 = rmsnorm(h)
//	           h += mlp(n2) or moe(n2),                        n2 = rmsnorm(h)
//	LM head:    logits = head(rmsnorm(h)) (N, V) → weighted target log-probs (N), fused and chunked
//	score head: reward = score(rmsnorm(h[b·T + LastIndex[b]])) (B, 1)
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
		return fmt.Errorf("the score head needs %s, which this model lacks", ScoreKey)
	}
	byName := map[string]*G.Node{}
	param := func(name string) (*G.Node, error) {
		if n, ok := byName[name]; ok {
			return n, nil
		}
		t, err := w.Get(name)
		if err != nil {
			return nil, err
		}
		p := graphParam{name: name}
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
		gr.params = append(gr.params, p)
		return p.node, nil
	}
	var err error
	must := func(n *G.Node, e error) *G.Node {
		if e != nil && err == nil {
			err = e
		}
		return n
	}
	must2 := func(a, b *G.Node, e error) (*G.Node, *G.Node) { return must(a, e), b }

	rope, e := ops.NewRoPE(c.RopeTheta, c.HeadDim)
	if e != nil {
		return e
	}
	attn := ops.AttentionSpec{Batch: B, SeqLen: gr.spec.SeqLen, Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim, Window: c.SlidingWindow}
	// layer lays out decoder layer l on the residual stream h (N, D) and returns the new stream and,
	// for MoE, the layer's router statistics (2, E). Every tensor it reads comes through param, and
	// positions and segments are its arguments, so that gradient checkpointing can lay the same
	// layer out on a sub-graph's placeholders (graph_ckpt.go).
	layer := func(l int, h, positions, segments *G.Node, param func(string) (*G.Node, error)) (out, stats *G.Node) {
		p := func(suffix string) *G.Node { return must(param(LayerKey(l, suffix))) }
		n1 := must(ops.RMSNorm(h, p("input_layernorm.weight"), c.RMSNormEps))                // (N, D)
		q := must(rope.Apply(must(ops.Linear(n1, p("self_attn.q_proj.weight"))), positions)) // (N, H·hd)
		k := must(rope.Apply(must(ops.Linear(n1, p("self_attn.k_proj.weight"))), positions)) // (N, KV·hd)
		v := must(ops.Linear(n1, p("self_attn.v_proj.weight")))                              // (N, KV·hd)
		a := must(ops.Attention(attn, q, k, v, segments))                                    // (N, H·hd)
		h = must(ops.Add(h, must(ops.Linear(a, p("self_attn.o_proj.weight")))))
		n2 := must(ops.RMSNorm(h, p("post_attention_layernorm.weight"), c.RMSNormEps))
		var mlp *G.Node
		if c.IsMoE() {
			z := must(ops.Linear(n2, p("block_sparse_moe.gate.weight"))) // (N, E)
			comb := must(ops.Route(z, c.NumExpertsPerTok))
			stats = must(ops.RouterStats(z, segments, c.NumExpertsPerTok))
			var w1, w3, w2 []*G.Node
			for e := 0; e < c.NumLocalExperts; e++ {
				w1 = append(w1, must(param(ExpertKey(l, e, "w1"))))
				w3 = append(w3, must(param(ExpertKey(l, e, "w3"))))
				w2 = append(w2, must(param(ExpertKey(l, e, "w2"))))
			}
			mlp = must(ops.Experts(n2, comb, w1, w3, w2))
		} else {
			gate := must(ops.Linear(n2, p("mlp.gate_proj.weight"))) // (N, F)
			up := must(ops.Linear(n2, p("mlp.up_proj.weight")))     // (N, F)
			mlp = must(ops.Linear(must(ops.SwiGLU(gate, up)), p("mlp.down_proj.weight")))
		}
		return must(ops.Add(h, mlp)), stats
	}
	h := must(ops.Embedding(must(param(EmbedKey)), tokens)) // (N, D)
	var ckpt *layerCheckpoint
	if gr.spec.Checkpoint && err == nil {
		trainable := func(string) bool { return true } // every layer tensor is a graph param
		if ckpt, err = gr.newLayerCheckpoint(w, layer, trainable, func() error { return err }); err != nil {
			return err
		}
	}
	var routerStats G.Nodes
	for l := 0; l < c.NumHiddenLayers && err == nil; l++ {
		var stats *G.Node
		if ckpt != nil {
			h, stats = must2(ckpt.apply(l, h, positions, segments, param))
		} else {
			h, stats = layer(l, h, positions, segments, param)
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
		headName := LMHeadKey
		if w.Tensors[LMHeadKey] == nil {
			headName = EmbedKey // tied: the embedding node itself, so its gradient sums both uses
		}
		// The fused head never holds the (N, V) logits or their gradient (headChunk rows at a time).
		var lp *ops.LogProbs
		headOut, lp, e = ops.HeadLogProbs(hn, must(param(headName)), targets, weights, headChunk(N, c.VocabSize))
		if e != nil {
			return e
		}
		lp.KeepLogits(gr.spec.KeepLogits)
		gr.lp = lp
	} else {
		last, lt := intVec("last_rows", B)
		gr.lastRows = lt
		hl := must(ops.Embedding(h, last)) // (B, D)
		hn := must(ops.RMSNorm(hl, must(param(FinalNormKey)), c.RMSNormEps))
		headOut = must(ops.Linear(hn, must(param(ScoreKey)))) // (B, 1)
	}
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
		gr.out[i] = Param{Name: p.name, Value: w.Tensors[p.name].Data}
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

func sortParams(ps []graphParam) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].name < ps[j].name })
}
