package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// headCase is one HeadLogProbs test shape: n rows of width d, vocabulary v, chunk rows per chunk.
type headCase struct {
	n, d, v, chunk int
	targets        []int32
	weights        []float64
	keep           bool
}

func headCases() []headCase {
	return []headCase{
		{n: 1, d: 3, v: 1, chunk: 1, targets: []int32{0}, weights: []float64{1}},
		// Ignored rows between counted ones: chunks gather non-consecutive rows.
		{n: 7, d: 5, v: 11, chunk: 2, targets: []int32{3, -1, 10, 0, 2, 7, 7}, weights: []float64{1, 1, 0.5, 0, 2, -0.75, 1}},
		{n: 7, d: 5, v: 11, chunk: 3, targets: []int32{3, -1, 10, 0, 2, 7, 7}, weights: []float64{1, 1, 0.5, 0, 2, -0.75, 1}, keep: true},
		{n: 6, d: 4, v: 9, chunk: 100, targets: []int32{-1, -1, 8, 1, -1, 4}, weights: []float64{1, 1, 1.5, 1, 1, 0.25}},
		{n: 5, d: 4, v: 9, chunk: 2, targets: []int32{-1, 3, 1, 2, 0}, weights: []float64{0, 0, 0, 0, 0}}, // nothing counted
		{n: 130, d: 6, v: 300, chunk: 17, targets: manyTargets(130, 300), weights: manyWeights(130)},      // splits over workers
	}
}

func headInputs(rng *rand.Rand, tc headCase) []input {
	ins := []input{floatIn(rng, tc.n, tc.d), floatIn(rng, tc.v, tc.d), intIn(tc.targets), {shape: []int{tc.n}, vals: tc.weights}}
	for i := range ins[1].vals {
		ins[1].vals[i] *= 2
	}
	return ins
}

// TestHeadLogProbsGradient checks dh and dW against float64 central differences, and the outputs
// and side outputs against TokenLogProbs on the explicit logits h·Wᵀ.
func TestHeadLogProbsGradient(t *testing.T) {
	for ci, tc := range headCases() {
		for _, recompute := range []bool{false, true} {
			t.Run(fmt.Sprintf("case%d recompute=%v", ci, recompute), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(21, uint64(ci)))
				ins := headInputs(rng, tc)
				var lp *LogProbs
				build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					out, l, err := HeadLogProbs(in[0], in[1], in[2], in[3], tc.chunk)
					if err == nil {
						noSave(l, recompute)
					}
					if err == nil && lp == nil {
						lp = l
						lp.KeepLogits(tc.keep)
					}
					return out, err
				}
				h := newHarness(t, rng, ins, build)
				h.check(rng, 60)
				got, _, err := h.run()
				if err != nil {
					t.Fatal(err)
				}
				// Reference: the logits by hand, then w·(x_t − log Σ exp x), argmax and Σ x per row.
				want := make([]float64, tc.n)
				logits := make([]float64, tc.n*tc.v)
				for i := 0; i < tc.n; i++ {
					for j := 0; j < tc.v; j++ {
						for k := 0; k < tc.d; k++ {
							logits[i*tc.v+j] += ins[0].vals[i*tc.d+k] * ins[1].vals[j*tc.d+k]
						}
					}
				}
				for i, tg := range tc.targets {
					wantCorrect, wantSum := 0.0, 0.0
					if tc.weights[i] != 0 && tg >= 0 {
						row := logits[i*tc.v : (i+1)*tc.v]
						var z float64
						arg := 0
						for j, x := range row {
							z += math.Exp(x)
							wantSum += x
							if x > row[arg] {
								arg = j
							}
						}
						want[i] = tc.weights[i] * (row[tg] - math.Log(z))
						if arg == int(tg) {
							wantCorrect = 1
						}
					}
					if lp.Correct()[i] != wantCorrect || math.Abs(lp.LogitSums()[i]-wantSum) > 1e-9 {
						t.Fatalf("row %d: correct %g (want %g), logit sum %g (want %g)", i, lp.Correct()[i], wantCorrect, lp.LogitSums()[i], wantSum)
					}
				}
				near(t, "float64 logprobs", got, want, 1e-12)
				if tc.keep {
					near(t, "kept logits", lp.Logits().Data().([]float64), logits, 1e-12)
				} else if lp.Logits() != nil {
					t.Fatal("logits kept without KeepLogits")
				}
				near(t, "float32 logprobs", runF32(t, ins, build), want, 1e-5)
			})
		}
	}
}

