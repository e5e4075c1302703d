package ops

import (
	"fmt"
	"runtime"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Gradient checkpointing. Gorgonia's tape machine keeps the value of every node for the whole run,
// so a graph that holds every layer's ops holds every layer's activations. A Checkpoint instead lays
// out one segment (a decoder layer) on a private sub-graph, built once and shared by every place
// the segment is applied: in the outer graph each application is one node, whose forward pass
// binds its inputs to the sub-graph's placeholders and runs the sub-graph forward only, keeping just
// the outputs; its backward pass runs a second private sub-graph (the segment plus its symbolic
// gradient) on the same inputs and the upstream gradients, and returns the gradients of the
// segment's inputs. The outer graph thus keeps, per application, the segment's input and output and
// the input gradients; the activations inside exist once, in the sub-graphs.
//
// A segment computes exactly what the same ops laid out in the outer graph compute: the same
// kernels run on the same values in the same order, so results agree bit for bit.

// Segment is one sub-graph laid out by a Checkpoint's build function. Inputs are its placeholders
// (input nodes without values, one per outer input, same order, shapes and dtypes); Diff says which
// of them to differentiate (float inputs only). Outputs[0] is the main output; the others are side
// outputs, whose gradients reach the segment only through an ExternalLoss that reads them directly
// (MoE router statistics feeding the aux loss); Apply's SymDiff fails otherwise.
type Segment struct {
	Inputs  G.Nodes
	Diff    []bool
	Outputs G.Nodes
}

// Checkpoint is one segment's pair of sub-graphs and machines. Like the ops, it belongs to one
// graph and one goroutine at a time.
type Checkpoint struct {
	name  string
	build func(g *G.ExprGraph) (Segment, error)
	fwd   segmentRun
	bwd   *segmentRun // built by the first SymDiff
	// In the backward sub-graph: each differentiated input's gradient node, and the upstream
	// gradients of the current backward run (float64, one per output) that its seed loss returns.
	grads G.Nodes
	seeds [][]float64
}

type segmentRun struct {
	g   *G.ExprGraph
	m   G.VM
	seg Segment
}

// NewCheckpoint lays out the forward sub-graph with build, which must lay out the same segment on
// every call (it is called again for the backward sub-graph).
func NewCheckpoint(name string, build func(g *G.ExprGraph) (Segment, error)) (*Checkpoint, error) {
	c := &Checkpoint{name: name, build: build}
	r, err := c.layout()
	if err != nil {
		return nil, err
	}
	c.fwd = r
	return c, nil
}

func (c *Checkpoint) layout() (segmentRun, error) {
	g := G.NewGraph()
	seg, err := c.build(g)
	if err != nil {
		return segmentRun{}, fmt.Errorf("%s: %w", c.name, err)
	}
	if len(seg.Outputs) == 0 || len(seg.Diff) != len(seg.Inputs) {
		return segmentRun{}, fmt.Errorf("%s: segment has %d outputs, %d inputs and %d Diff flags", c.name, len(seg.Outputs), len(seg.Inputs), len(seg.Diff))
	}
	for i, in := range seg.Inputs {
		if seg.Diff[i] && !isFloat(in.Dtype()) {
			return segmentRun{}, fmt.Errorf("%s: input %d (%s) is %v and cannot be differentiated", c.name, i, in.Name(), in.Dtype())
		}
	}
	return segmentRun{g: g, seg: seg}, nil
}

func isFloat(dt tensor.Dtype) bool { return dt == tensor.Float32 || dt == tensor.Float64 }

// machine returns the run's tape machine, compiled on first use.
func (r *segmentRun) machine() G.VM {
	if r.m == nil {
		r.m = G.NewTapeMachine(r.g)
		// The machine's (no-op) finalizer would keep any cycle through it alive; see model.Graph.
		runtime.SetFinalizer(r.m, nil)
	}
	return r.m
}

// run binds vs to the placeholders and runs the sub-graph.
func (r *segmentRun) run(vs []G.Value) error {
	for i, v := range vs {
		if err := G.Let(r.seg.Inputs[i], v); err != nil {
			return fmt.Errorf("binding input %d: %w", i, err)
		}
	}
	m := r.machine()
	m.Reset()
	return m.RunAll()
}

// Apply lays the segment out on the outer nodes ins (one per placeholder) and returns its outputs:
// the main output, then one node per side output. bind, when not nil, runs before every forward
// (backward false) and backward (backward true) run of this application: it points state the
// segment's ops hold outside the graph (the FrozenSlots, their memos and the LoRA dropout keys of a
// checkpointed layer) at this application's.
func (c *Checkpoint) Apply(bind func(backward bool) error, ins ...*G.Node) (G.Nodes, error) {
	seg := c.fwd.seg
	if len(ins) != len(seg.Inputs) {
		return nil, fmt.Errorf("%s: %d inputs, the segment has %d", c.name, len(ins), len(seg.Inputs))
	}
	for i, in := range ins {
		p := seg.Inputs[i]
		if !in.Shape().Eq(p.Shape()) || in.Dtype() != p.Dtype() {
			return nil, fmt.Errorf("%s: input %d (%s) is %v %v, the segment's %s is %v %v", c.name, i, in.Name(), in.Dtype(), in.Shape(), p.Name(), p.Dtype(), p.Shape())
		}
	}
	op := &checkpointOp{base: base{name: c.name}, c: c, bind: bind, sides: make([]buf, len(seg.Outputs)-1)}
	main, err := G.ApplyOp(op, ins...)
	if err != nil {
		return nil, err
	}
	outs := G.Nodes{main}
	for i := range op.sides {
		s := &checkpointSideOp{base: base{name: c.name + ".side"}, fwd: op, i: i, shape: seg.Outputs[1+i].Shape().Clone()}
		n, err := G.ApplyOp(s, main)
		if err != nil {
			return nil, err
		}
		op.sideOps = append(op.sideOps, s)
		outs = append(outs, n)
	}
	return outs, nil
}

// checkpointOp is one application of a segment: the segment's inputs to its main output.
type checkpointOp struct {
	base
	c       *Checkpoint
	bind    func(backward bool) error
	out     buf
	sides   []buf // copies of the side outputs of the last run
	sideOps []*checkpointSideOp
}

func tensorType(n *G.Node) hm.Type {
	if isFloat(n.Dtype()) {
		return floatT(n.Dims())
	}
	return G.TensorType{Dims: n.Dims(), Of: n.Dtype()}
}

func (op *checkpointOp) Arity() int { return len(op.c.fwd.seg.Inputs) }
func (op *checkpointOp) Type() hm.Type {
	seg := op.c.fwd.seg
	ts := make([]hm.Type, 0, len(seg.Inputs)+1)
	for _, in := range seg.Inputs {
		ts = append(ts, tensorType(in))
	}
	return fnType(append(ts, tensorType(seg.Outputs[0]))...)
}
func (op *checkpointOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.c.fwd.seg.Outputs[0].Shape().Clone(), nil
}

// keep copies a sub-graph output's value into b: the sub-graph's buffers are rewritten by the
// next application.
func keep(b *buf, n *G.Node) (*tensor.Dense, error) {
	v, ok := n.Value().(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("output %s is a %T", n.Name(), n.Value())
	}
	t := b.get(v.Dtype(), v.Shape()...)
	switch d := v.Data().(type) {
	case []float32:
		copy(t.Data().([]float32), d)
	case []float64:
		copy(t.Data().([]float64), d)
	default:
		return nil, fmt.Errorf("output %s has dtype %v", n.Name(), v.Dtype())
	}
	return t, nil
}

// bound runs the application's bind hook for a forward or a backward run.
func (op *checkpointOp) bound(backward bool) error {
	if op.bind == nil {
		return nil
	}
	if err := op.bind(backward); err != nil {
		return op.errorf("binding: %v", err)
	}
	return nil
}

func (op *checkpointOp) Do(vs ...G.Value) (G.Value, error) {
	r := &op.c.fwd
	if err := op.bound(false); err != nil {
		return nil, err
	}
	if err := r.run(vs); err != nil {
		return nil, Cause(err)
	}
	for i := range op.sides {
		if _, err := keep(&op.sides[i], r.seg.Outputs[1+i]); err != nil {
			return nil, op.errorf("%v", err)
		}
	}
	out, err := keep(&op.out, r.seg.Outputs[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	return out, nil
}

func (op *checkpointOp) DiffWRT(int) []bool { return op.c.fwd.seg.Diff }

func (op *checkpointOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	c := op.c
	if err := c.layoutBackward(); err != nil {
		return nil, err
	}
	ins := append(append(G.Nodes{}, inputs...), grad)
	for i, s := range op.sideOps {
		if s.grad == nil {
			return nil, op.errorf("side output %d has no gradient: it must feed an ExternalLoss directly", i)
		}
		ins = append(ins, s.grad)
	}
	bw := &checkpointGradOp{base: base{name: c.name + "Grad"}, fwd: op, grads: make([]buf, len(c.grads))}
	first, err := G.ApplyOp(bw, ins...)
	if err != nil {
		return nil, err
	}
	out := make(G.Nodes, len(inputs))
	k := 0
	for i, d := range c.fwd.seg.Diff {
		if !d {
			continue
		}
		if k == 0 {
			out[i] = first
		} else {
			kk := k
			if out[i], err = newPart(c.name+"GradPart", first, inputs[i].Shape(), func() *tensor.Dense { return bw.grads[kk].t }); err != nil {
				return nil, err
			}
		}
		k++
	}
	return out, nil
}

// layoutBackward lays out the backward sub-graph once: the segment, a seed loss whose gradient with
// respect to each output is that output's upstream gradient (c.seeds), and the symbolic gradient.
func (c *Checkpoint) layoutBackward() error {
	if c.bwd != nil {
		return nil
	}
	r, err := c.layout()
	if err != nil {
		return err
	}
	c.seeds = make([][]float64, len(r.seg.Outputs))
	for i, o := range r.seg.Outputs {
		c.seeds[i] = make([]float64, o.Shape().TotalSize())
	}
	seed := func([][]float64) (float64, [][]float64, error) { return 0, c.seeds, nil }
	loss, err := ExternalLoss(seed, r.seg.Outputs...)
	if err != nil {
		return fmt.Errorf("%s: seed loss: %w", c.name, err)
	}
	var wrt G.Nodes
	for i, d := range r.seg.Diff {
		if d {
			wrt = append(wrt, r.seg.Inputs[i])
		}
	}
	if len(wrt) == 0 {
		return fmt.Errorf("%s: no input is differentiated", c.name)
	}
	if c.grads, err = G.Grad(loss, wrt...); err != nil {
		return fmt.Errorf("%s: symbolic gradient: %w", c.name, err)
	}
	c.bwd = &r
	return nil
}

// checkpointSideOp returns side output i of its application's last forward run. Its input, the
// main output, orders it after that run. It is not differentiable itself: an ExternalLoss that reads
// it hands it its gradient node (see ExternalLoss's SymDiff), which the application's backward op
// takes as an input.
type checkpointSideOp struct {
	base
	fwd   *checkpointOp
	i     int
	shape tensor.Shape
	grad  *G.Node
}

func (op *checkpointSideOp) Arity() int { return 1 }
func (op *checkpointSideOp) Type() hm.Type {
	return fnType(floatT(len(op.fwd.c.fwd.seg.Outputs[0].Shape())), floatT(len(op.shape)))
}
func (op *checkpointSideOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *checkpointSideOp) Do(...G.Value) (G.Value, error) {
	t := op.fwd.sides[op.i].t
	if t == nil {
		return nil, op.errorf("the segment has not run")
	}
	return t, nil
}
func (op *checkpointSideOp) DiffWRT(int) []bool { return []bool{false} }
func (op *checkpointSideOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, op.errorf("not differentiable")
}

// checkpointGradOp takes the application's inputs, the main output's upstream gradient and each side
// output's; it re-runs the segment with its gradient and returns the first differentiated input's
// gradient, keeping the others (in input order) for part ops.
type checkpointGradOp struct {
	base
	fwd   *checkpointOp
	grads []buf
}

func (op *checkpointGradOp) Arity() int {
	return len(op.fwd.c.fwd.seg.Inputs) + len(op.fwd.c.fwd.seg.Outputs)
}
func (op *checkpointGradOp) Type() hm.Type {
	seg := op.fwd.c.fwd.seg
	var ts []hm.Type
	for _, in := range seg.Inputs {
		ts = append(ts, tensorType(in))
	}
	for _, o := range seg.Outputs {
		ts = append(ts, tensorType(o))
	}
	return fnType(append(ts, tensorType(op.firstDiff()))...)
}
func (op *checkpointGradOp) firstDiff() *G.Node {
	seg := op.fwd.c.fwd.seg
	for i, d := range seg.Diff {
		if d {
			return seg.Inputs[i]
		}
	}
	return nil
}
func (op *checkpointGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.firstDiff().Shape().Clone(), nil
}

func (op *checkpointGradOp) Do(vs ...G.Value) (G.Value, error) {
	c := op.fwd.c
	n := len(c.bwd.seg.Inputs)
	for i, v := range vs[n:] {
		switch d := v.(*tensor.Dense).Data().(type) {
		case []float32:
			for j, x := range d {
				c.seeds[i][j] = float64(x)
			}
		case []float64:
			copy(c.seeds[i], d)
		default:
			return nil, op.errorf("upstream gradient %d has dtype %v", i, v.Dtype())
		}
	}
	if err := op.fwd.bound(true); err != nil {
		return nil, err
	}
	if err := c.bwd.run(vs[:n]); err != nil {
		return nil, Cause(err)
	}
	for k, g := range c.grads {
		if _, err := keep(&op.grads[k], g); err != nil {
			return nil, op.errorf("%v", err)
		}
	}
	return op.grads[0].t, nil
}
