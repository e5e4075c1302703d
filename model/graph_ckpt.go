package model

import (
	"fmt"
	"sort"
	"strings"

	G "gorgonia.org/gorgonia"

	"github.com/alignkit/alignkit/model/ops"
)

// layerTensors is how a decoder layer reaches its tensors: param gives a tensor's node by name
// (norms, biases, trainable weights), linear gives x·Wᵀ for a named weight (trainable, frozen, or
// frozen plus its LoRA term). The outer graph and a checkpointed layer's template each supply
// their own.
type layerTensors struct {
	param  func(name string) (*G.Node, error)
	linear func(x *G.Node, name string) (*G.Node, error)
}

// layerFunc lays out decoder layer l (graph_build.go's layer): the new residual stream and, for
// MoE, the router statistics.
type layerFunc func(l int, h, positions, segments *G.Node, ts layerTensors) (out, stats *G.Node)

// ckptEnv is what a checkpointed layer's template needs from the graph being built.
type ckptEnv struct {
	// trainable says whether the named tensor gets a gradient (then it is a placeholder the
	// template differentiates); tensor is the tensor the graph reads under a name (an adapter's
	// modules_to_save copy when one is on).
	trainable func(name string) bool
	tensor    func(name string) (*Tensor, error)
	// frozenOf is a frozen weight's product; lora is the weight's LoRA pair, nil when it has none or
	// adapters are off; loraSpec is the adapter's constants (Key is the template's).
	frozenOf func(name string) (ops.Frozen, error)
	lora     func(name string) *LoRALayer
	loraSpec ops.LoRASpec
	// outer gives each application's inputs: the outer graph's nodes for a tensor, and for an
	// adapted weight's LoRA pair.
	outer     layerTensors
	outerLoRA func(weight string) (a, b *G.Node, err error)
	// failed reports an error the layer's ops hit (graph_build's must records errors rather than
	// returning them).
	failed func() error
}

// templateInput is one placeholder of a layer template after h, positions and segments: a layer
// tensor, or the A or B of the LoRA pair on a weight, named by its suffix after
// "model.layers.<l>.".
type templateInput struct {
	suffix string
	kind   inputKind
}

type inputKind int

const (
	inputTensor inputKind = iota
	inputLoRAA
	inputLoRAB
)

// layerCheckpoint runs decoder layers through one ops.Checkpoint (GraphSpec.Checkpoint): one
// layer laid out on a sub-graph whose placeholders are the residual stream, positions, segments,
// the layer's tensors and its LoRA pairs, which each layer binds to its own. Frozen weights are not
// graph inputs: the template reads them through FrozenSlots, and LoRA dropout keys through
// pointers, that each application binds to its layer's before the template runs. Layers laid out
// differently (a dense layer among MoE ones) get templates of their own (layerSignature).
type layerCheckpoint struct {
	cp     *ops.Checkpoint
	env    *ckptEnv
	inputs []templateInput
	// slots and keys by weight suffix: shared by the forward and backward sub-graphs.
	slots map[string]*ops.FrozenSlot
	keys  map[string]*uint64
}