// noSave makes a head op recompute its logits in the backward pass, when on, instead of reading
// the exponentials its forward pass saved.
func noSave(lp *LogProbs, on bool) {
	if on {
		lp.op.(*headLogProbsOp).saveBytes = 0
	}
}

// TestHeadLogProbsMatchesLinearTokenLogProbs runs the fused op and the unfused Linear +
// TokenLogProbs pair on the same float32 inputs, with loss Σ out ⊙ R, and compares the outputs, side
// outputs, dh and dW: the fused op must agree to 1e-6 of each tensor's scale.
func TestHeadLogProbsMatchesLinearTokenLogProbs(t *testing.T) {
	for ci, tc := range headCases() {
		t.Run(fmt.Sprintf("case%d", ci), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(22, uint64(ci)))
			ins := headInputs(rng, tc)
			r := make([]float32, tc.n)
			for i := range r {
				r[i] = float32(rng.NormFloat64())
			}
			run := func(fused bool) headRun {
				g := G.NewGraph()
				nodes := f32Nodes(g, ins)
				var out *G.Node
				var lp *LogProbs
				var err error
				if fused {
					out, lp, err = HeadLogProbs(nodes[0], nodes[1], nodes[2], nodes[3], tc.chunk)
				} else {
					var logits *G.Node
					if logits, err = Linear(nodes[0], nodes[1]); err == nil {
						out, lp, err = TokenLogProbs(logits, nodes[2], nodes[3])
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				return runWeighted(t, g, out, lp, r, nodes[0], nodes[1])
			}
			sameHeadRun(t, run(true), run(false), "dh", "dW")
		})
	}
}

// headRun is one float32 run of a head's log-probs: its output, the gradients of Σ out ⊙ R, and the
// kept logits and side outputs.
type headRun struct {
	out    []float32
	grads  [][]float32
	logits []float32
	// correct and sums are LogProbs' Correct and LogitSums.
	correct, sums []float64
}

// runWeighted keeps lp's logits, runs g with the loss Σ out ⊙ r, and returns the values and the
// gradients with respect to wrt.
func runWeighted(t *testing.T, g *G.ExprGraph, out *G.Node, lp *LogProbs, r []float32, wrt ...*G.Node) headRun {
	t.Helper()
	lp.KeepLogits(true)
	rn := G.NewTensor(g, tensor.Float32, 1, G.WithShape(len(r)), G.WithName("R"), G.WithValue(tensor.New(tensor.WithShape(len(r)), tensor.WithBacking(r))))
	loss := G.Must(G.Sum(G.Must(G.HadamardProd(out, rn))))
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	f32 := func(v G.Value) []float32 { return append([]float32(nil), v.Data().([]float32)...) }
	res := headRun{out: f32(out.Value()), logits: f32(lp.Logits()),
		correct: append([]float64(nil), lp.Correct()...), sums: append([]float64(nil), lp.LogitSums()...)}
	for _, gr := range grads {
		res.grads = append(res.grads, f32(gr.Value()))
	}
	return res
}

// sameHeadRun asserts that a fused run agrees with the unfused one: output, gradients (named in
// order) and logits to 1e-6 of each tensor's scale, Correct exactly and LogitSums to 1e-6.
func sameHeadRun(t *testing.T, got, want headRun, gradNames ...string) {
	t.Helper()
	closeTo(t, "logprobs", got.out, want.out, 1e-6)
	for k, name := range gradNames {
		closeTo(t, name, got.grads[k], want.grads[k], 1e-6)
	}
	closeTo(t, "logits", got.logits, want.logits, 1e-6)
	for i := range want.correct {
		if got.correct[i] != want.correct[i] || math.Abs(got.sums[i]-want.sums[i]) > 1e-6*(1+math.Abs(want.sums[i])) {
			t.Fatalf("row %d: fused correct %g sum %g, unfused %g %g", i, got.correct[i], got.sums[i], want.correct[i], want.sums[i])
		}
	}
}

