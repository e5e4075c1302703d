package infer

import (
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/lora"
)

func graphLogits(t *testing.T, w *model.Weights, ad *model.Adapter, tokens []int32) []float32 {
	t.Helper()
	n := len(tokens)
	g, err := model.NewGraph(w, model.GraphSpec{Batch: 1, SeqLen: n, KeepLogits: true, Adapter: ad})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.Run(model.Inputs{Tokens: tokens, Targets: make([]int32, n), Weights: make([]float32, n)}, nil); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), g.Logits()...)
}

// The engine runs an adapter unmerged: with B = 0 it gives the base's logits bit for bit; with a
// trained-looking B its log-softmax matches the training graph's with the adapter, the merged
// model's, and a cached session's (prefill then decode), within 1e-5 relative, for stories260K (Llama,
// all-linear, its tied embedding saved in full) and a random Mixtral with adapted experts.
func TestEngineAdapter(t *testing.T) {
	r := 4
	sw, err := hf.Load(filepath.Join(sharedtest.Dir(t), "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		w    *model.Weights
		c    lora.Config
	}{
		{"stories260K", sw, lora.Config{LoraR: &r, LoraTargetModules: "all-linear", LoraModulesToSave: []string{"embed_tokens"}}},
		{"mixtral", model.InitRandom(testConfig("MixtralForCausalLM"), 3, 0.2), lora.Config{LoraR: &r, LoraTargetModules: "all-linear"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ad, err := lora.New(tc.c, tc.w, 1)
			if err != nil {
				t.Fatal(err)
			}
			tokens := []int32{1, 9, 30, 4, 17, 22, 5, 40, 11, 3}
			base, err := New(tc.w)
			if err != nil {
				t.Fatal(err)
			}
			zero, err := NewAdapted(tc.w, ad)
			if err != nil {
				t.Fatal(err)
			}
			lb, _ := base.Forward(tokens, nil)
			lz, err := zero.Forward(tokens, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range lb {
				for j := range lb[i] {
					if lb[i][j] != lz[i][j] {
						t.Fatalf("B = 0: logit [%d][%d] %g, base %g", i, j, lz[i][j], lb[i][j])
					}
				}
			}
			rng := rand.New(rand.NewPCG(2, 2))
			for _, name := range ad.LayerNames() { // sorted: the same draws every run
				l := ad.Layers[name]
				for i := range l.B.Data {
					l.B.Data[i] = float32(rng.NormFloat64() * 0.1)
				}
			}
			for _, name := range slices.Sorted(maps.Keys(ad.Saved)) {
				s := ad.Saved[name]
				for i := range s.Data {
					s.Data[i] += float32(rng.NormFloat64() * 0.05)
				}
			}
			eng, err := NewAdapted(tc.w, ad)
			if err != nil {
				t.Fatal(err)
			}
			got, err := eng.Forward(tokens, nil)
			if err != nil {
				t.Fatal(err)
			}
			mw, err := lora.Merge(tc.w, ad)
			if err != nil {
				t.Fatal(err)
			}
			me, err := New(mw)
			if err != nil {
				t.Fatal(err)
			}
			merged, _ := me.Forward(tokens, nil)
			graph := graphLogits(t, tc.w, ad, tokens)
			s := eng.NewSession(len(tokens))
			if _, err := s.Prefill(tokens[:6], 0); err != nil {
				t.Fatal(err)
			}
			V := tc.w.Config.VocabSize
			var moved float64
			for i := range got {
				lg := LogSoftmax(got[i])
				lm := LogSoftmax(merged[i])
				lgr := LogSoftmax(graph[i*V : (i+1)*V])
				lbase := LogSoftmax(lb[i])
				var ls []float64
				if i >= 6 {
					step, err := s.Step(tokens[i])
					if err != nil {
						t.Fatal(err)
					}
					ls = LogSoftmax(step)
				}
				for j := range lg {
					// float32 products rounded in another order: 1e-5 relative to the log-prob.
					tol := 1e-5 * (1 + math.Abs(lg[j]))
					moved = math.Max(moved, math.Abs(lg[j]-lbase[j]))
					if d := math.Abs(lg[j] - lm[j]); d > tol {
						t.Fatalf("position %d token %d: unmerged %g, merged %g", i, j, lg[j], lm[j])
					}
					if d := math.Abs(lg[j] - lgr[j]); d > tol {
						t.Fatalf("position %d token %d: engine %g, graph %g", i, j, lg[j], lgr[j])
					}
					if ls != nil && math.Abs(lg[j]-ls[j]) > tol {
						t.Fatalf("position %d token %d: forward %g, session %g", i, j, lg[j], ls[j])
					}
				}
			}
			if moved < 1e-2 {
				t.Fatalf("the adapter moves log-probs by only %g", moved)
			}
		})
	}
}

func TestEngineAdapterMismatch(t *testing.T) {
	w := model.InitRandom(testConfig("LlamaForCausalLM"), 1, 0.02)
	ad, err := lora.New(lora.Config{}, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	q := model.LayerKey(1, "self_attn.v_proj.weight")
	ad.Layers[q].B = model.NewTensor(5, 16)
	_, err = NewAdapted(w, ad)
	want := `infer: adapter: tensor "model.layers.1.self_attn.v_proj.lora_B.weight" has shape [5 16], the base's model.layers.1.self_attn.v_proj.weight [12 24] implies [12 16]`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
