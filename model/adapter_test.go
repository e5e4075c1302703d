package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// testAdapter adapts every weight whose module name (q_proj, w1, gate, ...) is in modules, with A
// and B drawn from N(0, std) (std 0 leaves B zero, as PEFT initialises it), and keeps trainable
// copies of the saved tensors.
func testAdapter(w *Weights, r int, std float64, rng *rand.Rand, modules []string, saved ...string) *Adapter {
	ad := &Adapter{R: r, Alpha: 2 * float64(r), Dropout: 0.1, Layers: map[string]*LoRALayer{}, Saved: map[string]*Tensor{}}
	for _, name := range w.Names() {
		parts := strings.Split(name, ".")
		if len(parts) < 2 || !slices.Contains(modules, parts[len(parts)-2]) {
			continue
		}
		t := w.Tensors[name]
		l := &LoRALayer{A: NewTensor(r, t.Shape[1]), B: NewTensor(t.Shape[0], r)}
		for i := range l.A.Data {
			l.A.Data[i] = float32(rng.NormFloat64() * 0.3)
		}
		for i := range l.B.Data {
			l.B.Data[i] = float32(rng.NormFloat64() * std)
		}
		ad.Layers[name] = l
	}
	for _, name := range saved {
		t := w.Tensors[name]
		c := &Tensor{Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
		for i := range c.Data {
			c.Data[i] += float32(rng.NormFloat64() * 0.1)
		}
		ad.Saved[name] = c
	}
	return ad
}

var allLinear = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "w1", "w2", "w3", "gate"}

// The LoRA graph's gradients with respect to every adapter tensor (A, B, modules_to_save) against
// central differences in float64, dropout on; then the float32 graph agrees. The base is frozen:
// the Params are exactly the adapter's tensors.
func TestAdapterGradientCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       tinyOpts
		head    Head
		modules []string
		saved   []string
	}{
		{"llama all-linear tied", tinyOpts{}, LMHead, allLinear, nil},
		{"llama q v untied lm_head saved", tinyOpts{untied: true}, LMHead, []string{"q_proj", "v_proj"}, []string{LMHeadKey}},
		// LoRA on the head itself runs the fused FrozenHeadLoRALogProbs.
		{"llama q untied lm_head adapted", tinyOpts{untied: true}, LMHead, []string{"q_proj", "lm_head"}, nil},
		{"llama down tied embedding head adapted", tinyOpts{}, LMHead, []string{"down_proj", "embed_tokens"}, nil},
		{"mixtral experts and router", tinyOpts{moe: true}, LMHead, allLinear, nil},
		{"mixtral attention only", tinyOpts{moe: true, window: 3}, LMHead, []string{"q_proj", "o_proj"}, nil},
		{"llama reward score saved", tinyOpts{reward: true}, ScoreHead, []string{"k_proj", "down_proj"}, []string{ScoreKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(31, uint64(len(tc.name))))
			cfg := tinyConfig(tc.o)
			w := InitRandom(cfg, 7, 0.3)
			ad := testAdapter(w, 3, 0.3, rng, tc.modules, tc.saved...)
			spec := GraphSpec{Batch: 2, SeqLen: 7, Head: tc.head, Grad: true, Adapter: ad}
			gr, err := newGraph(w, spec, tensor.Float64)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, name := range ad.LayerNames() {
				a, b := LoRAKeys(name)
				want = append(want, a, b)
			}
			want = append(want, tc.saved...)
			slices.Sort(want)
			var got []string
			for _, p := range gr.Params() {
				got = append(got, p.Name)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("params %v, want the adapter's %v", got, want)
			}
			in := packedInputs(rng, cfg.VocabSize)
			in.Seed = DropoutSeed(42, 3, 1)
			obj := smoothObjective(tc.head)
			loss, _, err := gr.Run(in, obj)
			if err != nil {
				t.Fatal(err)
			}
			grads := make([][]float64, len(gr.params))
			for i := range gr.params {
				grads[i] = append([]float64(nil), gr.gradF64(i)...)
			}
			const eps = 1e-6
			for i, p := range gr.params {
				scale := 0.0
				for _, g := range grads[i] {
					scale = math.Max(scale, math.Abs(g))
				}
				if scale == 0 {
					t.Fatalf("%s has an all-zero gradient", p.name)
				}
				for _, j := range rng.Perm(len(p.f64))[:min(3, len(p.f64))] {
					orig := p.f64[j]
					p.f64[j] = orig + eps
					lp, _, err := gr.Run(in, obj)
					if err != nil {
						t.Fatal(err)
					}
					p.f64[j] = orig - eps
					lm, _, err := gr.Run(in, obj)
					if err != nil {
						t.Fatal(err)
					}
					p.f64[j] = orig
					num := (lp - lm) / (2 * eps)
					if d := math.Abs(num - grads[i][j]); d > 1e-6*(1+scale) {
						t.Errorf("%s[%d]: symbolic %.9g, finite difference %.9g (diff %.2g)", p.name, j, grads[i][j], num, d)
					}
				}
			}
			g32, err := NewGraph(w, spec)
			if err != nil {
				t.Fatal(err)
			}
			loss32, _, err := g32.Run(in, obj)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(loss32-loss) > 1e-5*(1+math.Abs(loss)) {
				t.Fatalf("float32 loss %.8f, float64 %.8f", loss32, loss)
			}
			for i, p := range g32.Params() {
				scale := 0.0
				for _, g := range grads[i] {
					scale = math.Max(scale, math.Abs(g))
				}
				for j, g := range p.Grad {
					if d := math.Abs(float64(g) - grads[i][j]); d > 1e-4*(scale+1e-3) {
						t.Fatalf("%s[%d]: float32 gradient %g, float64 %g", p.Name, j, g, grads[i][j])
					}
				}
			}
			// Another dropout seed draws other masks: another loss.
			in.Seed++
			other, _, err := gr.Run(in, obj)
			if err != nil {
				t.Fatal(err)
			}
			if other == loss {
				t.Fatal("the dropout seed does not change the loss")
			}
			// The same seed again draws the same masks: a resumed run is bit-identical.
			in.Seed--
			again, _, err := gr.Run(in, obj)
			if err != nil {
				t.Fatal(err)
			}
			if again != loss {
				t.Fatalf("the same dropout seed gave loss %.17g, then %.17g", loss, again)
			}
		})
	}
}

