package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/reward"
)

// `alignkit serve` through the real command line: it answers chat completions and scores on the
// address given, and SIGINT (Ctrl-C) shuts it down gracefully with exit status 130 (128+SIGINT).
func TestServeCLI(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K")
	ck, err := checkpoint.Open(filepath.Join(shared, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	rm, err := reward.FromCausalLM(ck, 1)
	if err != nil {
		t.Fatal(err)
	}
	rewardDir := filepath.Join(t.TempDir(), "reward")
	if err := checkpoint.Save(rewardDir, rm, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	done := make(chan cliResult, 1)
	go func() {
		done <- runCLI(t, "serve", "--model", filepath.Join(shared, "models", "stories260K"), "--reward-model", rewardDir,
			"--addr", addr, "--chat-template", "chatml")
	}()
	base := "http://" + addr
	up := false
	for range 400 { // up to 20 s on a loaded machine
		if res, err := http.Get(base + "/health"); err == nil {
			res.Body.Close()
			up = res.StatusCode == http.StatusOK
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopped := false
	defer func() {
		if !stopped {
			syscall.Kill(syscall.Getpid(), syscall.SIGINT)
			<-done
		}
	}()
	if !up {
		t.Fatal("alignkit serve did not come up")
	}

	post := func(path, body string) map[string]any {
		t.Helper()
		res, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
		return v
	}
	chat := post("/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "Tell me a story."}], "n": 2, "max_tokens": 6, "seed": 1}`)
	if choices, _ := chat["choices"].([]any); len(choices) != 2 {
		t.Errorf("chat completion: %v", chat)
	}
	score := post("/v1/score", `{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}`)
	if _, ok := score["reward"].(float64); !ok {
		t.Errorf("score: %v", score)
	}

	syscall.Kill(syscall.Getpid(), syscall.SIGINT)
	var res cliResult
	select {
	case res = <-done:
		stopped = true
	case <-time.After(20 * time.Second):
		t.Fatal("alignkit serve did not stop on SIGINT")
	}
	if res.Code != 130 || !strings.Contains(res.Stderr, "serving stories260K on http://"+addr+"/v1") ||
		!strings.Contains(res.Stderr, "POST /v1/chat/completions") {
		t.Errorf("exit %d, stderr:\n%s", res.Code, res.Stderr)
	}
	if _, err := http.Get(base + "/health"); err == nil {
		t.Errorf("the server still answers after SIGINT")
	}

	// No model: cobra's required-flag error.
	if r := runCLI(t, "serve"); r.Code != 1 || r.ErrorLine() != `alignkit: required flag(s) "model" not set` {
		t.Errorf("serve without --model: %d %s", r.Code, r.ErrorLine())
	}
	// A reward model that is not one.
	r := runCLI(t, "serve", "--model", filepath.Join(shared, "models", "stories260K"), "--reward-model", filepath.Join(shared, "models", "stories260K"))
	want := "alignkit: reward model: " + filepath.Join(shared, "models", "stories260K") + " is not a reward model: it has no score.weight (architectures LlamaForCausalLM); train one with `alignkit reward train`"
	if r.Code != 1 || r.ErrorLine() != want {
		t.Errorf("serve with a causal LM as reward model: %d\n%s\nwant %s", r.Code, r.ErrorLine(), want)
	}
}
