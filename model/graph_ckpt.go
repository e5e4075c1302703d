package model

import (
	"fmt"
	"strings"

	G "gorgonia.org/gorgonia"

	"github.com/alignkit/alignkit/model/ops"
)

// layerFunc lays out decoder layer l (graph_build.go's layer): the new residual stream and, for
// MoE, the router statistics.
type layerFunc func(l int, h, positions, segments *G.Node, param func(string) (*G.Node, error)) (out, stats *G.Node)

// layerCheckpoint runs every decoder layer through one ops.Checkpoint (GraphSpec.Checkpoint): layer 0
// laid out on a sub-graph whose placeholders are the residual stream, positions, segments and the
// layer's tensors, which each layer binds to its own.
type layerCheckpoint struct {
	cp *ops.Checkpoint
	// suffixes are the layer tensors' names without "model.layers.<l>.", in placeholder order.
	suffixes []string
}

// newLayerCheckpoint lays the template layer out. failed reports an error that layer's ops hit
// (graph_build's must records errors rather than returning them). trainable says, by layer-0 name,
// which tensors get gradients: a frozen one (a LoRA base weight) must not be differentiated.
func (gr *Graph) newLayerCheckpoint(w *Weights, layer layerFunc, trainable func(name string) bool, failed func() error) (*layerCheckpoint, error) {
	N, D := gr.n, gr.cfg.HiddenSize
	prefix := LayerKey(0, "")
	lc := &layerCheckpoint{}
	build := func(g *G.ExprGraph) (ops.Segment, error) {
		h := G.NewMatrix(g, gr.dt, G.WithShape(N, D), G.WithName("h"))
		positions := G.NewVector(g, G.Int32, G.WithShape(N), G.WithName("positions"))
		segments := G.NewVector(g, G.Int32, G.WithShape(N), G.WithName("segments"))
		seg := ops.Segment{Inputs: G.Nodes{h, positions, segments}, Diff: []bool{true, false, false}}
		var suffixes []string
		byName := map[string]*G.Node{}
		param := func(name string) (*G.Node, error) {
			if n, ok := byName[name]; ok {
				return n, nil
			}
			suffix, ok := strings.CutPrefix(name, prefix)
			if !ok {
				return nil, fmt.Errorf("checkpointed layer 0 reads %s, which is not one of its tensors", name)
			}
			t, err := w.Get(name)
			if err != nil {
				return nil, err
			}
			n := G.NewTensor(g, gr.dt, len(t.Shape), G.WithShape(t.Shape...), G.WithName(name))
			byName[name] = n
			seg.Inputs = append(seg.Inputs, n)
			seg.Diff = append(seg.Diff, trainable(name))
			suffixes = append(suffixes, suffix)
			return n, nil
		}
		out, stats := layer(0, h, positions, segments, param)
		if err := failed(); err != nil {
			return seg, err
		}
		seg.Outputs = G.Nodes{out}
		if stats != nil {
			seg.Outputs = append(seg.Outputs, stats)
		}
		if lc.suffixes == nil {
			lc.suffixes = suffixes
		} else if strings.Join(suffixes, ",") != strings.Join(lc.suffixes, ",") {
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

// apply lays out layer l as one checkpointed node: its output stream and, for MoE, its router
// statistics.
func (lc *layerCheckpoint) apply(l int, h, positions, segments *G.Node, param func(string) (*G.Node, error)) (out, stats *G.Node, err error) {
	ins := G.Nodes{h, positions, segments}
	for _, s := range lc.suffixes {
		n, err := param(LayerKey(l, s))
		if err != nil {
			return nil, nil, err
		}
		ins = append(ins, n)
	}
	outs, err := lc.cp.Apply(ins...)
	if err != nil {
		return nil, nil, fmt.Errorf("layer %d: %w", l, err)
	}
	if len(outs) > 1 {
		stats = outs[1]
	}
	return outs[0], stats, nil
}

// headChunk is how many rows the fused LM head computes at a time: about 8 Mi logits (32 MiB in
// float32) per chunk, but at least 64 rows so that each chunk's dW update (V, D) += (V, chunk)·(chunk, D)
// stays a real matrix product.
func headChunk(n, vocab int) int {
	return min(n, max(64, (8<<20)/vocab))
}