// lmLogits runs a forward LM graph on in and returns its logits.
func lmLogits(t *testing.T, w *Weights, spec GraphSpec, in Inputs) []float32 {
	t.Helper()
	spec.KeepLogits, spec.Head = true, LMHead
	gr, err := NewGraph(w, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := gr.Run(in, nil); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(gr.Logits())
}

// An adapter whose B is zero (PEFT's initialisation) leaves the model unchanged: the same logits as
// the plain graph (bit for bit where the experts run sparsely, within float32 rounding where
// adapted experts run densely); and with any B, AdaptersOff is the base exactly.
func TestAdapterZeroBAndOff(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       tinyOpts
		modules []string
		tol     float64
	}{
		{"llama", tinyOpts{untied: true}, allLinear, 0},
		{"mixtral attention", tinyOpts{moe: true}, []string{"q_proj", "k_proj", "v_proj", "o_proj"}, 0},
		{"mixtral experts", tinyOpts{moe: true}, allLinear, 1e-6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 1))
			w := InitRandom(tinyConfig(tc.o), 3, 0.3)
			in := packedInputs(rng, w.Config.VocabSize)
			base := lmLogits(t, w, GraphSpec{Batch: 2, SeqLen: 7}, in)
			zero := lmLogits(t, w, GraphSpec{Batch: 2, SeqLen: 7, Adapter: testAdapter(w, 4, 0, rng, tc.modules)}, in)
			nonzero := testAdapter(w, 4, 0.5, rng, tc.modules)
			on := lmLogits(t, w, GraphSpec{Batch: 2, SeqLen: 7, Adapter: nonzero}, in)
			off := lmLogits(t, w, GraphSpec{Batch: 2, SeqLen: 7, Adapter: nonzero, AdaptersOff: true}, in)
			maxDiff := func(a, b []float32) float64 {
				d := 0.0
				for i := range a {
					d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
				}
				return d
			}
			if d := maxDiff(zero, base); d > tc.tol {
				t.Errorf("B = 0: logits differ from the base by %g (tolerance %g)", d, tc.tol)
			}
			if d := maxDiff(off, base); d != 0 {
				t.Errorf("adapters off: logits differ from the base by %g", d)
			}
			if d := maxDiff(on, base); d < 1e-3 {
				t.Errorf("a nonzero adapter changes the logits by only %g", d)
			}
		})
	}
}

func TestAdapterErrors(t *testing.T) {
	w := InitRandom(tinyConfig(tinyOpts{}), 1, 0.02)
	rng := rand.New(rand.NewPCG(1, 1))
	good := func() *Adapter { return testAdapter(w, 2, 0, rng, []string{"q_proj"}) }
	q := LayerKey(0, "self_attn.q_proj.weight")
	for _, tc := range []struct {
		name string
		edit func(a *Adapter)
		want string
	}{
		{"rank", func(a *Adapter) { a.R = 0 }, "model: NewGraph: adapter: rank r 0 must be positive"},
		{"dropout", func(a *Adapter) { a.Dropout = 1 }, "model: NewGraph: adapter: lora_dropout 1 is outside [0, 1)"},
		{"missing base", func(a *Adapter) { a.Layers["model.layers.9.self_attn.q_proj.weight"] = a.Layers[q] },
			`model: NewGraph: adapter: adapts "model.layers.9.self_attn.q_proj.weight", which the base model lacks`},
		{"A shape", func(a *Adapter) { a.Layers[q].A = NewTensor(2, 15) },
			`model: NewGraph: adapter: tensor "model.layers.0.self_attn.q_proj.lora_A.weight" has shape [2 15], the base's model.layers.0.self_attn.q_proj.weight [32 16] implies [2 16]`},
		{"B shape", func(a *Adapter) { a.Layers[q].B = NewTensor(16, 2) },
			`model: NewGraph: adapter: tensor "model.layers.0.self_attn.q_proj.lora_B.weight" has shape [16 2], the base's model.layers.0.self_attn.q_proj.weight [32 16] implies [32 2]`},
		{"NaN", func(a *Adapter) { a.Layers[q].A.Data[3] = float32(math.NaN()) },
			`model: NewGraph: adapter: tensor "model.layers.0.self_attn.q_proj.lora_A.weight"[3] = NaN is not finite`},
		{"saved shape", func(a *Adapter) { a.Saved[EmbedKey] = NewTensor(3, 16) },
			`model: NewGraph: adapter: tensor "model.embed_tokens.weight" has shape [3 16], the base's is [37 16]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := good()
			tc.edit(a)
			_, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: 3, Grad: true, Adapter: a})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
	// A graph with gradients but nothing to train.
	_, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: 3, Grad: true, Adapter: good(), AdaptersOff: true})
	if want := "model: NewGraph: the graph has nothing to train (every weight is frozen and no adapter is on)"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}
