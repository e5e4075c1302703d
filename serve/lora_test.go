package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/rlhf"
)

// saveLoRA saves a rank-4 all-linear adapter over stories260K whose B matrices are filled with
// seeded values (a fresh adapter's B is 0, which would leave the model unchanged), and returns
// its directory.
func saveLoRA(t *testing.T, seed uint64) string {
	t.Helper()
	ck := testutil.Stories(t)
	r := 4
	ad, err := lora.New(lora.Config{LoraR: &r, LoraTargetModules: lora.AllLinear}, ck.Weights, seed)
	if err != nil {
		t.Fatal(err)
	}
	k := float64(seed)
	for _, name := range ad.LayerNames() {
		for i := range ad.Layers[name].B.Data {
			k++
			ad.Layers[name].B.Data[i] = float32(0.2 * math.Sin(1.7*k))
		}
	}
	ck.Adapter = ad
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("adapter%d", seed))
	if err := checkpoint.SaveAdapter(dir, ck); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loraServer serves stories260K with runtime LoRA updating on.
func loraServer(t *testing.T, maxLoRAs int) string {
	t.Helper()
	ck := testutil.Stories(t)
	gen, err := rlhf.NewLocal(ck, "")
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, NewWith(gen, nil, Config{Model: ck.Source, AllowRuntimeLoRA: true, MaxLoRAs: maxLoRAs}))
}

// A loaded adapter generates, under its name, what `alignkit serve --adapter DIR` generates with
// the same request (unmerged over the same base), and not what the base generates; /v1/models
// lists it; once unloaded its name is 404, and so is unloading it again.
func TestRuntimeLoRALoadGenerateUnload(t *testing.T) {
	dir := saveLoRA(t, 5)
	base := loraServer(t, 0)
	fixed, err := New(context.Background(), Config{Model: testutil.StoriesDir(t), Adapter: dir})
	if err != nil {
		t.Fatal(err)
	}
	ref := startServer(t, fixed)

	if code, body := post(t, base+"/v1/load_lora_adapter", map[string]any{"lora_name": "policy-1", "lora_path": dir}); code != 200 ||
		string(body) != "Success: LoRA adapter 'policy-1' added successfully." {
		t.Fatalf("load: %d %s", code, body)
	}
	ms := decodeJSON[struct {
		Data []struct {
			ID     string `json:"id"`
			Parent string `json:"parent"`
		} `json:"data"`
	}](t, mustGet(t, base+"/v1/models"))
	if len(ms.Data) != 2 || ms.Data[0].ID != "stories260K" || ms.Data[1].ID != "policy-1" || ms.Data[1].Parent != "stories260K" {
		t.Fatalf("/v1/models: %+v", ms.Data)
	}

	req := func(model string) map[string]any {
		return map[string]any{"model": model, "prompt": []string{"Lily saw a cat", "Once upon a time"}, "n": 2, "seed": 7,
			"temperature": 0.9, "max_tokens": 12}
	}
	texts := func(url, model string) []string {
		code, body := post(t, url+"/v1/completions", req(model))
		if code != 200 {
			t.Fatalf("%s model %s: %d %s", url, model, code, body)
		}
		res := decodeJSON[completionResponse](t, body)
		if res.Model != model {
			t.Errorf("answer's model %q, want %q", res.Model, model)
		}
		var out []string
		for _, c := range res.Choices {
			out = append(out, c.Text)
		}
		return out
	}
	got, want, plain := texts(base, "policy-1"), texts(ref, fixed.Name()), texts(base, "stories260K")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("loaded adapter: %q\nserve --adapter: %q", got, want)
	}
	if fmt.Sprint(got) == fmt.Sprint(plain) {
		t.Errorf("the adapter changed nothing: %q", got)
	}
	// Streaming takes the same engine: prompt 0's choice 0 was drawn with seed 7 too.
	code, body := post(t, base+"/v1/completions", map[string]any{"model": "policy-1", "prompt": "Lily saw a cat", "seed": 7,
		"temperature": 0.9, "max_tokens": 12, "stream": true})
	if streamed, _ := collect(t, sseEvents(t, body)); code != 200 || streamed[0] != got[0] {
		t.Errorf("stream: %d %q, want %q", code, streamed[0], got[0])
	}

	if code, body := post(t, base+"/v1/unload_lora_adapter", map[string]any{"lora_name": "policy-1"}); code != 200 ||
		string(body) != "Success: LoRA adapter 'policy-1' removed successfully." {
		t.Fatalf("unload: %d %s", code, body)
	}
	for path, b := range map[string]map[string]any{
		"/v1/completions":         req("policy-1"),
		"/v1/unload_lora_adapter": {"lora_name": "policy-1"},
	} {
		code, body := post(t, base+path, b)
		want := `{"error":{"code":null,"message":"model \"policy-1\" is not served here: this server serves \"stories260K\"","param":"model","type":"invalid_request_error"}}`
		if path == "/v1/unload_lora_adapter" {
			want = `{"error":{"code":null,"message":"the LoRA adapter \"policy-1\" is not loaded","param":"lora_name","type":"not_found_error"}}`
		}
		if code != http.StatusNotFound || compact(t, body) != want {
			t.Errorf("%s after unload: %d %s, want 404 %s", path, code, body, want)
		}
	}
}

