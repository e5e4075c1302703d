package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/rlhf"
)

// apiError is an error answer in OpenAI's shape.
type apiError struct {
	status int
	typ    string
	param  string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(param, format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, msg: fmt.Sprintf(format, a...)}
}

func writeError(w http.ResponseWriter, status int, typ, param, msg string) {
	var p any
	if param != "" {
		p = param
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": p, "code": nil}})
}

func writeAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae.status, ae.typ, ae.param, ae.msg)
		return
	}
	writeError(w, http.StatusInternalServerError, "server_error", "", err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// request holds the fields of both completion endpoints.
type request struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            json.RawMessage `json:"messages"`
	N                   *int            `json:"n"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int            `json:"top_k"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`

	// Fields alignkit cannot honour: refused rather than ignored.
	Logprobs    json.RawMessage `json:"logprobs"`
	TopLogprobs *int            `json:"top_logprobs"`
	Echo        bool            `json:"echo"`
	BestOf      *int            `json:"best_of"`
	Suffix      *string         `json:"suffix"`
	Tools       json.RawMessage `json:"tools"`
}

// decode reads a JSON body within the size limit into v.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	// The body must arrive within BodyTimeout. The deadline is lifted once it has, so that a long
	// generation is not cut off; after a failure it stays, so that the server's own drain of the
	// unread body fails at once and the connection is closed.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return &apiError{status: http.StatusRequestTimeout, typ: "invalid_request_error",
				msg: fmt.Sprintf("request body not received within %s", s.cfg.BodyTimeout)}
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error",
				msg: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return badRequest(te.Field, "invalid JSON body: field %s: want %s, got %s", te.Field, te.Type, te.Value)
		}
		return badRequest("", "invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("", "invalid JSON body: more than one JSON value")
	}
	_ = rc.SetReadDeadline(time.Time{})
	return nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// sampling validates the shared sampling fields. defaultMax is max_tokens when the request has none.
func (q *request) sampling(defaultMax int) (rlhf.Sampling, int, []string, error) {
	switch {
	case !isNull(q.Logprobs) && string(bytes.TrimSpace(q.Logprobs)) != "false" && string(bytes.TrimSpace(q.Logprobs)) != "0":
		return rlhf.Sampling{}, 0, nil, badRequest("logprobs", "logprobs is not supported by alignkit serve")
	case q.TopLogprobs != nil && *q.TopLogprobs != 0:
		return rlhf.Sampling{}, 0, nil, badRequest("top_logprobs", "top_logprobs is not supported by alignkit serve")
	case q.Echo:
		return rlhf.Sampling{}, 0, nil, badRequest("echo", "echo is not supported by alignkit serve")
	case q.Suffix != nil && *q.Suffix != "":
		return rlhf.Sampling{}, 0, nil, badRequest("suffix", "suffix is not supported by alignkit serve")
	case !isNull(q.Tools) && string(bytes.TrimSpace(q.Tools)) != "[]":
		return rlhf.Sampling{}, 0, nil, badRequest("tools", "tools are not supported by alignkit serve")
	}
	n := 1
	if q.N != nil {
		n = *q.N
	}
	if n < 1 || n > MaxN {
		return rlhf.Sampling{}, 0, nil, badRequest("n", "n %d: want 1..%d", n, MaxN)
	}
	if q.BestOf != nil && *q.BestOf != 1 && *q.BestOf != n {
		return rlhf.Sampling{}, 0, nil, badRequest("best_of", "best_of %d is not supported by alignkit serve (only best_of = n)", *q.BestOf)
	}
	sp := rlhf.Sampling{Temperature: 1, TopP: 1, MaxNewTokens: defaultMax}
	if q.Temperature != nil {
		sp.Temperature = *q.Temperature
	}
	if q.TopP != nil {
		sp.TopP = *q.TopP
	}
	if q.TopK != nil {
		sp.TopK = *q.TopK
	}
	if q.MaxTokens != nil {
		sp.MaxNewTokens = *q.MaxTokens
	}
	if q.MaxCompletionTokens != nil {
		sp.MaxNewTokens = *q.MaxCompletionTokens
	}
	switch {
	case math.IsNaN(sp.Temperature) || sp.Temperature < 0:
		return sp, 0, nil, badRequest("temperature", "temperature %v: want >= 0", sp.Temperature)
	case math.IsNaN(sp.TopP) || sp.TopP < 0 || sp.TopP > 1:
		return sp, 0, nil, badRequest("top_p", "top_p %v: want a value in [0, 1]", sp.TopP)
	case sp.TopK < 0:
		return sp, 0, nil, badRequest("top_k", "top_k %d: want >= 0 (0 disables it)", sp.TopK)
	case sp.MaxNewTokens < 1:
		return sp, 0, nil, badRequest("max_tokens", "max_tokens %d: want at least 1", sp.MaxNewTokens)
	}
	if q.Seed != nil {
		sp.Seed = uint64(*q.Seed)
	} else {
		sp.Seed = randomSeed()
	}
	stops, err := parseStop(q.Stop)
	if err != nil {
		return sp, 0, nil, err
	}
	return sp, n, stops, nil
}

func parseStop(raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil {
		return nil, badRequest("stop", "stop: want a string or a list of strings")
	}
	var out []string
	for _, s := range many {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// prompts parses /v1/completions' prompt: a string, strings, token ids, or lists of token ids.
func parsePrompts(raw json.RawMessage) ([]rlhf.Prompt, error) {
	if isNull(raw) {
		return nil, badRequest("prompt", "prompt is missing")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []rlhf.Prompt{{Text: one, Source: "request", Row: 0}}, nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil && len(texts) > 0 {
		out := make([]rlhf.Prompt, len(texts))
		for i, t := range texts {
			out[i] = rlhf.Prompt{Text: t, Source: "request", Row: i}
		}
		return out, nil
	}
	var ids []int32
	if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
		return []rlhf.Prompt{{IDs: ids, Source: "request", Row: 0}}, nil
	}
	var lists [][]int32
	if json.Unmarshal(raw, &lists) == nil && len(lists) > 0 {
		out := make([]rlhf.Prompt, len(lists))
		for i, l := range lists {
			if len(l) == 0 {
				return nil, badRequest("prompt", "prompt %d: empty token list", i)
			}
			out[i] = rlhf.Prompt{IDs: l, Source: "request", Row: i}
		}
		return out, nil
	}
	return nil, badRequest("prompt", "prompt: want a string, a list of strings, a list of token ids or a list of token-id lists (non-empty)")
}

// parseMessages parses a chat message list; content may be a string or a list of text parts.
func parseMessages(raw json.RawMessage, param string) ([]chat.Message, error) {
	if isNull(raw) {
		return nil, badRequest(param, "%s is missing", param)
	}
	var list []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, badRequest(param, "%s: want a list of {role, content} messages", param)
	}
	if len(list) == 0 {
		return nil, badRequest(param, "%s: empty conversation", param)
	}
	out := make([]chat.Message, len(list))
	for i, m := range list {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return nil, badRequest(param, "%s[%d]: role %q: want system, user or assistant", param, i, m.Role)
		}
		var text string
		if err := json.Unmarshal(m.Content, &text); err != nil {
			var parts []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if json.Unmarshal(m.Content, &parts) != nil {
				return nil, badRequest(param, "%s[%d]: content: want a string or a list of text parts", param, i)
			}
			var b strings.Builder
			for j, p := range parts {
				if p.Type != "text" {
					return nil, badRequest(param, "%s[%d]: content part %d: type %q: only text parts are supported", param, i, j, p.Type)
				}
				b.WriteString(p.Text)
			}
			text = b.String()
		}
		out[i] = chat.Message{Role: m.Role, Content: text}
	}
	return out, nil
}

// choice is one generated answer ready to send.
type choice struct {
	index  int
	gen    []int32
	text   string
	finish string
}

// prepare encodes and checks prompts, returning their ids, their token count and sp with max_tokens
// clamped to the room the context leaves after the longest prompt, which the engine would stop at
// anyway (and which bounds what a request can make it allocate).
func (s *Server) prepare(gen *rlhf.Local, prompts []rlhf.Prompt, sp rlhf.Sampling) ([][]int32, int, rlhf.Sampling, error) {
	ids := make([][]int32, len(prompts))
	promptTokens := 0
	for i, p := range prompts {
		param := "prompt"
		if p.Conversational() {
			param = "messages"
		}
		var err error
		if ids[i], err = gen.Encode(p); err != nil {
			return nil, 0, sp, badRequest(param, "%v", err)
		}
		room := gen.MaxPositions() - len(ids[i])
		if room < 1 {
			return nil, 0, sp, badRequest(param, "prompt %d has %d tokens: no room to generate within the context length %d", i, len(ids[i]), gen.MaxPositions())
		}
		sp.MaxNewTokens = min(sp.MaxNewTokens, room)
		promptTokens += len(ids[i])
	}
	return ids, promptTokens, sp, nil
}

// run validates prompts, generates n choices of each, and applies the stop strings.
func (s *Server) run(r *http.Request, gen *rlhf.Local, prompts []rlhf.Prompt, n int, sp rlhf.Sampling, stops []string) ([]choice, int, error) {
	_, promptTokens, sp, err := s.prepare(gen, prompts, sp)
	if err != nil {
		return nil, 0, err
	}
	if !s.acquire(r.Context()) {
		return nil, 0, r.Context().Err()
	}
	defer s.release()
	cs, err := gen.Complete(r.Context(), prompts, n, sp)
	if err != nil {
		return nil, 0, err
	}
	var out []choice
	for i, row := range cs {
		for j, c := range row {
			text, cut := cutStop(c.Text, stops)
			finish := c.FinishReason
			if cut {
				finish = "stop"
			}
			out = append(out, choice{index: i*n + j, gen: c.IDs, text: text, finish: finish})
		}
	}
	return out, promptTokens, nil
}

func usage(promptTokens int, cs []choice) map[string]int {
	gen := 0
	for _, c := range cs {
		gen += len(c.gen)
	}
	return map[string]int{"prompt_tokens": promptTokens, "completion_tokens": gen, "total_tokens": promptTokens + gen}
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var q request
	if err := s.decode(w, r, &q); err != nil {
		writeAPIError(w, err)
		return
	}
	gen, model, err := s.generator(q.Model)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	prompts, err := parsePrompts(q.Prompt)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	sp, n, stops, err := q.sampling(16)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	id, created := newID("cmpl-"), time.Now().Unix()
	if q.Stream {
		s.stream(w, r, gen, prompts, n, sp, stops, func(index int, delta string, finish any) map[string]any {
			return map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
				"choices": []map[string]any{{"index": index, "text": delta, "logprobs": nil, "finish_reason": finish}}}
		}, nil)
		return
	}
	cs, promptTokens, err := s.run(r, gen, prompts, n, sp, stops)
	if err != nil {
		if r.Context().Err() == nil {
			writeAPIError(w, err)
		}
		return
	}
	choices := make([]map[string]any, len(cs))
	for i, c := range cs {
		choices[i] = map[string]any{"index": c.index, "text": c.text, "logprobs": nil, "finish_reason": c.finish}
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "text_completion", "created": created,
		"model": model, "choices": choices, "usage": usage(promptTokens, cs)})
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var q request
	if err := s.decode(w, r, &q); err != nil {
		writeAPIError(w, err)
		return
	}
	gen, model, err := s.generator(q.Model)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	msgs, err := parseMessages(q.Messages, "messages")
	if err != nil {
		writeAPIError(w, err)
		return
	}
	sp, n, stops, err := q.sampling(math.MaxInt32)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	prompts := []rlhf.Prompt{{Messages: msgs, Source: "request", Row: 0}}
	id, created := newID("chatcmpl-"), time.Now().Unix()
	if q.Stream {
		chunk := func(index int, delta map[string]any, finish any) map[string]any {
			return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
				"choices": []map[string]any{{"index": index, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
		}
		s.stream(w, r, gen, prompts, n, sp, stops, func(index int, delta string, finish any) map[string]any {
			if finish != nil {
				return chunk(index, map[string]any{}, finish)
			}
			return chunk(index, map[string]any{"content": delta}, nil)
		}, func(index int) map[string]any {
			return chunk(index, map[string]any{"role": "assistant", "content": ""}, nil)
		})
		return
	}
	cs, promptTokens, err := s.run(r, gen, prompts, n, sp, stops)
	if err != nil {
		if r.Context().Err() == nil {
			writeAPIError(w, err)
		}
		return
	}
	choices := make([]map[string]any, len(cs))
	for i, c := range cs {
		choices[i] = map[string]any{"index": c.index, "message": map[string]any{"role": "assistant", "content": c.text},
			"logprobs": nil, "finish_reason": c.finish}
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "chat.completion", "created": created,
		"model": model, "choices": choices, "usage": usage(promptTokens, cs)})
}

func (s *Server) score(w http.ResponseWriter, r *http.Request) {
	if s.scorer == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "no reward model: start alignkit serve with --reward-model DIR to score")
		return
	}
	var q struct {
		Prompt   json.RawMessage `json:"prompt"`
		Response *string         `json:"response"`
		Messages json.RawMessage `json:"messages"`
	}
	if err := s.decode(w, r, &q); err != nil {
		writeAPIError(w, err)
		return
	}
	var p rlhf.Prompt
	var response string
	switch {
	case !isNull(q.Messages):
		if !isNull(q.Prompt) || q.Response != nil {
			writeAPIError(w, badRequest("messages", "give either messages, or prompt and response, not both"))
			return
		}
		msgs, err := parseMessages(q.Messages, "messages")
		if err != nil {
			writeAPIError(w, err)
			return
		}
		last := msgs[len(msgs)-1]
		if last.Role != "assistant" || len(msgs) < 2 {
			writeAPIError(w, badRequest("messages", "messages: want a conversation ending with the assistant response to score, after at least one message"))
			return
		}
		p, response = rlhf.Prompt{Messages: msgs[:len(msgs)-1], Source: "request"}, last.Content
	case !isNull(q.Prompt) && q.Response != nil:
		var text string
		if json.Unmarshal(q.Prompt, &text) == nil {
			p = rlhf.Prompt{Text: text, Source: "request"}
		} else {
			msgs, err := parseMessages(q.Prompt, "prompt")
			if err != nil {
				writeAPIError(w, err)
				return
			}
			p = rlhf.Prompt{Messages: msgs, Source: "request"}
		}
		response = *q.Response
	default:
		writeAPIError(w, badRequest("", `want {"prompt": ..., "response": "..."} or {"messages": [...]}`))
		return
	}
	if !s.acquire(r.Context()) {
		return
	}
	defer s.release()
	rs, err := s.scorer.Score(r.Context(), p, []string{response})
	if err != nil {
		if r.Context().Err() == nil {
			writeAPIError(w, badRequest("", "%v", err))
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reward": rs[0]})
}