func TestHeadLogProbsRejectsBadInput(t *testing.T) {
	g := G.NewGraph()
	h := G.NewMatrix(g, G.Float32, G.WithShape(2, 3), G.WithName("h"), G.WithInit(G.Zeroes()))
	w := G.NewMatrix(g, G.Float32, G.WithShape(4, 3), G.WithName("w"), G.WithInit(G.Zeroes()))
	tg := G.NewVector(g, G.Int32, G.WithShape(2), G.WithName("t"), G.WithValue(tensor.New(tensor.WithBacking([]int32{9, 4}))))
	wt := G.NewVector(g, G.Float32, G.WithShape(2), G.WithName("w"), G.WithValue(tensor.New(tensor.WithBacking([]float32{0, 1}))))
	if _, _, err := HeadLogProbs(h, w, tg, wt, 0); err == nil || err.Error() != "ops.HeadLogProbs: chunk of 0 rows, want at least 1" {
		t.Fatalf("chunk 0: error %v", err)
	}
	bad := G.NewMatrix(g, G.Float32, G.WithShape(4, 2), G.WithName("bad"), G.WithInit(G.Zeroes()))
	if _, _, err := HeadLogProbs(h, bad, tg, wt, 1); err == nil || Cause(err).Error() != "ops.HeadLogProbs: h (2, 3), W (4, 2), targets (2), weights (2): want (N, D), (V, D), (N), (N)" {
		t.Fatalf("mismatched W: error %v", err)
	}
	if _, _, err := HeadLogProbs(h, w, tg, wt, 1); err != nil {
		t.Fatal(err)
	}
	err := G.NewTapeMachine(g).RunAll()
	// Row 0's target 9 is ignored (weight 0); row 1's target 4 is counted and outside 0..3.
	if want := "ops.HeadLogProbs: target 4 at row 1 is outside 0..3"; err == nil || Cause(err).Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// TestHeadLogProbsHoldsNoLogits measures the Go heap that a differentiated graph holds after a run,
// fused (chunks of 64 rows) against Linear + TokenLogProbs, for 1024 rows over a vocabulary of 8192:
// the unfused pair keeps the (N, V) logits and their gradient (2·32 MiB), the fused op one chunk.
// The LoRA-adapted frozen head (FrozenHeadLoRALogProbs, rank 4, gradients for h, u and B) holds no
// more than the fused head.
func TestHeadLogProbsHoldsNoLogits(t *testing.T) {
	const n, d, v, chunk, r = 1024, 8, 8192, 64, 4
	rng := rand.New(rand.NewPCG(23, 1))
	fill := func(k int) []float32 {
		x := make([]float32, k)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	hv, wv, uv, bv := fill(n*d), fill(v*d), fill(n*r), fill(v*r)
	targets, weights := make([]int32, n), make([]float32, n)
	for i := range targets {
		targets[i], weights[i] = int32(i*31%v), 1
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // what a finalizer kept alive through the first cycle (the previous graph's)
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	dense, err := NewDenseFrozen(wv, v, d) // aliases wv: held before and after
	if err != nil {
		t.Fatal(err)
	}
	type kind int
	const (
		unfusedKind kind = iota
		fusedKind
		loraKind
	)
	held := func(k kind, save bool) uint64 {
		before := heap()
		g := G.NewGraph()
		mat := func(name string, rows, cols int, vals []float32) *G.Node {
			return G.NewMatrix(g, G.Float32, G.WithShape(rows, cols), G.WithName(name), G.WithValue(tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(vals))))
		}
		h, w := mat("h", n, d, hv), mat("w", v, d, wv)
		u, b := mat("u", n, r, uv), mat("b", v, r, bv)
		tg := G.NewVector(g, G.Int32, G.WithShape(n), G.WithName("t"), G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(targets))))
		wt := G.NewVector(g, G.Float32, G.WithShape(n), G.WithName("wt"), G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(weights))))
		var out *G.Node
		var lp *LogProbs
		var err error
		wrt := G.Nodes{h, w}
		switch k {
		case fusedKind:
			out, lp, err = HeadLogProbs(h, w, tg, wt, chunk)
		case loraKind:
			out, lp, err = FrozenHeadLoRALogProbs(h, dense, HeadLoRA{U: u, B: b, Scale: 2}, tg, wt, chunk)
			wrt = G.Nodes{h, u, b}
		default:
			var logits *G.Node
			if logits, err = Linear(h, w); err == nil {
				out, _, err = TokenLogProbs(logits, tg, wt)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if lp != nil {
			noSave(lp, !save)
		}
		if _, err := G.Grad(G.Must(G.Sum(out)), wrt...); err != nil {
			t.Fatal(err)
		}
		m := G.NewTapeMachine(g)
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		after := heap()
		runtime.KeepAlive(m)
		return after - before
	}
	fused, saving, unfused := held(fusedKind, false), held(fusedKind, true), held(unfusedKind, false)
	lora, loraSaving := held(loraKind, false), held(loraKind, true)
	t.Logf("graph heap: fused %.1f MiB, fused saving its exponentials %.1f MiB, Linear+TokenLogProbs %.1f MiB, LoRA head %.1f MiB (%.1f MiB saving)",
		float64(fused)/(1<<20), float64(saving)/(1<<20), float64(unfused)/(1<<20), float64(lora)/(1<<20), float64(loraSaving)/(1<<20))
	// The unfused pair's heap shows at least one whole logits matrix (it holds two), the fused op's
	// less than an eighth of one (a 64-row chunk is 1/16). Under headSaveBytes the fused op keeps
	// the exponentials instead of recomputing them: one matrix, not two.
	logits := uint64(n * v * 4)
	if logits > headSaveBytes {
		t.Fatalf("the shape's logits (%d bytes) exceed headSaveBytes: the saving case is not exercised", logits)
	}
	if unfused < logits*3/4 || fused > logits/8 || saving < logits*3/4 || saving > logits*5/4 {
		t.Fatalf("fused graph holds %d bytes (%d saving), unfused %d; one (N, V) logits matrix is %d", fused, saving, unfused, logits)
	}
	// The LoRA head adds dB (V, r) and du (N, r): 144 KiB here.
	if lora > logits/8 || loraSaving > logits*5/4 {
		t.Fatalf("LoRA head graph holds %d bytes (%d saving); one (N, V) logits matrix is %d", lora, loraSaving, logits)
	}
}

