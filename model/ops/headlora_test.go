package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// headLoRARank and headLoRAScale are the LoRA term's rank and scale in these tests: a scale other
// than 1 catches a term that drops or squares it.
const (
	headLoRARank  = 3
	headLoRAScale = 1.7
)

// headLoRAInputs are h (N, D), u (N, r), B (V, r), targets and weights for a head case, and W
// (V, D) rounded to float32 (the frozen weight's values).
func headLoRAInputs(rng *rand.Rand, tc headCase) (ins []input, w32 []float32) {
	all := headInputs(rng, tc)
	w32 = make([]float32, len(all[1].vals))
	for i, v := range all[1].vals {
		w32[i] = float32(v)
	}
	return []input{all[0], floatIn(rng, tc.n, headLoRARank), floatIn(rng, tc.v, headLoRARank), all[2], all[3]}, w32
}

// headLoRARef is the fused op's definition computed naively in float64: the logits
// h·Wᵀ + scale·u·Bᵀ (N, V), then per counted row w·(x_t − log Σ exp x), its argmax hit and Σ x.
func headLoRARef(tc headCase, h, w, u, b []float64) (logits, out, correct, sums []float64) {
	r := headLoRARank
	logits = make([]float64, tc.n*tc.v)
	for i := 0; i < tc.n; i++ {
		for j := 0; j < tc.v; j++ {
			var x float64
			for k := 0; k < tc.d; k++ {
				x += h[i*tc.d+k] * w[j*tc.d+k]
			}
			for k := 0; k < r; k++ {
				x += headLoRAScale * u[i*r+k] * b[j*r+k]
			}
			logits[i*tc.v+j] = x
		}
	}
	out, correct, sums = make([]float64, tc.n), make([]float64, tc.n), make([]float64, tc.n)
	for i, tg := range tc.targets {
		if tc.weights[i] == 0 || tg < 0 {
			continue
		}
		row := logits[i*tc.v : (i+1)*tc.v]
		var z float64
		arg := 0
		for j, x := range row {
			z += math.Exp(x)
			sums[i] += x
			if x > row[arg] {
				arg = j
			}
		}
		out[i] = tc.weights[i] * (row[tg] - math.Log(z))
		if arg == int(tg) {
			correct[i] = 1
		}
	}
	return logits, out, correct, sums
}

// TestFrozenHeadLoRALogProbsGradient checks dh, du and dB of the LoRA-adapted frozen head against
// float64 central differences (chunks that split the rows unevenly, ignored rows between counted
// ones, nothing counted, the exponentials kept or recomputed), and the outputs, side outputs and
// kept logits against the naive definition, in float64 and float32.
func TestFrozenHeadLoRALogProbsGradient(t *testing.T) {
	for ci, tc := range headCases() {
		for _, recompute := range []bool{false, true} {
			t.Run(fmt.Sprintf("case%d recompute=%v", ci, recompute), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(41, uint64(ci)))
				ins, w32 := headLoRAInputs(rng, tc)
				dense, err := NewDenseFrozen(w32, tc.v, tc.d)
				if err != nil {
					t.Fatal(err)
				}
				var lp *LogProbs
				build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					out, l, err := FrozenHeadLoRALogProbs(in[0], dense, HeadLoRA{U: in[1], B: in[2], Scale: headLoRAScale}, in[3], in[4], tc.chunk)
					if err != nil {
						return nil, err
					}
					noSave(l, recompute)
					l.KeepLogits(tc.keep)
					if lp == nil {
						lp = l
					}
					return out, nil
				}
				h := newHarness(t, rng, ins, build)
				h.check(rng, 60)
				got, _, err := h.run()
				if err != nil {
					t.Fatal(err)
				}
				w64 := make([]float64, len(w32))
				for i, v := range w32 {
					w64[i] = float64(v)
				}
				logits, want, correct, sums := headLoRARef(tc, ins[0].vals, w64, ins[1].vals, ins[2].vals)
				near(t, "float64 logprobs", got, want, 1e-12)
				near(t, "correct", lp.Correct(), correct, 0)
				near(t, "logit sums", lp.LogitSums(), sums, 1e-12)
				if tc.keep {
					near(t, "kept logits", lp.Logits().Data().([]float64), logits, 1e-12)
				} else if lp.Logits() != nil {
					t.Fatal("logits kept without KeepLogits")
				}
				if op := lp.op.(*headLogProbsOp); op.savedRun == recompute && len(op.counted) > 0 && !tc.keep {
					t.Fatalf("recompute %v, but the forward run saved its exponentials: %v", recompute, op.savedRun)
				}
				near(t, "float32 logprobs", runF32(t, ins, build), want, 1e-5)
			})
		}
	}
}

