package rlhf_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/rlhf"
)

// fakeLoRAServer answers /v1/models, the runtime LoRA routes (checking that the adapter is
// complete when it is loaded) and /v1/completions with two fixed choices: " she went" ended by
// EOS ("stop"), " and the" cut by max_tokens ("length").
type fakeLoRAServer struct {
	mu       sync.Mutex
	held     map[string]bool
	loads    []string
	unloads  []string
	requests []map[string]any
}

func (f *fakeLoRAServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/models":
		_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"base","object":"model"}]}`))
	case "/v1/load_lora_adapter":
		dir, _ := body["lora_path"].(string)
		for _, f := range []string{lora.ConfigFile, lora.WeightsFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":{"message":"incomplete adapter"}}`))
				return
			}
		}
		name := body["lora_name"].(string)
		if f.held[name] {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"object":"error","message":"The lora adapter '` + name + `' has already been loaded.","type":"InvalidUserInput","param":null,"code":400}`))
			return
		}
		if !filepath.IsAbs(dir) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"message":"relative lora_path"}}`))
			return
		}
		f.held[name] = true
		f.loads = append(f.loads, name)
		_, _ = w.Write([]byte(`"Success"`))
	case "/v1/unload_lora_adapter":
		f.unloads = append(f.unloads, body["lora_name"].(string))
		delete(f.held, body["lora_name"].(string))
	case "/v1/completions":
		f.requests = append(f.requests, body)
		_, _ = w.Write([]byte(`{"id":"x","object":"text_completion","model":"m","choices":[
			{"index":1,"text":" and the","finish_reason":"length"},{"index":0,"text":" she went","finish_reason":"stop"}]}`))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// ServedPolicy loads the adapter once per step (a new name each, the previous one unloaded and its
// directory removed), requests the loaded name with the sampling parameters, and turns the texts
// into the policy's tokens: in context after the prompt, EOS appended on "stop", cut at
// max_new_tokens.
func TestServedPolicy(t *testing.T) {
	fake := &fakeLoRAServer{held: map[string]bool{}}
	hs := httptest.NewServer(fake)
	defer hs.Close()
	ck := testutil.Stories(t)
	r := 2
	ad, err := lora.New(lora.Config{LoraR: &r}, ck.Weights, 1)
	if err != nil {
		t.Fatal(err)
	}
	ck.Adapter = ad
	local, err := rlhf.NewLocal(ck, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // Dir is given relative: the server must get an absolute lora_path
	dir := filepath.Join("out", rlhf.RolloutAdapterDir)
	ctx := context.Background()
	sp, err := rlhf.NewServedPolicy(ctx, rlhf.ServedPolicyConfig{
		Backend: rlhf.BackendConfig{Backend: rlhf.BackendOpenAI, BaseURL: hs.URL + "/v1"},
		Dir:     dir, Save: func(d string) error { return checkpoint.SaveAdapter(d, ck) }, Local: local,
	})
	if err != nil {
		t.Fatal(err)
	}
	prompts := []rlhf.Prompt{{Text: "Once upon a time", Source: "test"}}
	s := rlhf.Sampling{Temperature: 0.5, TopP: 0.9, MaxNewTokens: 8, Seed: 11}
	if _, err := sp.Complete(ctx, prompts, 2, s); err == nil || err.Error() != "rlhf: ServedPolicy.Complete before Sync: the server holds no policy" {
		t.Errorf("Complete before Sync: %v", err)
	}
	for _, step := range []int{1, 1, 2} {
		if err := sp.Sync(ctx, step); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"alignkit-policy-step-1", "alignkit-policy-step-2"}; !slices.Equal(fake.loads, want) || sp.Loads() != 2 {
		t.Errorf("loads %q (%d), want %q", fake.loads, sp.Loads(), want)
	}
	if !slices.Equal(fake.unloads, []string{"alignkit-policy-step-1"}) {
		t.Errorf("unloads %q", fake.unloads)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 || left[0].Name() != "step-2" {
		t.Errorf("%s holds %v, want step-2 alone", dir, left)
	}

	got, err := sp.Complete(ctx, prompts, 2, s)
	if err != nil {
		t.Fatal(err)
	}
	req := fake.requests[0]
	for k, v := range map[string]any{"model": "alignkit-policy-step-2", "prompt": "Once upon a time", "n": 2.0, "seed": 11.0,
		"temperature": 0.5, "top_p": 0.9, "max_tokens": 8.0} {
		if req[k] != v {
			t.Errorf("request %s = %v, want %v", k, req[k], v)
		}
	}
	tok := local.Tokenizer()
	pid := tok.Encode("Once upon a time", tok.AddBOS())
	inContext := func(text string) []int32 { return tok.Encode("Once upon a time"+text, tok.AddBOS())[len(pid):] }
	want := []rlhf.Completion{
		{Text: " she went", IDs: append(inContext(" she went"), tok.EOS()), FinishReason: "stop"},
		{Text: " and the", IDs: inContext(" and the"), FinishReason: "length"},
	}
	for j := range want {
		if g := got[0][j]; g.Text != want[j].Text || !slices.Equal(g.IDs, want[j].IDs) || g.FinishReason != want[j].FinishReason {
			t.Errorf("completion %d: %+v, want %+v", j, g, want[j])
		}
	}
	// Two tokens allowed: " she went" and its EOS do not fit; it is cut and counts as "length".
	s.MaxNewTokens = 2
	got, err = sp.Complete(ctx, prompts, 2, s)
	if err != nil {
		t.Fatal(err)
	}
	if g := got[0][0]; !slices.Equal(g.IDs, inContext(" she went")[:2]) || g.FinishReason != "length" {
		t.Errorf("cut completion: %+v", g)
	}
	if err := sp.Close(ctx); err != nil || !slices.Equal(fake.unloads, []string{"alignkit-policy-step-1", "alignkit-policy-step-2"}) {
		t.Errorf("Close: %v, unloads %q", err, fake.unloads)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after Close %s is still there (%v)", dir, err)
	}

	// A second run (a resumed one) whose first step an earlier run had loaded replaces that adapter.
	fake.held["alignkit-policy-step-7"] = true
	sp2, err := rlhf.NewServedPolicy(ctx, rlhf.ServedPolicyConfig{
		Backend: rlhf.BackendConfig{Backend: rlhf.BackendOpenAI, BaseURL: hs.URL + "/v1"},
		Dir:     dir, Save: func(d string) error { return checkpoint.SaveAdapter(d, ck) }, Local: local,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp2.Sync(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if fake.loads[len(fake.loads)-1] != "alignkit-policy-step-7" || fake.unloads[len(fake.unloads)-1] != "alignkit-policy-step-7" {
		t.Errorf("stale adapter not replaced: loads %q, unloads %q", fake.loads, fake.unloads)
	}
}
