package gguf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/infer"
	"github.com/alignkit/alignkit/model/lora"
)

// trainedAdapter is a fresh PEFT-initialised adapter whose B is then drawn at random, large enough
// that a wrong name, dim order, permutation or scale moves llama.cpp's log-probs by far more than
// the tolerance.
func trainedAdapter(t *testing.T, w *model.Weights, c lora.Config, std float64) *model.Adapter {
	t.Helper()
	ad, err := lora.New(c, w, 11)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(12, 13))
	for _, name := range ad.LayerNames() {
		for i := range ad.Layers[name].B.Data {
			ad.Layers[name].B.Data[i] = float32(rng.NormFloat64() * std)
		}
	}
	return ad
}

func runLlamaCppLoRA(t *testing.T, script, base, adapter string, tokens []int32) llamaCppResult {
	t.Helper()
	ids := make([]string, len(tokens))
	for i, id := range tokens {
		ids[i] = fmt.Sprint(id)
	}
	args := []string{script, "--model", base, "--tokens", strings.Join(ids, ",")}
	if adapter != "" {
		args = append(args, "--lora", adapter)
	}
	cmd := exec.Command("node", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("llama.cpp on %s + %s: %v: %s", base, adapter, err, stderr.String())
	}
	var r llamaCppResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("llama.cpp output: %v", err)
	}
	if len(r.Logprobs) != len(tokens) {
		t.Fatalf("llama.cpp returned %d rows for %d tokens", len(r.Logprobs), len(tokens))
	}
	return r
}

// TestLlamaCppLoRA: llama.cpp running the base GGUF plus our GGUF LoRA adapter (unmerged, scale 1)
// gives alignkit's log-softmax (model/infer with the adapter, unmerged) within 1e-4 at every
// position and vocabulary entry; so does llama.cpp on the merged model's GGUF. Cases: stories260K
// with every linear layer adapted (Q/K lora_b permuted), the same with rsLoRA (alpha written as
// alpha·√r), and a random Mixtral, all-linear and experts plus router alone (stacked 3-D lora_a/lora_b).
func TestLlamaCppLoRA(t *testing.T) {
	script := llamaCppScript(t)
	r4, r8 := 4, 8
	alpha := 8.0
	stories := loadStories(t)
	for _, tc := range []struct {
		name string
		w    *model.Weights
		tok  *TokenizerInfo
		c    lora.Config
		std  float64
	}{
		{"stories260K all-linear", stories, storiesTokenizer(t), lora.Config{LoraR: &r8, LoraTargetModules: "all-linear"}, 0.05},
		{"stories260K rslora q k", stories, storiesTokenizer(t), lora.Config{LoraR: &r4, LoraAlpha: &alpha, UseRSLoRA: true, LoraTargetModules: []any{"q_proj", "k_proj"}}, 0.1},
		{"mixtral all-linear", randomWeights(t, mixtralConfig(), 42, 0.2), syntheticTokenizer(300), lora.Config{LoraR: &r4, LoraTargetModules: "all-linear"}, 0.05},
		// Experts and router alone: llama.cpp must apply the stacked and router adapters itself.
		{"mixtral experts router", randomWeights(t, mixtralConfig(), 43, 0.2), syntheticTokenizer(300), lora.Config{LoraR: &r4, LoraTargetModules: []any{"w1", "w2", "w3", "gate"}}, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ad := trainedAdapter(t, tc.w, tc.c, tc.std)
			base := filepath.Join(dir, "base.gguf")
			if err := Write(base, tc.w, tc.tok, WriteOptions{Dtype: "f32"}); err != nil {
				t.Fatal(err)
			}
			adPath := filepath.Join(dir, "adapter.gguf")
			if err := WriteLoRA(adPath, tc.w.Config, ad, ""); err != nil {
				t.Fatal(err)
			}
			merged, err := lora.Merge(tc.w, ad)
			if err != nil {
				t.Fatal(err)
			}
			mergedPath := filepath.Join(dir, "merged.gguf")
			if err := Write(mergedPath, merged, tc.tok, WriteOptions{Dtype: "f32"}); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, 9))
			tokens := []int32{1}
			for len(tokens) < 24 {
				tokens = append(tokens, int32(3+rng.IntN(tc.w.Config.VocabSize-3)))
			}
			eng, err := infer.NewAdapted(tc.w, ad)
			if err != nil {
				t.Fatal(err)
			}
			logits, err := eng.Forward(tokens, nil)
			if err != nil {
				t.Fatal(err)
			}
			baseEng, _ := infer.New(tc.w)
			baseLogits, _ := baseEng.Forward(tokens, nil)
			withLoRA := runLlamaCppLoRA(t, script, base, adPath, tokens)
			mergedRun := runLlamaCppLoRA(t, script, mergedPath, "", tokens)
			var worstLoRA, worstMerged, moved float64
			for pos, row := range logits {
				b := infer.LogSoftmax(baseLogits[pos])
				for id, want := range infer.LogSoftmax(row) {
					worstLoRA = math.Max(worstLoRA, math.Abs(withLoRA.at(pos, id)-want))
					worstMerged = math.Max(worstMerged, math.Abs(mergedRun.at(pos, id)-want))
					moved = math.Max(moved, math.Abs(b[id]-want))
				}
			}
			t.Logf("max |Δ log p| vs alignkit: llama.cpp + adapter %.3g, llama.cpp merged %.3g; the adapter moves log-probs by up to %.3g", worstLoRA, worstMerged, moved)
			if worstLoRA > llamaCppTol {
				t.Errorf("llama.cpp with the adapter differs by %.3g, tolerance %g", worstLoRA, llamaCppTol)
			}
			if worstMerged > llamaCppTol {
				t.Errorf("llama.cpp on the merged GGUF differs by %.3g, tolerance %g", worstMerged, llamaCppTol)
			}
			if moved < 0.05 {
				t.Errorf("the adapter moves log-probs by only %.3g: the comparison would not see a broken adapter", moved)
			}
		})
	}
}

