package rlhf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/serve"
)

// recorder sits in front of a real alignkit server: it logs every request's path, n, seed and
// Authorization header, and can misbehave first (errors, stalls) like real servers do.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	log  []call
	// misbehave, when set, may answer a request itself (true) instead of passing it on.
	misbehave func(w http.ResponseWriter, r *http.Request, c call, nth int) bool
}

type call struct {
	Path string
	N    int
	Seed int64
	TopK int
	Auth string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var q struct {
		N    int   `json:"n"`
		Seed int64 `json:"seed"`
		TopK int   `json:"top_k"`
	}
	_ = json.Unmarshal(body, &q)
	if q.N == 0 {
		q.N = 1
	}
	c := call{Path: r.URL.Path, N: q.N, Seed: q.Seed, TopK: q.TopK, Auth: r.Header.Get("Authorization")}
	rc.mu.Lock()
	rc.log = append(rc.log, c)
	nth := len(rc.log)
	rc.mu.Unlock()
	if rc.misbehave != nil && rc.misbehave(w, r, c, nth) {
		return
	}
	rc.next.ServeHTTP(w, r)
}

func (rc *recorder) posts() []call {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []call
	for _, c := range rc.log {
		if c.Path != "/v1/models" {
			out = append(out, c)
		}
	}
	return out
}