// roundedFrozen is a non-dense Frozen for tests: W rounded to bfloat16 (as a quantized base
// rounds), so that FrozenHeadLogProbs' float64 runs take the narrowed float32 path.
type roundedFrozen struct{ d *DenseFrozen }

func newRoundedFrozen(vals []float64, out, in int) *roundedFrozen {
	w := make([]float32, len(vals))
	for i, v := range vals {
		w[i] = math.Float32frombits(math.Float32bits(float32(v)) &^ 0xffff)
	}
	return &roundedFrozen{&DenseFrozen{W: w, Out: out, In: in}}
}
func (r *roundedFrozen) Shape() (int, int)              { return r.d.Shape() }
func (r *roundedFrozen) MulT(y, x []float32, n int)     { r.d.MulT(y, x, n) }
func (r *roundedFrozen) MulAdd(dx, dy []float32, n int) { r.d.MulAdd(dx, dy, n) }
func (r *roundedFrozen) Bytes() int64                   { return r.d.Bytes() / 2 }

// TestFrozenHeadLogProbs: the frozen-weight head (a LoRA run's LM head) checked against float64
// central differences for dh with a DenseFrozen W, and against HeadLogProbs on the same weights as
// a graph input: bitwise the same float32 outputs for a DenseFrozen (the same products run), and
// within float32 rounding for a non-dense Frozen reached through a FrozenSlot.
func TestFrozenHeadLogProbs(t *testing.T) {
	for ci, tc := range headCases() {
		t.Run(fmt.Sprintf("case%d", ci), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(23, uint64(ci)))
			all := headInputs(rng, tc)
			w32 := make([]float32, len(all[1].vals))
			for i, v := range all[1].vals {
				w32[i] = float32(v)
			}
			dense, err := NewDenseFrozen(w32, tc.v, tc.d)
			if err != nil {
				t.Fatal(err)
			}
			ins := []input{all[0], all[2], all[3]}
			frozenBuild := func(w Frozen) func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					out, lp, err := FrozenHeadLogProbs(in[0], w, in[1], in[2], tc.chunk)
					if err == nil {
						lp.KeepLogits(tc.keep)
					}
					return out, err
				}
			}
			newHarness(t, rng, ins, frozenBuild(dense)).check(rng, 60)

			// The same weights as a graph input, rounded to float32 first.
			all[1].vals = make([]float64, len(w32))
			for i, v := range w32 {
				all[1].vals[i] = float64(v)
			}
			nodeBuild := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				out, _, err := HeadLogProbs(in[0], in[1], in[2], in[3], tc.chunk)
				return out, err
			}
			want := runF32(t, all, nodeBuild)
			got := runF32(t, ins, frozenBuild(dense))
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("row %d: frozen %v, graph weight %v", i, got[i], want[i])
				}
			}

			rounded := newRoundedFrozen(all[1].vals, tc.v, tc.d)
			slot := NewFrozenSlot(tc.v, tc.d)
			if err := slot.Bind(rounded); err != nil {
				t.Fatal(err)
			}
			for i := range all[1].vals {
				all[1].vals[i] = float64(rounded.d.W[i])
			}
			want64 := make([]float64, len(want))
			for i, v := range runF32(t, all, nodeBuild) {
				want64[i] = float64(v)
			}
			near(t, "through a slot", runF32(t, ins, frozenBuild(slot)), want64, 1e-6)
		})
	}
}

