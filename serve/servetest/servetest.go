// Package servetest runs alignkit serve in-process for tests of clients that make it follow a
// LoRA policy (ppo and grpo with backend openai): it records every adapter load and unload.
package servetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/serve"
)

// Load is one POST /v1/load_lora_adapter the server answered 200.
type Load struct {
	Name string
	Path string
	// Hash is the SHA-256 of the adapter's tensors file as the server read it.
	Hash string
}

// Server is alignkit serve with runtime LoRA updating on, behind a recorder.
type Server struct {
	// URL is the OpenAI root, http://127.0.0.1:PORT/v1.
	URL string
	// Serve is the server itself, to generate with a loaded name directly.
	Serve *serve.Server

	mu      sync.Mutex
	loads   []Load
	unloads []string
}

// Start serves ck (the base the client's policy trains an adapter over) until the test ends.
// runtimeLoRA false leaves runtime LoRA updating off, as a server that lacks it.
func Start(t testing.TB, ck *checkpoint.Model, runtimeLoRA bool) *Server {
	t.Helper()
	gen, err := rlhf.NewLocal(ck, "")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Serve: serve.NewWith(gen, nil, serve.Config{Model: ck.Source, AllowRuntimeLoRA: runtimeLoRA})}
	h := s.Serve.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.URL.Path == "/v1/load_lora_adapter" || r.URL.Path == "/v1/unload_lora_adapter" {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusOK && body != nil {
			var q struct {
				LoraName string `json:"lora_name"`
				LoraPath string `json:"lora_path"`
			}
			_ = json.Unmarshal(body, &q)
			s.mu.Lock()
			if r.URL.Path == "/v1/load_lora_adapter" {
				s.loads = append(s.loads, Load{Name: q.LoraName, Path: q.LoraPath, Hash: hashFile(t, filepath.Join(q.LoraPath, lora.WeightsFile))})
			} else {
				s.unloads = append(s.unloads, q.LoraName)
			}
			s.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(hs.Close)
	s.URL = hs.URL + "/v1"
	return s
}

// Loads are the adapters loaded so far, in order.
func (s *Server) Loads() []Load {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Load(nil), s.loads...)
}

// Unloads are the names unloaded so far, in order.
func (s *Server) Unloads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unloads...)
}

func hashFile(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("servetest: %v", err)
		return ""
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