// newLayerCheckpoint lays layer l0 out as the template for every layer with its signature.
func (gr *Graph) newLayerCheckpoint(l0 int, layer layerFunc, env *ckptEnv) (*layerCheckpoint, error) {
	N, D := gr.n, gr.cfg.HiddenSize
	prefix := LayerKey(l0, "")
	lc := &layerCheckpoint{env: env, slots: map[string]*ops.FrozenSlot{}, keys: map[string]*uint64{}}
	built := false
	build := func(g *G.ExprGraph) (ops.Segment, error) {
		h := G.NewMatrix(g, gr.dt, G.WithShape(N, D), G.WithName("h"))
		positions := G.NewVector(g, G.Int32, G.WithShape(N), G.WithName("positions"))
		segments := G.NewVector(g, G.Int32, G.WithShape(N), G.WithName("segments"))
		seg := ops.Segment{Inputs: G.Nodes{h, positions, segments}, Diff: []bool{true, false, false}}
		var inputs []templateInput
		byName := map[string]*G.Node{}
		suffixOf := func(name string) (string, error) {
			s, ok := strings.CutPrefix(name, prefix)
			if !ok {
				return "", fmt.Errorf("checkpointed layer %d reads %s, which is not one of its tensors", l0, name)
			}
			return s, nil
		}
		placeholder := func(name string, in templateInput, t *Tensor, diff bool) *G.Node {
			n := G.NewTensor(g, gr.dt, len(t.Shape), G.WithShape(t.Shape...), G.WithName(name))
			byName[name] = n
			seg.Inputs = append(seg.Inputs, n)
			seg.Diff = append(seg.Diff, diff)
			inputs = append(inputs, in)
			return n
		}
		param := func(name string) (*G.Node, error) {
			if n, ok := byName[name]; ok {
				return n, nil
			}
			suffix, err := suffixOf(name)
			if err != nil {
				return nil, err
			}
			t, err := env.tensor(name)
			if err != nil {
				return nil, err
			}
			return placeholder(name, templateInput{suffix, inputTensor}, t, env.trainable(name)), nil
		}
		linear := func(x *G.Node, name string) (*G.Node, error) {
			if env.trainable(name) {
				w, err := param(name)
				if err != nil {
					return nil, err
				}
				return ops.Linear(x, w)
			}
			suffix, err := suffixOf(name)
			if err != nil {
				return nil, err
			}
			slot := lc.slots[suffix]
			if slot == nil {
				f, err := env.frozenOf(name)
				if err != nil {
					return nil, err
				}
				slot = ops.NewFrozenSlot(f.Shape())
				lc.slots[suffix] = slot
			}
			y, err := ops.FrozenLinear(x, slot)
			ll := env.lora(name)
			if err != nil || ll == nil {
				return y, err
			}
			ka, kb := LoRAKeys(name)
			a := placeholder(ka, templateInput{suffix, inputLoRAA}, ll.A, true)
			b := placeholder(kb, templateInput{suffix, inputLoRAB}, ll.B, true)
			if lc.keys[suffix] == nil {
				lc.keys[suffix] = new(uint64)
			}
			spec := env.loraSpec
			spec.Key = lc.keys[suffix]
			d, err := ops.LoRA(x, a, b, spec)
			if err != nil {
				return nil, err
			}
			return ops.Add(y, d)
		}
		out, stats := layer(l0, h, positions, segments, layerTensors{param: param, linear: linear})
		if err := env.failed(); err != nil {
			return seg, err
		}
		seg.Outputs = G.Nodes{out}
		if stats != nil {
			seg.Outputs = append(seg.Outputs, stats)
		}
		if !built {
			lc.inputs, built = inputs, true
		} else if fmt.Sprint(inputs) != fmt.Sprint(lc.inputs) {
			return seg, fmt.Errorf("the layer read its tensors in another order the second time")
		}
		return seg, nil
	}
	cp, err := ops.NewCheckpoint("model.CheckpointedLayer", build)
	if err != nil {
		return nil, fmt.Errorf("gradient checkpointing: %w", err)
	}
	lc.cp = cp
	return lc, nil
}

// layerApp is one checkpointed layer's application: the memos its frozen products keep between the
// forward and the backward run, by weight suffix (planSaves fills it once every layer is laid out).
type layerApp struct {
	l     int
	lc    *layerCheckpoint
	memos map[string]*ops.FrozenMemo
}