// Without AllowRuntimeLoRA both routes are 404 with one line saying how to turn them on.
func TestRuntimeLoRAOffByDefault(t *testing.T) {
	base := "http://" + serveOn(t, Config{})
	const want = `{"error":{"code":null,"message":"runtime LoRA updating is off: start alignkit serve with --allow-runtime-lora to use /v1/load_lora_adapter and /v1/unload_lora_adapter","param":null,"type":"not_found_error"}}`
	for _, path := range []string{"/v1/load_lora_adapter", "/v1/unload_lora_adapter"} {
		code, body := post(t, base+path, map[string]any{"lora_name": "x", "lora_path": "/tmp"})
		if code != http.StatusNotFound || compact(t, body) != want {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
}

// Bad loads are 400 with one line naming the field: a missing name, a taken name, a path that is
// not an adapter directory (its content never echoed), an adapter whose base has other shapes, one
// adapter beyond max_loras.
func TestRuntimeLoRABadLoads(t *testing.T) {
	good := saveLoRA(t, 5)
	good2 := saveLoRA(t, 6)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "secret.txt")
	if err := os.WriteFile(file, []byte("top secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	noConfig := filepath.Join(tmp, "empty")
	if err := os.Mkdir(noConfig, 0o755); err != nil {
		t.Fatal(err)
	}
	// An adapter of a model whose q_proj is 64×7: Load checks its tensors against stories260K.
	const q = "model.layers.0.self_attn.q_proj.weight"
	other := &model.Weights{Config: testutil.Stories(t).Weights.Config, Tensors: map[string]*model.Tensor{q: model.NewTensor(64, 7)}}
	ad := &model.Adapter{R: 2, Alpha: 4, Layers: map[string]*model.LoRALayer{q: {A: model.NewTensor(2, 7), B: model.NewTensor(64, 2)}}}
	wrong := filepath.Join(tmp, "wrong")
	if err := lora.Save(wrong, ad, other, lora.Meta{BaseModel: "other"}); err != nil {
		t.Fatal(err)
	}

	base := loraServer(t, 2)
	if code, body := post(t, base+"/v1/load_lora_adapter", map[string]any{"lora_name": "a", "lora_path": good}); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	for _, c := range []struct {
		name, path, param, msg string
	}{
		{"", good, "lora_name", "lora_name: must be set"},
		{"has space", good, "lora_name", `lora_name "has space": want no spaces or control characters`},
		{"a", good2, "lora_name", `lora_name "a": a model of that name is already loaded; unload it first or pick another name`},
		{"stories260K", good2, "lora_name", `lora_name "stories260K": a model of that name is already loaded; unload it first or pick another name`},
		{"b", "", "lora_path", "lora_path: must be set (a PEFT adapter directory on the server's file system)"},
		{"b", filepath.Join(tmp, "missing"), "lora_path", "lora_path " + filepath.Join(tmp, "missing") + ": no such directory"},
		{"b", file, "lora_path", "lora_path " + file + ": not a directory: want a PEFT adapter directory (adapter_config.json, adapter_model.safetensors)"},
		{"b", noConfig, "lora_path", "lora_path " + noConfig + ": no adapter_config.json: want a PEFT adapter directory"},
		{"b", wrong, "lora_path", "lora_path: " + wrong + `: tensor "model.layers.0.self_attn.q_proj.lora_A.weight" has shape [2 7], the base's model.layers.0.self_attn.q_proj.weight [64 64] implies [2 64]`},
	} {
		code, body := post(t, base+"/v1/load_lora_adapter", map[string]any{"lora_name": c.name, "lora_path": c.path})
		want := fmt.Sprintf(`{"error":{"code":null,"message":%q,"param":%q,"type":"invalid_request_error"}}`, c.msg, c.param)
		if code != http.StatusBadRequest || compact(t, body) != want {
			t.Errorf("load %q %q: %d %s\nwant 400 %s", c.name, c.path, code, body, want)
		}
	}
	// The second adapter fits max_loras 2; a third does not.
	if code, body := post(t, base+"/v1/load_lora_adapter", map[string]any{"lora_name": "b", "lora_path": good2}); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	code, body := post(t, base+"/v1/load_lora_adapter", map[string]any{"lora_name": "c", "lora_path": good})
	const full = `{"error":{"code":null,"message":"lora_name \"c\": 2 LoRA adapters are loaded, the most this server holds (--max-loras 2): unload one first","param":"lora_name","type":"invalid_request_error"}}`
	if code != http.StatusBadRequest || compact(t, body) != full {
		t.Errorf("third load: %d %s", code, body)
	}
}

func mustGet(t *testing.T, url string) []byte {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// compact is a JSON answer with its keys sorted and no spaces.
func compact(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return string(b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
