package main

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/model/infer"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/serve"
)

// logitsJSON runs `alignkit logits ... --json` and returns its last-position log-probs.
func logitsJSON(t *testing.T, args ...string) []float64 {
	t.Helper()
	r := mustRun(t, append([]string{"logits", "--json", "--tokens", "1,403,407,261,378"}, args...)...)
	var out struct {
		Last []float64 `json:"last_logprobs"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("logits output: %v\n%s", err, r.Stdout)
	}
	return out.Last
}

// The --adapter and --merge flags end to end on stories260K with a PEFT adapter directory: logits
// with the adapter are the engine's with it, unmerged; the merged HF export gives the same
// log-probs; the adapter exports as a GGUF LoRA adapter and merged as a GGUF; generate and serve
// take it; bad combinations and a mismatched adapter fail with one line.
func TestLoRACLI(t *testing.T) {
	stories := filepath.Join(sharedtest.Dir(t, "models/stories260K"), "models", "stories260K")
	ck := openModel(t, stories)
	r := 4
	ad, err := lora.New(lora.Config{LoraR: &r, LoraTargetModules: "all-linear"}, ck.Weights, 5)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for _, name := range ad.LayerNames() { // sorted: the same draws every run
		l := ad.Layers[name]
		for i := range l.B.Data {
			l.B.Data[i] = float32(rng.NormFloat64() * 0.05)
		}
	}
	ck.Adapter = ad
	dir := t.TempDir()
	adDir := filepath.Join(dir, "adapter")
	if err := checkpoint.SaveAdapter(adDir, ck); err != nil {
		t.Fatal(err)
	}

	eng, err := infer.NewAdapted(ck.Weights, ad)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := eng.Forward([]int32{1, 403, 407, 261, 378}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := infer.LogSoftmax(lg[4])
	got := logitsJSON(t, "--model", stories, "--adapter", adDir)
	base := logitsJSON(t, "--model", stories)
	merged := filepath.Join(dir, "merged")
	mustRun(t, "export", "--model", stories, "--adapter", adDir, "--merge", "--format", "hf", "--out", merged)
	gotMerged := logitsJSON(t, "--model", merged)
	var moved float64
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logits --adapter: token %d %g, engine %g", i, got[i], want[i])
		}
		if d := math.Abs(gotMerged[i] - want[i]); d > 1e-5*(1+math.Abs(want[i])) {
			t.Fatalf("merged export: token %d %g, unmerged %g", i, gotMerged[i], want[i])
		}
		moved = math.Max(moved, math.Abs(base[i]-want[i]))
	}
	if moved < 1e-2 {
		t.Fatalf("the adapter moves log-probs by only %g", moved)
	}

	adGGUF := filepath.Join(dir, "adapter.gguf")
	mustRun(t, "export", "--model", stories, "--adapter", adDir, "--format", "gguf", "--out", adGGUF)
	f, err := gguf.Open(adGGUF)
	if err != nil {
		t.Fatal(err)
	}
	if typ, _, _ := f.String("general.type"); typ != "adapter" || len(f.Tensors) != 2*len(ad.Layers) {
		t.Fatalf("adapter GGUF: general.type %q, %d tensors for %d adapted weights", typ, len(f.Tensors), len(ad.Layers))
	}
	mustRun(t, "export", "--model", stories, "--adapter", adDir, "--merge", "--format", "gguf", "--out", filepath.Join(dir, "merged.gguf"))
	peftCopy := filepath.Join(dir, "peft-copy")
	mustRun(t, "export", "--model", stories, "--adapter", adDir, "--format", "hf", "--out", peftCopy)
	if _, _, err := lora.Load(peftCopy, ck.Weights); err != nil {
		t.Fatalf("the hf adapter export does not load back: %v", err)
	}

	gen := mustRun(t, "generate", "--model", stories, "--adapter", adDir, "--prompt", "Once upon a time", "--max-new-tokens", "8")
	genMerged := mustRun(t, "generate", "--model", merged, "--prompt", "Once upon a time", "--max-new-tokens", "8")
	if !strings.HasPrefix(gen.Stdout, "Once upon a time") || gen.Stdout != genMerged.Stdout {
		t.Fatalf("generate --adapter %q, merged model %q", gen.Stdout, genMerged.Stdout)
	}
	if _, err := serve.New(context.Background(), serve.Config{Model: stories, Adapter: adDir}); err != nil {
		t.Fatalf("serve with the adapter: %v", err)
	}

	// An adapter trained on another base: a model of width 48 instead of 64.
	other := filepath.Join(dir, "other-adapter")
	c := ck.Weights.Config
	c.HiddenSize, c.HeadDim = 48, 6
	ow := model.InitRandom(c, 1, 0.02)
	oad, err := lora.New(lora.Config{}, ow, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := lora.Save(other, oad, ow, lora.Meta{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--model", stories, "--merge", "--out", filepath.Join(dir, "x.gguf")},
			"alignkit: --merge needs --adapter DIR (the LoRA adapter to fold into --model)"},
		{[]string{"export", "--model", stories, "--adapter", adDir, "--dtype", "f16", "--out", filepath.Join(dir, "x.gguf")},
			"alignkit: --dtype f16: a LoRA adapter is exported in f32 (add --merge to export the merged model in f16)"},
		{[]string{"logits", "--model", stories, "--adapter", other, "--tokens", "1,2"},
			"alignkit: " + other + `: tensor "model.layers.0.self_attn.q_proj.lora_A.weight" has shape [16 48], the base's model.layers.0.self_attn.q_proj.weight [64 64] implies [16 64]`},
		{[]string{"generate", "--model", stories, "--adapter", filepath.Join(dir, "missing"), "--prompt", "x"},
			"alignkit: lora: opening adapter: stat " + filepath.Join(dir, "missing", "adapter_config.json") + ": no such file or directory"},
	} {
		res := runCLI(t, tc.args...)
		if res.Code == 0 || res.ErrorLine() != tc.want {
			t.Errorf("alignkit %s: exit %d, error line\n%s\nwant\n%s", strings.Join(tc.args, " "), res.Code, res.ErrorLine(), tc.want)
		}
	}
}