// The adapter GGUF's metadata, names and ggml dims are convert_lora_to_gguf.py's.
func TestWriteLoRALayout(t *testing.T) {
	w := randomWeights(t, mixtralConfig(), 1, 0.02)
	r := 4
	alpha := 6.0
	ad := trainedAdapter(t, w, lora.Config{LoraR: &r, LoraAlpha: &alpha, UseRSLoRA: true, LoraTargetModules: []any{"q_proj", "w2"}}, 0.1)
	path := filepath.Join(t.TempDir(), "a.gguf")
	if err := WriteLoRA(path, w.Config, ad, "my-adapter"); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"general.architecture": "llama", "general.type": "adapter", "adapter.type": "lora", "general.name": "my-adapter"} {
		if got, _, err := f.String(key); err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", key, got, err, want)
		}
	}
	if a, ok, err := f.Float("adapter.lora.alpha"); err != nil || !ok || math.Abs(a-12) > 1e-5 {
		t.Errorf("adapter.lora.alpha = %g, want alpha·√r = 12 for rsLoRA", a)
	}
	want := map[string][]uint64{}
	for l := 0; l < 2; l++ {
		want[fmt.Sprintf("blk.%d.attn_q.weight.lora_a", l)] = []uint64{64, 4}
		want[fmt.Sprintf("blk.%d.attn_q.weight.lora_b", l)] = []uint64{4, 64}
		want[fmt.Sprintf("blk.%d.ffn_down_exps.weight.lora_a", l)] = []uint64{96, 4, 4}
		want[fmt.Sprintf("blk.%d.ffn_down_exps.weight.lora_b", l)] = []uint64{4, 64, 4}
	}
	for name, dims := range want {
		ti, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("tensor %s is missing", name)
		}
		if !slices.Equal(ti.Dims, dims) || ti.Type != TypeF32 {
			t.Errorf("%s: dims %v type %v, want %v F32", name, ti.Dims, ti.Type, dims)
		}
	}
	if len(f.Tensors) != len(want) {
		t.Errorf("%d tensors, want %d", len(f.Tensors), len(want))
	}

	// modules_to_save cannot go into a GGUF adapter; nor a reward model's adapter.
	sw := randomWeights(t, gqaConfig(), 1, 0.02)
	sad, err := lora.New(lora.Config{LoraModulesToSave: []string{"embed_tokens"}}, sw, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = WriteLoRA(path, sw.Config, sad, "")
	if want := "writing " + path + ": the adapter trains model.embed_tokens.weight in full (modules_to_save), which a GGUF LoRA adapter cannot hold; export it merged (--merge)"; err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
