package ops

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
)

// Hooks for the external tests (package ops_test), which may import packages that import ops
// (model/quant's Frozen formats): the finite-difference harness and the LoRA head's float32 run.

// FDInput is one input of an op under finite-difference test.
type FDInput = input

// FloatInput is a random float input of the given shape; diff says whether to check its gradient.
func FloatInput(rng *rand.Rand, diff bool, shape ...int) FDInput {
	in := floatIn(rng, shape...)
	in.diff = diff
	return in
}

// IntInput is a fixed Int32 input; ValuesInput a fixed float input not differentiated.
func IntInput(ids []int32) FDInput { return intIn(ids) }
func ValuesInput(vals []float64) FDInput {
	return input{shape: []int{len(vals)}, vals: vals}
}

// CheckFD checks the symbolic gradients of Σ build(ins) ⊙ R against central differences.
func CheckFD(t *testing.T, rng *rand.Rand, ins []FDInput, build func(g *G.ExprGraph, in []*G.Node) (*G.Node, error), maxPerInput int) {
	t.Helper()
	newHarness(t, rng, ins, build).check(rng, maxPerInput)
}

// HeadLoRARun is runHeadLoRA32's result: outputs and the gradients of Σ out ⊙ R.
type HeadLoRARun = headRun

func (r HeadLoRARun) Out() []float32 { return r.out }
func (r HeadLoRARun) DH() []float32  { return r.grads[0] }
func (r HeadLoRARun) DU() []float32  { return r.grads[1] }
func (r HeadLoRARun) DB() []float32  { return r.grads[2] }

// RunHeadLoRA32 runs FrozenHeadLoRALogProbs (scale HeadLoRAScale) on float32 copies of ins (h, u,
// B, targets, weights) with the frozen weight w.
func RunHeadLoRA32(t *testing.T, ins []FDInput, w Frozen, r []float32, chunk int) HeadLoRARun {
	t.Helper()
	return runHeadLoRA32(t, ins, w, r, chunk, headSaveBytes, true)
}

// HeadLoRAScale is the LoRA scale RunHeadLoRA32 uses.
const HeadLoRAScale = headLoRAScale