// llamaServerNoN answers n > 1 as llama-server does (some builds with 400, others with 500).
func llamaServerNoN(status int) func(http.ResponseWriter, *http.Request, call, int) bool {
	return func(w http.ResponseWriter, r *http.Request, c call, _ int) bool {
		if c.N <= 1 {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		typ := "invalid_request_error"
		if status >= 500 {
			typ = "server_error"
		}
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"Only one completion choice is allowed","type":"%s"}}`, status, typ)
		return true
	}
}

var storyPrompts = []rlhf.Prompt{
	{Text: "Once upon a time", Source: "test", Row: 0},
	{Text: "Lily saw a big dog", Source: "test", Row: 1},
	{Text: "Tom and his mom", Source: "test", Row: 2},
}

var chatPrompts = []rlhf.Prompt{
	{Messages: []chat.Message{{Role: "user", Content: "Tell me a story."}}, Source: "test", Row: 0},
	{Messages: []chat.Message{{Role: "system", Content: "Be kind."}, {Role: "user", Content: "What is a cat?"}}, Source: "test", Row: 1},
}

var sampling = rlhf.Sampling{Temperature: 1.0, TopP: 0.95, TopK: 40, MaxNewTokens: 12, Seed: 77}

// newServe starts a real alignkit server on loopback behind a recorder.
func newServe(t *testing.T, chatTemplate string, misbehave func(http.ResponseWriter, *http.Request, call, int) bool) (string, *recorder, *rlhf.Local) {
	t.Helper()
	gen, err := rlhf.NewLocal(testutil.Stories(t), chatTemplate)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recorder{next: serve.NewWith(gen, nil, serve.Config{Model: storiesDir(t)}).Handler(), misbehave: misbehave}
	return serveHTTP(t, rc), rc, gen
}

func localSamples(t *testing.T, gen *rlhf.Local, prompts []rlhf.Prompt, k int) [][]string {
	t.Helper()
	want, err := gen.Generate(context.Background(), prompts, k, sampling)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// The openai backend against a real alignkit server samples exactly what the local backend samples
// (same seeds Seed + i·K + j, top_k passed through as an extra body field), with one n = K request
// per prompt, on /v1/completions for text and /v1/chat/completions for conversations.
func TestOpenAIMatchesLocal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		template string
		prompts  []rlhf.Prompt
		path     string
	}{
		{"text", "", storyPrompts, "/v1/completions"},
		{"chat", "chatml", chatPrompts, "/v1/chat/completions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, rc, gen := newServe(t, tc.template, nil)
			const k = 3
			o, err := rlhf.NewOpenAI(context.Background(), rlhf.OpenAIConfig{BaseURL: base + "/v1", Concurrency: 2, APIKey: "sk-test-secret"})
			if err != nil {
				t.Fatal(err)
			}
			if o.Model() != "stories260K" {
				t.Errorf("model %q, want the server's stories260K", o.Model())
			}
			got, err := o.Generate(context.Background(), tc.prompts, k, sampling)
			if err != nil {
				t.Fatal(err)
			}
			if want := localSamples(t, gen, tc.prompts, k); !reflect.DeepEqual(got, want) {
				t.Errorf("openai backend:\n%q\nlocal:\n%q", got, want)
			}
			posts := rc.posts()
			if len(posts) != len(tc.prompts) {
				t.Fatalf("%d requests, want one per prompt: %+v", len(posts), posts)
			}
			seeds := map[int64]bool{}
			for _, c := range posts {
				if c.N != k || c.TopK != 40 || c.Path != tc.path || c.Auth != "Bearer sk-test-secret" {
					t.Errorf("request %+v", c)
				}
				seeds[c.Seed] = true
			}
			for i := range tc.prompts {
				if !seeds[int64(sampling.Seed)+int64(i*k)] {
					t.Errorf("no request for prompt %d with seed Seed+i·K = %d: %v", i, int(sampling.Seed)+i*k, seeds)
				}
			}
		})
	}
}

// A server that refuses n > 1 (llama-server's "Only one completion choice is allowed", as 400 or as
// 500, which must not be retried) or ignores n, and a config that says n_supported: false, all get K
// single requests with seeds Seed + i·K + j — and still the local backend's samples.
func TestOpenAIFallbackToSingleRequests(t *testing.T) {
	no := false
	ignoreN := func(w http.ResponseWriter, r *http.Request, c call, _ int) bool {
		if c.N <= 1 {
			return false
		}
		// Forward with n removed: one choice comes back, as from a server that ignores n.
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		delete(m, "n")
		b, _ := json.Marshal(m)
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		return false
	}
	for _, tc := range []struct {
		name      string
		misbehave func(http.ResponseWriter, *http.Request, call, int) bool
		nSupport  *bool
		nRequests int // requests with n > 1 before the switch
	}{
		{"rejects n with 400", llamaServerNoN(400), nil, 1},
		{"rejects n with 500", llamaServerNoN(500), nil, 1},
		{"ignores n", ignoreN, nil, 1},
		{"n_supported false", llamaServerNoN(400), &no, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, rc, gen := newServe(t, "", tc.misbehave)
			var log bytes.Buffer
			const k = 3
			o, err := rlhf.NewOpenAI(context.Background(), rlhf.OpenAIConfig{BaseURL: base, Concurrency: 1, MaxRetries: 2,
				NSupported: tc.nSupport, Log: &log, RetryBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			got, err := o.Generate(context.Background(), storyPrompts, k, sampling)
			if err != nil {
				t.Fatal(err)
			}
			if want := localSamples(t, gen, storyPrompts, k); !reflect.DeepEqual(got, want) {
				t.Errorf("openai backend:\n%q\nlocal:\n%q", got, want)
			}
			var withN, singles int
			seeds := map[int64]int{}
			for _, c := range rc.posts() {
				if c.N > 1 {
					withN++
					continue
				}
				singles++
				seeds[c.Seed]++
			}
			// After the switch no request asks for n again; "ignores n" got prompt 0's first sample
			// from its n request, so it needs one single request fewer.
			wantSingles := len(storyPrompts) * k
			if tc.name == "ignores n" {
				wantSingles--
			}
			if withN != tc.nRequests || singles != wantSingles {
				t.Errorf("%d requests with n, %d single: want %d and %d", withN, singles, tc.nRequests, wantSingles)
			}
			for s := range len(storyPrompts) * k {
				if seeds[int64(sampling.Seed)+int64(s)] > 1 {
					t.Errorf("seed %d requested %d times", int(sampling.Seed)+s, seeds[int64(sampling.Seed)+int64(s)])
				}
			}
			if tc.nSupport == nil && !strings.Contains(log.String(), "does not take n > 1") {
				t.Errorf("no fallback note in the log: %q", log.String())
			}
		})
	}
}

// 500 then 200, and 429 with Retry-After: the request is retried and the samples are unchanged.
func TestOpenAIRetries(t *testing.T) {
	for _, status := range []int{500, 503, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			failed := 0
			var mu sync.Mutex
			base, rc, gen := newServe(t, "", func(w http.ResponseWriter, r *http.Request, c call, nth int) bool {
				mu.Lock()
				defer mu.Unlock()
				if c.Path == "/v1/models" || failed > 0 {
					return false
				}
				failed++
				if status == 429 {
					w.Header().Set("Retry-After", "0")
				}
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"error":{"message":"busy","type":"server_error","code":%d}}`, status)
				return true
			})
			o, err := rlhf.NewOpenAI(context.Background(), rlhf.OpenAIConfig{BaseURL: base + "/v1", Concurrency: 1, MaxRetries: 1, RetryBackoff: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			got, err := o.Generate(context.Background(), storyPrompts[:1], 2, sampling)
			if err != nil {
				t.Fatal(err)
			}
			if want := localSamples(t, gen, storyPrompts[:1], 2); !reflect.DeepEqual(got, want) {
				t.Errorf("after retry %q, local %q", got, want)
			}
			if posts := rc.posts(); len(posts) != 2 || posts[0] != posts[1] {
				t.Errorf("requests %+v: want the same request twice", posts)
			}
		})
	}
}

