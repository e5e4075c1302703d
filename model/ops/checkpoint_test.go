package ops

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ckptBlock is the segment under test, a small residual block with a side output like a MoE layer:
// y = x + RMSNorm(x, g)·Wᵀ (N, D) and stats = RouterStats(x·Wgᵀ, segments, 1) (2, E).
func ckptBlock(x, segments, w, g, wg *G.Node) (y, stats *G.Node, err error) {
	n, err := RMSNorm(x, g, 1e-5)
	if err != nil {
		return nil, nil, err
	}
	lin, err := Linear(n, w)
	if err != nil {
		return nil, nil, err
	}
	if y, err = Add(x, lin); err != nil {
		return nil, nil, err
	}
	z, err := Linear(x, wg)
	if err != nil {
		return nil, nil, err
	}
	stats, err = RouterStats(z, segments, 1)
	return y, stats, err
}

// ckptLoss is a nonlinear loss of the last block's output and every block's stats:
// Σ a_i·y_i² + Σ_l Σ_j b_j·stats_l[j]·(l+1).
func ckptLoss(in [][]float64) (float64, [][]float64, error) {
	var l float64
	grads := make([][]float64, len(in))
	for k, v := range in {
		grads[k] = make([]float64, len(v))
		for i, x := range v {
			a := 0.1 * float64(i%7+1)
			if k == 0 {
				l += a * x * x
				grads[k][i] = 2 * a * x
			} else {
				l += a * float64(k) * x
				grads[k][i] = a * float64(k)
			}
		}
	}
	return l, grads, nil
}

const ckptN, ckptD, ckptE = 6, 4, 3

// ckptInputs: x, then (W, g, Wg) for two blocks, then segments (Int32).
func ckptInputs(rng *rand.Rand) []input {
	ins := []input{floatIn(rng, ckptN, ckptD)}
	for b := 0; b < 2; b++ {
		ins = append(ins, floatIn(rng, ckptD, ckptD), floatIn(rng, ckptD), floatIn(rng, ckptE, ckptD))
	}
	return append(ins, intIn([]int32{1, 1, 2, 2, 2, 0}))
}

// ckptBuild lays out two blocks and the loss, directly or through one Checkpoint shared by both.
func ckptBuild(checkpoint bool) func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
	return func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		x, segs := in[0], in[7]
		block := func(x, segs, w, gn, wg *G.Node) (*G.Node, *G.Node, error) { return ckptBlock(x, segs, w, gn, wg) }
		if checkpoint {
			cp, err := NewCheckpoint("test.block", func(sg *G.ExprGraph) (Segment, error) {
				dt := in[0].Dtype()
				ph := []*G.Node{
					G.NewMatrix(sg, dt, G.WithShape(ckptN, ckptD), G.WithName("x")),
					G.NewVector(sg, G.Int32, G.WithShape(ckptN), G.WithName("segments")),
					G.NewMatrix(sg, dt, G.WithShape(ckptD, ckptD), G.WithName("w")),
					G.NewVector(sg, dt, G.WithShape(ckptD), G.WithName("g")),
					G.NewMatrix(sg, dt, G.WithShape(ckptE, ckptD), G.WithName("wg")),
				}
				y, stats, err := ckptBlock(ph[0], ph[1], ph[2], ph[3], ph[4])
				return Segment{Inputs: ph, Diff: []bool{true, false, true, true, true}, Outputs: G.Nodes{y, stats}}, err
			})
			if err != nil {
				return nil, err
			}
			block = func(x, segs, w, gn, wg *G.Node) (*G.Node, *G.Node, error) {
				outs, err := cp.Apply(nil, x, segs, w, gn, wg)
				if err != nil {
					return nil, nil, err
				}
				return outs[0], outs[1], nil
			}
		}
		var stats G.Nodes
		for b := 0; b < 2; b++ {
			y, s, err := block(x, segs, in[1+3*b], in[2+3*b], in[3+3*b])
			if err != nil {
				return nil, err
			}
			x = y
			stats = append(stats, s)
		}
		return ExternalLoss(ckptLoss, append(G.Nodes{x}, stats...)...)
	}
}

func TestCheckpointGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 1))
	ins := ckptInputs(rng)
	h := newHarness(t, rng, ins, ckptBuild(true))
	h.check(rng, 30)
}

// TestCheckpointMatchesDirect compares the checkpointed blocks with the same ops laid out in the
// graph, in float32: the loss and every gradient must agree bit for bit.
func TestCheckpointMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 2))
	ins := ckptInputs(rng)
	run := func(checkpoint bool) (float32, [][]float32) {
		g := G.NewGraph()
		nodes := make([]*G.Node, len(ins))
		for i, in := range ins {
			var v *tensor.Dense
			if in.ints != nil {
				v = tensor.New(tensor.WithShape(in.shape...), tensor.WithBacking(append([]int32(nil), in.ints...)))
			} else {
				f := make([]float32, len(in.vals))
				for j, x := range in.vals {
					f[j] = float32(x)
				}
				v = tensor.New(tensor.WithShape(in.shape...), tensor.WithBacking(f))
			}
			nodes[i] = G.NewTensor(g, v.Dtype(), len(in.shape), G.WithShape(in.shape...), G.WithName(string(rune('a'+i))), G.WithValue(v))
		}
		loss, err := ckptBuild(checkpoint)(g, nodes)
		if err != nil {
			t.Fatal(err)
		}
		grads, err := G.Grad(loss, nodes[:7]...)
		if err != nil {
			t.Fatal(err)
		}
		m := G.NewTapeMachine(g)
		var out [][]float32
		for rep := 0; rep < 2; rep++ { // the second run must not see stale state
			m.Reset()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			out = out[:0]
			for _, gn := range grads {
				out = append(out, append([]float32(nil), gn.Value().Data().([]float32)...))
			}
		}
		l, err := scalarOf(loss.Value())
		if err != nil {
			t.Fatal(err)
		}
		return float32(l), out
	}
	l1, g1 := run(true)
	l0, g0 := run(false)
	if l1 != l0 {
		t.Fatalf("loss %v checkpointed, %v direct", l1, l0)
	}
	for i := range g0 {
		nonzero := false
		for j := range g0[i] {
			if math.Float32bits(g1[i][j]) != math.Float32bits(g0[i][j]) {
				t.Fatalf("gradient %d element %d: %v checkpointed, %v direct", i, j, g1[i][j], g0[i][j])
			}
			nonzero = nonzero || g0[i][j] != 0
		}
		if !nonzero {
			t.Fatalf("gradient %d is all zero: the test would not see a lost gradient", i)
		}
	}
}

func TestCheckpointRejectsMisuse(t *testing.T) {
	seg := func(sg *G.ExprGraph) (Segment, error) {
		x := G.NewMatrix(sg, G.Float32, G.WithShape(2, 3), G.WithName("x"))
		s := G.NewVector(sg, G.Int32, G.WithShape(2), G.WithName("s"))
		y, err := Add(x, x)
		return Segment{Inputs: G.Nodes{x, s}, Diff: []bool{true, true}, Outputs: G.Nodes{y}}, err
	}
	if _, err := NewCheckpoint("test.seg", seg); err == nil || err.Error() != "test.seg: input 1 (s) is int32 and cannot be differentiated" {
		t.Fatalf("differentiated int input: error %v", err)
	}
	cp, err := NewCheckpoint("test.seg", func(sg *G.ExprGraph) (Segment, error) {
		s, err := seg(sg)
		s.Diff[1] = false
		return s, err
	})
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float32, G.WithShape(3, 3), G.WithName("x"), G.WithInit(G.Zeroes()))
	s := G.NewVector(g, G.Int32, G.WithShape(2), G.WithName("s"), G.WithInit(G.Zeroes()))
	if _, err := cp.Apply(nil, x, s); err == nil || !strings.Contains(err.Error(), "test.seg: input 0 (x) is float32 (3, 3), the segment's x is float32 (2, 3)") {
		t.Fatalf("wrong shape: error %v", err)
	}
	if _, err := cp.Apply(nil, x); err == nil || err.Error() != "test.seg: 1 inputs, the segment has 2" {
		t.Fatalf("wrong arity: error %v", err)
	}
}