// apply lays out layer l as one checkpointed node: its output stream and, for MoE, its router
// statistics.
func (lc *layerCheckpoint) apply(l int, h, positions, segments *G.Node) (out, stats *G.Node, app *layerApp, err error) {
	env := lc.env
	ins := G.Nodes{h, positions, segments}
	for _, in := range lc.inputs {
		name := LayerKey(l, in.suffix)
		var n *G.Node
		switch in.kind {
		case inputTensor:
			n, err = env.outer.param(name)
		case inputLoRAA:
			n, _, err = env.outerLoRA(name)
		case inputLoRAB:
			_, n, err = env.outerLoRA(name)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		ins = append(ins, n)
	}
	// What bind points the template's slots and keys at: this layer's frozen weights and keys.
	type binding struct {
		slot   *ops.FrozenSlot
		w      ops.Frozen
		suffix string
	}
	var binds []binding
	for suffix, slot := range lc.slots {
		w, err := env.frozenOf(LayerKey(l, suffix)) // its shape is the slot's: the signature says so
		if err != nil {
			return nil, nil, nil, err
		}
		binds = append(binds, binding{slot, w, suffix})
	}
	app = &layerApp{l: l, lc: lc, memos: map[string]*ops.FrozenMemo{}}
	keys := map[*uint64]uint64{}
	for suffix, k := range lc.keys {
		keys[k] = dropoutKey(LayerKey(l, suffix))
	}
	bind := func(backward bool) error {
		for _, b := range binds {
			// The forward run fills the memo, the backward run's recomputation reads it back.
			if err := b.slot.BindMemo(b.w, app.memos[b.suffix], backward); err != nil {
				return err
			}
		}
		for k, v := range keys {
			*k = v
		}
		return nil
	}
	outs, err := lc.cp.Apply(bind, ins...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("layer %d: %w", l, err)
	}
	if len(outs) > 1 {
		stats = outs[1]
	}
	return outs[0], stats, app, nil
}

// ckptSaveBytes is what a checkpointed LoRA (or QLoRA) graph may spend on keeping forward results
// that its backward pass would otherwise compute again: frozen products' outputs (ops.FrozenMemo)
// and the fused frozen head's exponentials (ops.LogProbs.SaveBytes). It is torch's selective
// activation checkpointing applied to what dominates a LoRA step, the frozen products: every
// value kept saves the same arithmetic in the backward pass bit for bit. 1 GiB keeps the Llama 3.2
// 1B LoRA step at 1×1024 (a 525 MB head, every down_proj output, five layers' other products)
// under its 6 GB target.
const ckptSaveBytes = 1 << 30

// saveCandidate is one result planSaves may keep: a layer's frozen product (app and suffix) or the
// frozen head's exponentials (app nil); bytes is its memory, in the width of the product's input
// (the flops it saves are 2·in per value kept).
type saveCandidate struct {
	app    *layerApp
	suffix string
	bytes  int64
	in     int
}

// planSaves spends budget bytes on the candidates that save the most arithmetic per byte first (the
// widest inputs: down_proj's, whose output the backward pass does not even need; then the head's
// and the other products, 2·hidden flops a value), the head before layers on a tie, layers in
// order; what does not fit is recomputed. It returns the bytes granted to the head (0 if none) and
// in all.
func planSaves(cands []saveCandidate, budget int64) (head, total int64) {
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.in != b.in {
			return a.in > b.in
		}
		return a.app == nil && b.app != nil
	})
	for _, c := range cands {
		if c.bytes > budget {
			continue
		}
		budget -= c.bytes
		total += c.bytes
		if c.app == nil {
			head = c.bytes
		} else {
			c.app.memos[c.suffix] = new(ops.FrozenMemo)
		}
	}
	return head, total
}

// layerSaves lists app's frozen products as candidates: N rows of out values each, dt-sized.
func layerSaves(app *layerApp, n, size int) []saveCandidate {
	var cs []saveCandidate
	for _, suffix := range sortedKeys(app.lc.slots) {
		out, in := app.lc.slots[suffix].Shape()
		cs = append(cs, saveCandidate{app: app, suffix: suffix, bytes: int64(n) * int64(out) * int64(size), in: in})
	}
	return cs
}

// layerSignature says how layer l is laid out: dense or MoE, and for each of its tensors the
// shape, whether it is trained, held only as a Frozen, or carries a LoRA pair (and its rank).
// Layers with the same signature share a checkpoint template. names are the model's tensor names,
// sorted.
func (gr *Graph) layerSignature(l int, env *ckptEnv, names []string) string {
	c, w := gr.cfg, gr.w
	prefix := LayerKey(l, "")
	var b strings.Builder
	fmt.Fprintf(&b, "moe=%v", c.MoELayer(l))
	for _, name := range names {
		suffix, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		t := w.Tensors[name]
		fmt.Fprintf(&b, ";%s%v train=%v frozen=%v", suffix, t.Shape, env.trainable(name), t.Frozen != nil && t.Data == nil)
		if ll := env.lora(name); ll != nil {
			fmt.Fprintf(&b, " lora=%v", ll.A.Shape)
		}
	}
	return b.String()
}

// headChunk is how many rows the fused LM head computes at a time: about 32 Mi logits (128 MiB in
// float32) per chunk, but at least 64 rows so that each chunk's dW update (V, D) += (V, chunk)·(chunk, D)
// stays a real matrix product. Every chunk streams the whole (V, D) head through sgemm's packing:
// at Llama 3's vocabulary 8 Mi logits were 65 rows, and the head's products ran at half speed.
func headChunk(n, vocab int) int {
	return min(n, max(64, (32<<20)/vocab))
}
