package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/infer"
	"github.com/alignkit/alignkit/rlhf"
)

// Greedy decoding through /v1/completions reproduces llama.cpp's greedy continuation of both
// reference texts (shared/reference/stories260K_llamacpp.json), streamed or not. llama.cpp's
// greedy_text is the decoded continuation alone, without the space that joins it to the prompt; the
// server keeps that space (as llama-server does), so it is compared after TrimLeft.
func TestGreedyMatchesLlamaCpp(t *testing.T) {
	s, _ := newTestServer(t, "", false)
	base := startServer(t, s)
	raw, err := os.ReadFile(filepath.Join(sharedDir(t), "reference", "stories260K_llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases []struct {
			Text           string  `json:"text"`
			GreedyLlamaCpp []int32 `json:"greedy_llamacpp"`
			GreedyText     string  `json:"greedy_text"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for _, c := range ref.Cases {
		req := map[string]any{"prompt": c.Text, "temperature": 0, "max_tokens": len(c.GreedyLlamaCpp)}
		status, body := post(t, base+"/v1/completions", req)
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
		res := decodeJSON[completionResponse](t, body)
		if len(res.Choices) != 1 || strings.TrimLeft(res.Choices[0].Text, " ") != c.GreedyText {
			t.Errorf("%q: got %q, llama.cpp %q", c.Text, res.Choices[0].Text, c.GreedyText)
		}
		if res.Object != "text_completion" || res.Model != "stories260K" || res.Choices[0].FinishReason != "length" ||
			res.Usage.CompletionTokens != len(c.GreedyLlamaCpp) || res.Usage.TotalTokens != res.Usage.PromptTokens+len(c.GreedyLlamaCpp) {
			t.Errorf("response fields: %s", body)
		}

		req["stream"] = true
		status, body = post(t, base+"/v1/completions", req)
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
		events := sseEvents(t, body)
		if events[len(events)-1] != "[DONE]" {
			t.Fatalf("stream does not end with [DONE]: %q", events[len(events)-1])
		}
		var text strings.Builder
		var finish string
		for _, ev := range events[:len(events)-1] {
			var chunk struct {
				Object  string `json:"object"`
				Choices []struct {
					Text         string  `json:"text"`
					FinishReason *string `json:"finish_reason"`
				} `json:"choices"`
			}
			if err := json.Unmarshal([]byte(ev), &chunk); err != nil || chunk.Object != "text_completion" || len(chunk.Choices) != 1 {
				t.Fatalf("chunk %s: %v", ev, err)
			}
			text.WriteString(chunk.Choices[0].Text)
			if chunk.Choices[0].FinishReason != nil {
				finish = *chunk.Choices[0].FinishReason
			}
		}
		if text.String() != res.Choices[0].Text || finish != "length" {
			t.Errorf("streamed %q (finish %q), want %q", text.String(), finish, res.Choices[0].Text)
		}
		// Greedy output comes one token per chunk: at least one chunk per word.
		if len(events) < len(strings.Fields(c.GreedyText)) {
			t.Errorf("only %d events for %d words", len(events), len(strings.Fields(c.GreedyText)))
		}
	}
}

// Choice j of a request with n and seed S is the sample drawn with seed S+j: one request with n = 3
// equals three requests with n = 1 and seeds S, S+1, S+2, and both equal the local backend.
func TestSeedsAndN(t *testing.T) {
	s, gen := newTestServer(t, "", false)
	base := startServer(t, s)
	const seed = 1234
	req := map[string]any{"model": "stories260K", "prompt": "Lily saw a cat", "n": 3, "seed": seed,
		"temperature": 1.1, "top_p": 0.95, "top_k": 40, "max_tokens": 20}
	status, body := post(t, base+"/v1/completions", req)
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	res := decodeJSON[completionResponse](t, body)
	local, err := gen.Generate(context.Background(), []rlhf.Prompt{{Text: "Lily saw a cat"}}, 3,
		rlhf.Sampling{Temperature: 1.1, TopP: 0.95, TopK: 40, MaxNewTokens: 20, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for j := range 3 {
		if res.Choices[j].Index != j || res.Choices[j].Text != local[0][j] {
			t.Errorf("choice %d: index %d %q, local %q", j, res.Choices[j].Index, res.Choices[j].Text, local[0][j])
		}
		distinct[res.Choices[j].Text] = true
		single := map[string]any{"prompt": "Lily saw a cat", "seed": seed + j, "temperature": 1.1, "top_p": 0.95, "top_k": 40, "max_tokens": 20}
		_, b := post(t, base+"/v1/completions", single)
		if got := decodeJSON[completionResponse](t, b); got.Choices[0].Text != res.Choices[j].Text {
			t.Errorf("seed %d alone: %q, choice %d of n=3: %q", seed+j, got.Choices[0].Text, j, res.Choices[j].Text)
		}
	}
	if len(distinct) < 2 {
		t.Errorf("3 samples at temperature 1.1 are all equal: %q", res.Choices[0].Text)
	}

	// A list of prompts: prompt p's choice j is drawn with seed + p·n + j, as in rlhf.Sampling.
	req["prompt"] = []string{"Tom had a ball", "Lily saw a cat"}
	req["n"] = 2
	_, body = post(t, base+"/v1/completions", req)
	res = decodeJSON[completionResponse](t, body)
	if len(res.Choices) != 4 || res.Choices[2].Text != local[0][2] || res.Choices[3].Index != 3 {
		t.Errorf("prompt list: %s", body)
	}
}

// Token-id prompts are fed as given: the ids of "Once upon a time" continue like the text.
func TestTokenIDPrompt(t *testing.T) {
	s, _ := newTestServer(t, "", false)
	base := startServer(t, s)
	_, a := post(t, base+"/v1/completions", map[string]any{"prompt": []int{1, 403, 407, 261, 378}, "temperature": 0, "max_tokens": 8})
	_, b := post(t, base+"/v1/completions", map[string]any{"prompt": "Once upon a time", "temperature": 0, "max_tokens": 8})
	ta, tb := decodeJSON[completionResponse](t, a), decodeJSON[completionResponse](t, b)
	if ta.Choices[0].Text != tb.Choices[0].Text || ta.Usage.PromptTokens != 5 || tb.Usage.PromptTokens != 5 {
		t.Errorf("ids: %s\ntext: %s", a, b)
	}
}

// Chat completions render the template with the generation prompt: the answer is what the engine
// samples after exactly those tokens. Streaming opens each choice with the assistant role and its
// content pieces add up to the message; a stop string cuts the text and sets finish_reason "stop".
func TestChatCompletions(t *testing.T) {
	s, gen := newTestServer(t, "chatml", false)
	base := startServer(t, s)
	msgs := []chat.Message{{Role: "system", Content: "You tell stories."}, {Role: "user", Content: "Tell me about a dog."}}
	req := map[string]any{"messages": []map[string]string{{"role": "system", "content": "You tell stories."},
		{"role": "user", "content": "Tell me about a dog."}}, "n": 2, "seed": 5, "temperature": 0.9, "max_tokens": 24}
	status, body := post(t, base+"/v1/chat/completions", req)
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	res := decodeJSON[completionResponse](t, body)

	// The prompt tokens by hand: chatml's rendering, template text with special tokens.
	ids, err := gen.Encode(rlhf.Prompt{Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	rendered := "<|im_start|>system\nYou tell stories.<|im_end|>\n<|im_start|>user\nTell me about a dog.<|im_end|>\n<|im_start|>assistant\n"
	tmpl, err := chat.Resolve("chatml", "", "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := tmpl.Render(msgs, true); r != rendered {
		t.Fatalf("chatml renders %q", r)
	}
	if res.Usage.PromptTokens != len(ids) || res.Object != "chat.completion" {
		t.Errorf("usage %+v for %d prompt tokens, object %q", res.Usage, len(ids), res.Object)
	}
	eng, err := infer.New(testutil.Stories(t).Weights)
	if err != nil {
		t.Fatal(err)
	}
	out, err := eng.Generate(context.Background(), [][]int32{ids, ids}, infer.Sampling{Temperature: 0.9, MaxNewTokens: 24, Seed: 5, StopIDs: testutil.Stories(t).Tok.EOSIDs()})
	if err != nil {
		t.Fatal(err)
	}
	for j := range 2 {
		if want := testutil.Stories(t).Tok.Decode(out[j]); res.Choices[j].Message.Content != want || res.Choices[j].Message.Role != "assistant" {
			t.Errorf("choice %d: %+v, engine %q", j, res.Choices[j].Message, want)
		}
	}

	req["stream"] = true
	_, body = post(t, base+"/v1/chat/completions", req)
	events := sseEvents(t, body)
	texts := map[int]string{}
	roles := map[int]string{}
	finishes := map[int]string{}
	for _, ev := range events[:len(events)-1] {
		var chunk struct {
			Object  string `json:"object"`
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Role    string `json:"role"`
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev), &chunk); err != nil || chunk.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %s: %v", ev, err)
		}
		c := chunk.Choices[0]
		if c.Delta.Role != "" {
			if texts[c.Index] != "" {
				t.Errorf("role after content in choice %d", c.Index)
			}
			roles[c.Index] = c.Delta.Role
		}
		texts[c.Index] += c.Delta.Content
		if c.FinishReason != nil {
			finishes[c.Index] = *c.FinishReason
		}
	}
	for j := range 2 {
		if texts[j] != res.Choices[j].Message.Content || roles[j] != "assistant" || finishes[j] != res.Choices[j].FinishReason {
			t.Errorf("stream choice %d: %q role %q finish %q; want %q finish %q", j, texts[j], roles[j], finishes[j],
				res.Choices[j].Message.Content, res.Choices[j].FinishReason)
		}
	}

	// Stop strings: cut at the first occurrence of any of them.
	first := res.Choices[0].Message.Content
	words := strings.Fields(first)
	if len(words) < 3 {
		t.Fatalf("answer too short to test stop: %q", first)
	}
	stop := words[2]
	delete(req, "stream")
	req["n"], req["stop"] = 1, []string{stop, "zzzz-never"}
	_, body = post(t, base+"/v1/chat/completions", req)
	res = decodeJSON[completionResponse](t, body)
	if want := first[:strings.Index(first, stop)]; res.Choices[0].Message.Content != want || res.Choices[0].FinishReason != "stop" {
		t.Errorf("stop %q: %q (%s), want %q", stop, res.Choices[0].Message.Content, res.Choices[0].FinishReason, want)
	}
}

// /v1/score reads the reward where the reward trainer does: for a text prompt, the tokens of
// prompt+response as one text (BOS first), then EOS; for a conversation, the template's rendering.
func TestScore(t *testing.T) {
	s, _ := newTestServer(t, "chatml", true)
	base := startServer(t, s)
	ck := testutil.Stories(t)
	reward := rewardFrom(t, ck, 3)
	eng, err := infer.New(reward.Weights)
	if err != nil {
		t.Fatal(err)
	}
	// Text: "Once upon a time" + " there was a dog." encoded as one string, then EOS.
	ids := append(ck.Tok.Encode("Once upon a time there was a dog.", true), ck.Tok.EOS())
	want, err := eng.Score(ids)
	if err != nil {
		t.Fatal(err)
	}
	status, body := post(t, base+"/v1/score", map[string]any{"prompt": "Once upon a time", "response": " there was a dog."})
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	got := decodeJSON[struct {
		Reward float64 `json:"reward"`
	}](t, body)
	if d := got.Reward - float64(want); d > 1e-5 || d < -1e-5 {
		t.Errorf("text reward %v, engine on the hand-built tokens %v", got.Reward, want)
	}

	// Conversation: chatml closes the answer with <|im_end|>, plain text to stories260K's vocabulary,
	// so the data layer appends EOS after the rendered answer. Both request shapes score the same
	// tokens as the scorer called directly, and differ from the text prompt's reward.
	conv := []map[string]string{{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}}
	_, a := post(t, base+"/v1/score", map[string]any{"messages": conv})
	_, b := post(t, base+"/v1/score", map[string]any{"prompt": conv[:1], "response": "Hello there."})
	ra := decodeJSON[map[string]float64](t, a)["reward"]
	rb := decodeJSON[map[string]float64](t, b)["reward"]
	msgs := []chat.Message{{Role: "user", Content: "Hi"}}
	sc, err := rlhf.NewScorer(reward, "chatml")
	if err != nil {
		t.Fatal(err)
	}
	direct, err := sc.Score(context.Background(), rlhf.Prompt{Messages: msgs}, []string{"Hello there."})
	if err != nil {
		t.Fatal(err)
	}
	if ra != rb || ra != direct[0] || ra == got.Reward {
		t.Errorf("conversation rewards: messages %v, prompt+response %v, scorer %v (text %v)", ra, rb, direct[0], got.Reward)
	}

	// Malformed score requests are 400s naming what is wrong.
	for _, tc := range []struct{ body, param, msg string }{
		{`{"messages": [{"role": "user", "content": "Hi"}], "response": "x"}`, "messages", "give either messages, or prompt and response, not both"},
		{`{"messages": [{"role": "user", "content": "Hi"}]}`, "messages",
			"messages: want a conversation ending with the assistant response to score, after at least one message"},
		{`{"prompt": "Hi"}`, "", `want {"prompt": ..., "response": "..."} or {"messages": [...]}`},
	} {
		status, body := post(t, base+"/v1/score", tc.body)
		e := decodeJSON[errorResponse](t, body)
		param := ""
		if e.Error.Param != nil {
			param = *e.Error.Param
		}
		if status != http.StatusBadRequest || e.Error.Message != tc.msg || param != tc.param {
			t.Errorf("%s: %d %s\nwant 400 param %q %q", tc.body, status, body, tc.param, tc.msg)
		}
	}
}

// Bad requests get one clear error in OpenAI's shape, with the right status and param.
func TestBadRequests(t *testing.T) {
	s, _ := newTestServer(t, "", false)
	s.cfg.MaxBodyBytes = 4096
	base := startServer(t, s)
	big := `{"prompt": "` + strings.Repeat("a", 5000) + `"}`
	cases := []struct {
		path, body string
		status     int
		param      string
		msg        string
	}{
		{"/v1/completions", `{"prompt": "x"`, 400, "", "invalid JSON body: unexpected EOF"},
		{"/v1/completions", `{"prompt": "x", "n": "two"}`, 400, "n", "invalid JSON body: field n: want int, got string"},
		{"/v1/completions", `{"n": 2}`, 400, "prompt", "prompt is missing"},
		{"/v1/completions", `{"prompt": {"a": 1}}`, 400, "prompt", "prompt: want a string, a list of strings, a list of token ids or a list of token-id lists (non-empty)"},
		{"/v1/completions", `{"prompt": "x", "n": 0}`, 400, "n", "n 0: want 1..128"},
		{"/v1/completions", `{"prompt": "x", "temperature": -1}`, 400, "temperature", "temperature -1: want >= 0"},
		{"/v1/completions", `{"prompt": "x", "top_p": 1.5}`, 400, "top_p", "top_p 1.5: want a value in [0, 1]"},
		{"/v1/completions", `{"prompt": "x", "max_tokens": 0}`, 400, "max_tokens", "max_tokens 0: want at least 1"},
		{"/v1/completions", `{"prompt": "x", "logprobs": 3}`, 400, "logprobs", "logprobs is not supported by alignkit serve"},
		{"/v1/completions", `{"prompt": [1, 9999]}`, 400, "prompt", "request: row 0: token 1: id 9999 is outside the vocabulary (512)"},
		{"/v1/completions", `{"prompt": "x", "model": "gpt-4"}`, 404, "model", `model "gpt-4" is not served here: this server serves "stories260K"`},
		{"/v1/completions", big, 413, "", "request body is larger than 4096 bytes"},
		{"/v1/chat/completions", `{"messages": []}`, 400, "messages", "messages: empty conversation"},
		{"/v1/chat/completions", `{"messages": [{"role": "robot", "content": "x"}]}`, 400, "messages", `messages[0]: role "robot": want system, user or assistant`},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "x"}]}`, 400, "messages",
			"request: row 0: a conversational prompt needs a chat template: chat template: the tokenizer has no chat_template; set chat_template to one of chatml, llama-2, llama-3, mistral, zephyr or to a Jinja template"},
		{"/v1/completions", `{"prompt": "x"} {}`, 400, "", "invalid JSON body: more than one JSON value"},
		{"/v1/completions", `{"prompt": "x", "top_logprobs": 2}`, 400, "top_logprobs", "top_logprobs is not supported by alignkit serve"},
		{"/v1/completions", `{"prompt": "x", "echo": true}`, 400, "echo", "echo is not supported by alignkit serve"},
		{"/v1/completions", `{"prompt": "x", "suffix": "y"}`, 400, "suffix", "suffix is not supported by alignkit serve"},
		{"/v1/completions", `{"prompt": "x", "tools": [{}]}`, 400, "tools", "tools are not supported by alignkit serve"},
		{"/v1/completions", `{"prompt": "x", "best_of": 3}`, 400, "best_of", "best_of 3 is not supported by alignkit serve (only best_of = n)"},
		{"/v1/completions", `{"prompt": "x", "top_k": -1}`, 400, "top_k", "top_k -1: want >= 0 (0 disables it)"},
		{"/v1/completions", `{"prompt": "x", "stop": 3}`, 400, "stop", "stop: want a string or a list of strings"},
		{"/v1/completions", `{"prompt": [[1], []]}`, 400, "prompt", "prompt 1: empty token list"},
		// stories260K's context is 512 tokens: a 512-token prompt leaves no room for a reply.
		{"/v1/completions", `{"prompt": [` + strings.Repeat("1,", 511) + `1]}`, 400, "prompt", "prompt 0 has 512 tokens: no room to generate within the context length 512"},
		{"/v1/chat/completions", `{"messages": {"role": "user"}}`, 400, "messages", "messages: want a list of {role, content} messages"},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": 3}]}`, 400, "messages", "messages[0]: content: want a string or a list of text parts"},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}`, 400, "messages",
			`messages[0]: content part 0: type "image_url": only text parts are supported`},
		{"/v1/score", `{"prompt": "x", "response": "y"}`, 404, "", "no reward model: start alignkit serve with --reward-model DIR to score"},
		{"/v1/nothing", `{}`, 404, "", "no endpoint POST /v1/nothing"},
	}
	for _, tc := range cases {
		status, body := post(t, base+tc.path, tc.body)
		e := decodeJSON[errorResponse](t, body)
		param := ""
		if e.Error.Param != nil {
			param = *e.Error.Param
		}
		if status != tc.status || e.Error.Message != tc.msg || param != tc.param || e.Error.Type == "" {
			t.Errorf("%s %.40s: %d %s\nwant %d param %q %q", tc.path, tc.body, status, body, tc.status, tc.param, tc.msg)
		}
	}
	res, err := http.Get(base + "/v1/completions")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/completions: %d allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}