func TestFrozenSlotRefusals(t *testing.T) {
	s := NewFrozenSlot(3, 2)
	d, _ := NewDenseFrozen(make([]float32, 6), 2, 3)
	if err := s.Bind(d); err == nil || err.Error() != "ops.FrozenSlot: weight (2, 3) bound to a (3, 2) slot" {
		t.Fatalf("shape mismatch: %v", err)
	}
	if err := s.Bind(nil); err == nil || err.Error() != "ops.FrozenSlot: binding a nil weight" {
		t.Fatalf("nil: %v", err)
	}
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float32, G.WithShape(4, 2), G.WithName("x"), G.WithInit(G.Zeroes()))
	y, err := FrozenLinear(x, s)
	if err != nil {
		t.Fatal(err)
	}
	_ = y
	m := G.NewTapeMachine(g)
	if err := m.RunAll(); err == nil || !strings.Contains(err.Error(), "ops.FrozenLinear: its weight slot was not bound") {
		t.Fatalf("unbound slot: %v", err)
	}
}

// TestHeadLogProbsSaveBytes: the exponentials are kept exactly when the counted rows fit the bound
// LogProbs.SaveBytes sets (5 counted rows of 11 float32s: 220 bytes), in one buffer of as many rows
// as the bound allows (at most N), and kept or recomputed the outputs, dh and dW are bitwise the
// same.
func TestHeadLogProbsSaveBytes(t *testing.T) {
	tc := headCases()[1] // rows 1 and 3 are ignored
	rng := rand.New(rand.NewPCG(23, 1))
	ins := headInputs(rng, tc)
	type result struct{ out, dh, dw []float32 }
	for _, sc := range []struct {
		bytes   int
		saved   bool
		bufRows int
	}{
		{0, false, 0}, {219, false, 0}, {220, true, 5}, {264, true, 6}, {1 << 20, true, 7},
	} {
		var lp *LogProbs
		var dh, dw *G.Node
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			out, l, err := HeadLogProbs(in[0], in[1], in[2], in[3], tc.chunk)
			if err != nil {
				return nil, err
			}
			lp = l
			l.SaveBytes(sc.bytes)
			grads, err := G.Grad(G.Must(G.Sum(out)), in[0], in[1])
			if err != nil {
				return nil, err
			}
			dh, dw = grads[0], grads[1]
			return out, nil
		}
		out := runF32(t, ins, build)
		got := result{out, dh.Value().Data().([]float32), dw.Value().Data().([]float32)}
		op := lp.op.(*headLogProbsOp)
		if op.savedRun != sc.saved {
			t.Fatalf("SaveBytes(%d): saved %v, want %v", sc.bytes, op.savedRun, sc.saved)
		}
		if rows := 0; sc.saved {
			rows = op.saved.t.Shape()[0]
			if rows != sc.bufRows {
				t.Fatalf("SaveBytes(%d): a buffer of %d rows, want %d", sc.bytes, rows, sc.bufRows)
			}
		}
		if sc.bytes == 0 {
			continue // the reference below
		}
		// The reference: recomputed (bound 0).
		var ref result
		{
			bytes := sc.bytes
			sc.bytes = 0
			o := runF32(t, ins, build)
			ref = result{o, dh.Value().Data().([]float32), dw.Value().Data().([]float32)}
			sc.bytes = bytes
		}
		for name, pair := range map[string][2][]float32{"out": {got.out, ref.out}, "dh": {got.dh, ref.dh}, "dW": {got.dw, ref.dw}} {
			for i := range pair[0] {
				if math.Float32bits(pair[0][i]) != math.Float32bits(pair[1][i]) {
					t.Fatalf("SaveBytes(%d): %s[%d] = %v kept, %v recomputed", sc.bytes, name, i, pair[0][i], pair[1][i])
				}
			}
		}
	}
}
