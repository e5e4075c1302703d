package dpo

import (
	"context"
	"io"
	"math"
	"path/filepath"
	"sort"
	"testing"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/train"
)

// textPairsConfig is a config on four short explicit-prompt text pairs (no chat template needed).
func textPairsConfig(t *testing.T) Config {
	c := storiesConfig(t, "orca_dpo_pairs_validation_chat.parquet")
	c.Data.DatasetName = testutil.WriteJSONL(t, "pairs.jsonl", smallPairs()...)
	c.Data.ChatTemplate = ""
	return c
}

// TestGradientThroughGraph checks the whole wiring of a DPO step (one concatenated batch, chosen
// rows first, Loss's gradient fed back as the upstream gradient of the 2N summed log-probs) against
// central differences of the loss in the weights: Step's accumulated gradient for the entries where
// it is largest must match (L(w+h) − L(w−h))/2h computed with forward passes only.
func TestGradientThroughGraph(t *testing.T) {
	for _, lt := range []string{Sigmoid, IPO} {
		c := textPairsConfig(t)
		c.LossType = lt
		c.Beta = 0.5
		task, err := newTestTask(c, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		// Move the policy off the reference so that h ≠ 0 and the sigmoid is not at its midpoint.
		d := task.policy.Weights().Tensors["model.layers.4.mlp.down_proj.weight"].Data
		for i := range d {
			d[i] *= 1.3
		}
		idx := []int{0, 1, 2, 3}
		params := task.Params()
		grads := make([][]float32, len(params))
		for i, p := range params {
			grads[i] = make([]float32, len(p.Value))
		}
		if _, err := task.Step(context.Background(), train.Batch{Examples: idx}, grads, 1); err != nil {
			t.Fatal(err)
		}
		loss := func() float64 {
			m, err := task.run(context.Background(), task.train, idx, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			return m.Loss
		}
		type entry struct {
			p, i int
			g    float32
		}
		var top []entry
		for _, name := range []string{"model.embed_tokens.weight", "model.layers.2.self_attn.q_proj.weight", "model.layers.4.mlp.up_proj.weight", "model.norm.weight"} {
			for j, p := range params {
				if p.Name != name {
					continue
				}
				var best []entry
				for i, g := range grads[j] {
					best = append(best, entry{j, i, g})
				}
				sort.Slice(best, func(a, b int) bool { return math.Abs(float64(best[a].g)) > math.Abs(float64(best[b].g)) })
				top = append(top, best[:3]...)
			}
		}
		const h = 2e-3
		for _, e := range top {
			v := params[e.p].Value
			orig := v[e.i]
			v[e.i] = orig + h
			up := loss()
			v[e.i] = orig - h
			down := loss()
			v[e.i] = orig
			fd := (up - down) / (2 * h)
			t.Logf("%s %s[%d]: step %.6g, fd %.6g", lt, params[e.p].Name, e.i, e.g, fd)
			if math.Abs(fd-float64(e.g)) > 0.005*math.Abs(fd)+2e-4 {
				t.Errorf("%s: %s[%d]: Step's gradient %.6g, central difference %.6g", lt, params[e.p].Name, e.i, e.g, fd)
			}
		}
	}
}

// TestMixtralAuxLoss: on a Mixtral policy the step's loss is the DPO loss plus
// router_aux_loss_coef times the router load-balancing loss, which the graph adds; at step 0 the
// DPO part is ln 2, so loss − ln 2 = 0.02·aux_loss, and aux_loss is reported.
func TestMixtralAuxLoss(t *testing.T) {
	shared := sharedDir(t)
	var spec checkpoint.InitSpec
	if err := conf.Load(filepath.Join(sharedtest.RepoRoot(t), "configs", "init", "tiny-mixtral.yaml"), nil, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Tokenizer = filepath.Join(shared, "models", "stories260K", "tokenizer.model")
	dir := filepath.Join(t.TempDir(), "mixtral")
	if _, err := checkpoint.Init(spec, dir); err != nil {
		t.Fatal(err)
	}
	c := textPairsConfig(t)
	c.ModelNameOrPath = dir
	c.MaxSteps = 1
	if err := runHooked(c, io.Discard); err != nil {
		t.Fatal(err)
	}
	m := testutil.ReadMetrics(t, c.OutputDir)[0]
	aux, ok := m["aux_loss"]
	if !ok || !(aux > 0) {
		t.Fatalf("aux_loss = %v (present %v), want the router loss", aux, ok)
	}
	if want := math.Ln2 + spec.RouterAuxLossCoef*aux; math.Abs(m["loss"]-want) > 1e-6 {
		t.Errorf("loss = %.9g, want ln 2 + %v·%.9g = %.9g", m["loss"], spec.RouterAuxLossCoef, aux, want)
	}
	if m["rewards/margins"] != 0 {
		t.Errorf("rewards/margins = %v at step 0", m["rewards/margins"])
	}
}

// TestGradientCheckpointing: gradient_checkpointing reaches the policy and the reference model, and
// a DPO step's loss and gradients are bitwise those of the plain graphs.
func TestGradientCheckpointing(t *testing.T) {
	step := func(ckpt bool) (float64, [][]float32) {
		c := textPairsConfig(t)
		c.GradientCheckpointing = ckpt
		task, err := newTestTask(c, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if task.policy.Checkpoint != ckpt || task.ref == nil || task.ref.Checkpoint != ckpt {
			t.Fatalf("gradient_checkpointing %v: policy %v, reference %+v", ckpt, task.policy.Checkpoint, task.ref)
		}
		// Move the policy off the reference so that the DPO gradient is not the step-0 one.
		d := task.policy.Weights().Tensors["model.layers.4.mlp.down_proj.weight"].Data
		for i := range d {
			d[i] *= 1.3
		}
		params := task.Params()
		grads := make([][]float32, len(params))
		for i, p := range params {
			grads[i] = make([]float32, len(p.Value))
		}
		m, err := task.Step(context.Background(), train.Batch{Examples: []int{0, 1, 2, 3}}, grads, 1)
		if err != nil {
			t.Fatal(err)
		}
		return m.Loss, grads
	}
	l0, g0 := step(false)
	l1, g1 := step(true)
	if l0 != l1 {
		t.Fatalf("loss %v plain, %v checkpointed", l0, l1)
	}
	for i := range g0 {
		for j := range g0[i] {
			if g0[i][j] != g1[i][j] {
				t.Fatalf("param %d[%d]: gradient %v plain, %v checkpointed", i, j, g0[i][j], g1[i][j])
			}
		}
	}
}