// Each failure is one line naming the request and what went wrong; transient ones say how many
// attempts were made, and the API key never appears.
func TestOpenAIErrors(t *testing.T) {
	ctx := context.Background()
	// Unreachable: nothing listens on the port.
	addr := freePort(t)
	_, err := rlhf.NewOpenAI(ctx, rlhf.OpenAIConfig{BaseURL: "http://" + addr, MaxRetries: 1, RetryBackoff: time.Millisecond, APIKey: "sk-secret"})
	want := "openai backend: GET http://" + addr + "/v1/models: cannot reach the server: connection refused (after 2 attempts)"
	if err == nil || err.Error() != want {
		t.Errorf("unreachable: %v\nwant %s", err, want)
	}

	// A server that never answers within request_timeout.
	stall := make(chan struct{})
	defer close(stall)
	base, _, _ := newServe(t, "", func(w http.ResponseWriter, r *http.Request, c call, _ int) bool {
		if c.Path == "/v1/models" {
			return false
		}
		select {
		case <-stall:
		case <-r.Context().Done():
		}
		return true
	})
	o, err := rlhf.NewOpenAI(ctx, rlhf.OpenAIConfig{BaseURL: base + "/v1", MaxRetries: 1, RequestTimeout: 100 * time.Millisecond,
		RetryBackoff: time.Millisecond, APIKey: "sk-secret"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = o.Generate(ctx, storyPrompts[:1], 2, sampling)
	want = "test: row 0: openai backend: POST " + base + "/v1/completions: no answer within request_timeout 100ms (after 2 attempts)"
	if err == nil || err.Error() != want {
		t.Errorf("timeout: %v\nwant %s", err, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %s", d)
	}

	// A client error is not retried, and the server's message is kept.
	base, rc, _ := newServe(t, "", nil)
	o, err = rlhf.NewOpenAI(ctx, rlhf.OpenAIConfig{BaseURL: base + "/v1", Model: "other-model", MaxRetries: 3, APIKey: "sk-secret"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.Generate(ctx, storyPrompts[:1], 2, sampling)
	want = `test: row 0: openai backend: POST ` + base + `/v1/completions: the server answered 404: model "other-model" is not served here: this server serves "stories260K"`
	if err == nil || err.Error() != want || len(rc.posts()) != 1 {
		t.Errorf("404: %v (%d requests)\nwant %s", err, len(rc.posts()), want)
	}

	// K < 1, and a bad base URL.
	_, err = o.Generate(ctx, storyPrompts, 0, sampling)
	if err == nil || err.Error() != "num_samples_per_prompt 0: want K >= 1 completions per prompt" {
		t.Errorf("K=0: %v", err)
	}
	_, err = rlhf.NewOpenAI(ctx, rlhf.OpenAIConfig{BaseURL: "localhost:8080"})
	if err == nil || err.Error() != `openai backend: base_url "localhost:8080": want an http:// or https:// URL` {
		t.Errorf("bad url: %v", err)
	}
}

// An alignkit server asked for more than serve.MaxN choices answers 400 with param "n": the backend
// takes that as "no n" and still returns the local backend's samples, one request per sample.
func TestOpenAIParamNRejection(t *testing.T) {
	base, rc, gen := newServe(t, "", nil)
	k := serve.MaxN + 2
	o, err := rlhf.NewOpenAI(context.Background(), rlhf.OpenAIConfig{BaseURL: base, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	s := sampling
	s.MaxNewTokens = 3
	got, err := o.Generate(context.Background(), storyPrompts[:1], k, s)
	if err != nil {
		t.Fatal(err)
	}
	want, err := gen.Generate(context.Background(), storyPrompts[:1], k, s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("openai backend differs from local for K=%d", k)
	}
	if posts := rc.posts(); len(posts) != 1+k || posts[0].N != k {
		t.Errorf("%d requests (first n=%d), want one n=%d request then %d single ones", len(posts), posts[0].N, k, k)
	}
}
