package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
)

// sharedDir is ../shared; tests skip unless it holds stories260K.
func sharedDir(t *testing.T) string {
	t.Helper()
	return sharedtest.Dir(t, "models/stories260K/config.json")
}

// rewardFrom turns a causal LM into a reward model with a seeded fresh score head, as the reward
// trainer starts from an SFT model.
func rewardFrom(t *testing.T, ck *checkpoint.Model, seed uint64) *checkpoint.Model {
	t.Helper()
	r, err := reward.FromCausalLM(ck, seed)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startServer serves s on a loopback port until the test ends and returns its base URL.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func newTestServer(t *testing.T, chatTemplate string, withReward bool) (*Server, *rlhf.Local) {
	t.Helper()
	ck := testutil.Stories(t)
	gen, err := rlhf.NewLocal(ck, chatTemplate)
	if err != nil {
		t.Fatal(err)
	}
	var sc rlhf.Scorer
	if withReward {
		if sc, err = rlhf.NewScorer(rewardFrom(t, ck, 3), chatTemplate); err != nil {
			t.Fatal(err)
		}
	}
	return NewWith(gen, sc, Config{Model: ck.Source}), gen
}

// post sends a JSON body and returns the status and the raw answer.
func post(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	res, err := http.Post(url, "application/json", rd)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, out
}

func decodeJSON[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

type completionResponse struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int    `json:"index"`
		Text    string `json:"text"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

type errorResponse struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    any     `json:"code"`
	} `json:"error"`
}

// sseEvents splits a Server-Sent Events body into its data payloads.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.Split(strings.TrimRight(string(body), "\n"), "\n\n") {
		if !strings.HasPrefix(ev, "data: ") || strings.Contains(ev, "\n") {
			t.Fatalf("malformed event %q", ev)
		}
		out = append(out, strings.TrimPrefix(ev, "data: "))
	}
	return out
}