// runHeadLoRA32 builds the LoRA head on float32 copies of ins (h, u, B, targets, weights) with the
// frozen weight w, fused or as the unfused reference FrozenLinear(h, W) + Scale(Linear(u, B)) fed
// to TokenLogProbs, with loss Σ out ⊙ r, and returns its values.
func runHeadLoRA32(t *testing.T, ins []input, w Frozen, r []float32, chunk, saveBytes int, fused bool) headRun {
	t.Helper()
	g := G.NewGraph()
	nodes := f32Nodes(g, ins)
	var out *G.Node
	var lp *LogProbs
	var err error
	if fused {
		out, lp, err = FrozenHeadLoRALogProbs(nodes[0], w, HeadLoRA{U: nodes[1], B: nodes[2], Scale: headLoRAScale}, nodes[3], nodes[4], chunk)
		if err == nil {
			lp.SaveBytes(saveBytes)
		}
	} else {
		var base, lora, logits *G.Node
		if base, err = FrozenLinear(nodes[0], w); err == nil {
			if lora, err = Linear(nodes[1], nodes[2]); err == nil {
				if lora, err = Scale(lora, headLoRAScale); err == nil {
					if logits, err = Add(base, lora); err == nil {
						out, lp, err = TokenLogProbs(logits, nodes[3], nodes[4])
					}
				}
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return runWeighted(t, g, out, lp, r, nodes[0], nodes[1], nodes[2])
}

// closeTo asserts that every element of got is within tol of want's largest magnitude.
func closeTo(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 0.0
	for _, x := range want {
		scale = math.Max(scale, math.Abs(float64(x)))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol*scale) {
			t.Fatalf("%s[%d]: %.9g, want %.9g (diff %.3g, scale %.3g)", what, i, got[i], want[i], d, scale)
		}
	}
}

// TestFrozenHeadLoRAMatchesUnfused runs the fused LoRA head and the unfused path it replaces (the
// (N, V) product h·Wᵀ + s·(u·Bᵀ), then TokenLogProbs) on the same float32 inputs, loss Σ out ⊙ R:
// outputs, side outputs, logits, dh, du and dB agree to 1e-6 of each tensor's scale, with the
// exponentials kept or recomputed.
func TestFrozenHeadLoRAMatchesUnfused(t *testing.T) {
	for ci, tc := range headCases() {
		for _, save := range []int{0, headSaveBytes} {
			t.Run(fmt.Sprintf("case%d save=%d", ci, save), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(42, uint64(ci)))
				ins, w32 := headLoRAInputs(rng, tc)
				dense, err := NewDenseFrozen(w32, tc.v, tc.d)
				if err != nil {
					t.Fatal(err)
				}
				r := make([]float32, tc.n)
				for i := range r {
					r[i] = float32(rng.NormFloat64())
				}
				got := runHeadLoRA32(t, ins, dense, r, tc.chunk, save, true)
				want := runHeadLoRA32(t, ins, dense, r, tc.chunk, save, false)
				sameHeadRun(t, got, want, "dh", "du", "dB")
			})
		}
	}
}

func TestFrozenHeadLoRARejectsBadInput(t *testing.T) {
	g := G.NewGraph()
	mat := func(name string, r, c int) *G.Node {
		return G.NewMatrix(g, G.Float32, G.WithShape(r, c), G.WithName(name), G.WithInit(G.Zeroes()))
	}
	h, u, b := mat("h", 2, 3), mat("u", 2, 5), mat("b", 4, 5)
	tg := G.NewVector(g, G.Int32, G.WithShape(2), G.WithName("t"), G.WithValue(tensor.New(tensor.WithBacking([]int32{9, 4}))))
	wt := G.NewVector(g, G.Float32, G.WithShape(2), G.WithName("wt"), G.WithValue(tensor.New(tensor.WithBacking([]float32{0, 1}))))
	w, err := NewDenseFrozen(make([]float32, 12), 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		w     Frozen
		lora  HeadLoRA
		chunk int
		want  string
	}{
		{"chunk", w, HeadLoRA{U: u, B: b, Scale: 1}, 0, "ops.FrozenHeadLoRALogProbs: chunk of 0 rows, want at least 1"},
		{"nil weight", nil, HeadLoRA{U: u, B: b, Scale: 1}, 1, "ops.FrozenHeadLoRALogProbs: nil weight"},
		{"nil B", w, HeadLoRA{U: u, Scale: 1}, 1, "ops.FrozenHeadLoRALogProbs: nil u or B"},
		{"NaN scale", w, HeadLoRA{U: u, B: b, Scale: math.NaN()}, 1, "ops.FrozenHeadLoRALogProbs: scale NaN is not finite"},
		{"rank", w, HeadLoRA{U: u, B: mat("b3", 4, 3), Scale: 1}, 1,
			"ops.FrozenHeadLoRALogProbs: h (2, 3), W (4, 3), u (2, 5), B (4, 3): want (N, D), (V, D), (N, r), (V, r)"},
		{"vocabulary", w, HeadLoRA{U: u, B: mat("b6", 6, 5), Scale: 1}, 1,
			"ops.FrozenHeadLoRALogProbs: h (2, 3), W (4, 3), u (2, 5), B (6, 5): want (N, D), (V, D), (N, r), (V, r)"},
		{"rows", w, HeadLoRA{U: mat("u3", 3, 5), B: b, Scale: 1}, 1,
			"ops.FrozenHeadLoRALogProbs: h (2, 3), W (4, 3), u (3, 5), B (4, 5): want (N, D), (V, D), (N, r), (V, r)"},
	} {
		_, _, err := FrozenHeadLoRALogProbs(h, tc.w, tc.lora, tg, wt, tc.chunk)
		if err == nil || Cause(err).Error() != tc.want || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := FrozenHeadLoRALogProbs(h, w, HeadLoRA{U: u, B: b, Scale: 1}, tg, wt, 1); err != nil {
		t.Fatal(err)
	}
	err = G.NewTapeMachine(g).RunAll()
	// Row 0's target 9 is ignored (weight 0); row 1's target 4 is counted and outside 0..3.
	if want := "ops.FrozenHeadLoRALogProbs: target 4 at row 1 is outside 0..3"; err == nil || Cause(err).Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}