func TestHealthAndModels(t *testing.T) {
	s, _ := newTestServer(t, "", false)
	base := startServer(t, s)
	for path, want := range map[string]string{
		"/health":    `{"running":0,"status":"ok","waiting":0}`,
		"/v1/models": fmt.Sprintf(`{"data":[{"created":%d,"id":"stories260K","object":"model","owned_by":"alignkit"}],"object":"list"}`, s.created),
	} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got, _ := json.Marshal(v)
		if res.StatusCode != 200 || string(got) != want {
			t.Errorf("%s: %d %s, want %s", path, res.StatusCode, got, want)
		}
	}
	if d := NewWith(nil, nil, Config{}); d.cfg.Addr != "127.0.0.1:8080" {
		t.Errorf("default address %q is not loopback", d.cfg.Addr)
	}
}

// Cancelling the context stops the server gracefully: a request already in flight completes, Serve
// returns nil, and the port stops accepting connections.
func TestGracefulShutdown(t *testing.T) {
	s, _ := newTestServer(t, "", false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	// Hold every generation slot so that the request is in flight when the shutdown starts.
	for range cap(s.sem) {
		s.sem <- struct{}{}
	}
	type answer struct {
		status int
		body   []byte
	}
	got := make(chan answer, 1)
	go func() {
		st, b := post(t, base+"/v1/completions", map[string]any{"prompt": "Tom", "temperature": 0, "max_tokens": 4})
		got <- answer{st, b}
	}()
	waitFor(t, "the request to queue", func() bool { return s.waiting.Load() == 1 })
	cancel()
	waitFor(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	for range cap(s.sem) {
		<-s.sem
	}
	a := <-got
	if a.status != http.StatusOK || len(decodeJSON[completionResponse](t, a.body).Choices) != 1 {
		t.Errorf("in-flight request: %d %s", a.status, a.body)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	if _, err := http.Get(base + "/health"); err == nil {
		t.Errorf("the server still answers after shutdown")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
