package rlhf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// OpenAIConfig configures the OpenAI backend.
type OpenAIConfig struct {
	// BaseURL is the server's OpenAI root, e.g. http://127.0.0.1:8080/v1 (a bare host gets /v1).
	BaseURL string
	// Model is the served model name; "" takes the first model the server lists at /v1/models.
	Model string
	// APIKey is sent as a bearer token when not empty. It is never logged or written to a file.
	APIKey string
	// Concurrency bounds the requests in flight (default 4).
	Concurrency int
	// MaxRetries is how many times a request is retried after a 408, 429, 5xx, a connection error or
	// a timeout (0: never).
	MaxRetries int
	// RequestTimeout bounds each attempt (default 2 minutes).
	RequestTimeout time.Duration
	// RetryBackoff is the first retry's wait; it doubles per retry up to 8 s. A Retry-After header
	// from the server takes precedence. Default 500 ms.
	RetryBackoff time.Duration
	// NSupported says whether the server accepts n > 1: nil detects it (a rejection of n, as
	// llama-server's "Only one completion choice is allowed", or fewer choices than asked, switches
	// to K single requests with seeds Seed + i·K + j), false never sends n, true always does.
	NSupported *bool
	// ExtraBody holds extra request fields (min_p, repeat_penalty, ...) sent as is. top_k is sent
	// from Sampling.TopK when it is > 0.
	ExtraBody map[string]any
	// Log receives one line when the backend falls back to single requests (nil: none).
	Log io.Writer
}

// OpenAI samples from any OpenAI-compatible server: /v1/completions for text and token-id prompts,
// /v1/chat/completions for conversations (the server applies its chat template). It is safe for
// concurrent use.
type OpenAI struct {
	cfg    OpenAIConfig
	client openai.Client
	base   string
	// n support, when NSupported is nil: the first request with n > 1 probes it while the others
	// wait, so that a server refusing n sees one such request, not one per prompt in flight.
	nMu     sync.Mutex
	nState  int           // nUnknown, nYes or nNo
	nProbe  chan struct{} // closed when the probe in flight resolves; nil when none
	logOnce sync.Once
}

const (
	nUnknown = iota
	nYes
	nNo
)

const maxBackoff = 8 * time.Second

// NewOpenAI checks that the server answers (GET /models) and resolves the model name.
func NewOpenAI(ctx context.Context, cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("openai backend: base_url is empty: want the server's OpenAI root, e.g. http://127.0.0.1:8080/v1")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai backend: base_url %q: want an http:// or https:// URL", cfg.BaseURL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1"
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.MaxRetries < 0 {
		return nil, fmt.Errorf("openai backend: max_retries %d: want >= 0", cfg.MaxRetries)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 2 * time.Minute
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 500 * time.Millisecond
	}
	o := &OpenAI{cfg: cfg, base: u.String()}
	opts := []option.RequestOption{
		option.WithBaseURL(o.base),
		option.WithMaxRetries(0), // retries are ours: the SDK does not retry timeouts, nor tell n rejections apart
		option.WithMiddleware(statusMiddleware),
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	o.client = openai.NewClient(opts...)
	if err := o.resolveModel(ctx); err != nil {
		return nil, err
	}
	return o, nil
}

// Model is the served model name in use.
func (o *OpenAI) Model() string { return o.cfg.Model }

func (o *OpenAI) resolveModel(ctx context.Context) error {
	var ids []string
	err := o.retry(ctx, "GET", "/models", func(ctx context.Context) error {
		page, err := o.client.Models.List(ctx)
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		return nil
	})
	var se *statusError
	switch {
	case errors.As(err, &se) && se.status == http.StatusNotFound && o.cfg.Model != "":
		return nil // a server without /models: trust the configured name
	case err != nil:
		return err
	case o.cfg.Model == "" && len(ids) == 0:
		return fmt.Errorf("openai backend: %s/models lists no model: set served_model_name", o.base)
	case o.cfg.Model == "":
		o.cfg.Model = ids[0]
	}
	return nil
}

// Generate implements Generator. Prompt i's completions are requested with n = K and seed
// Seed + i·K (an alignkit server then draws choice j with Seed + i·K + j, as Local does), or, where n
// is not supported, as K requests with seeds Seed + i·K + j.
func (o *OpenAI) Generate(ctx context.Context, prompts []Prompt, k int, s Sampling) ([][]string, error) {
	out, _, err := o.generate(ctx, o.cfg.Model, prompts, k, s, false)
	return choiceTexts(out), err
}

// TextChoice is one completion as an OpenAI server returns it: text, and why it ended.
type TextChoice struct {
	Text string
	// FinishReason is the server's: "stop" (an end-of-sequence token or a stop string), "length"
	// (max_tokens or the context), or what else the server says.
	FinishReason string
}

// CompleteAs is Generate with "model" set to model (a LoRA adapter loaded under that name, say)
// and each completion's finish_reason kept.
func (o *OpenAI) CompleteAs(ctx context.Context, model string, prompts []Prompt, k int, s Sampling) ([][]TextChoice, error) {
	out, _, err := o.generate(ctx, model, prompts, k, s, false)
	return out, err
}

func choiceTexts(cs [][]TextChoice) [][]string {
	if cs == nil {
		return nil
	}
	out := make([][]string, len(cs))
	for i, row := range cs {
		if row == nil {
			continue
		}
		out[i] = make([]string, len(row))
		for j, c := range row {
			out[i][j] = c.Text
		}
	}
	return out
}

// GenerateSkipping is Generate, except that a prompt the server rejects as longer than its context
// (see isContextRejection) is skipped rather than failing the call, as the local backend skips
// prompts that leave no room for max_new_tokens: out[i] is nil for it and tooLong[i] holds the
// server's message.
func (o *OpenAI) GenerateSkipping(ctx context.Context, prompts []Prompt, k int, s Sampling) (out [][]string, tooLong map[int]string, err error) {
	cs, tooLong, err := o.generate(ctx, o.cfg.Model, prompts, k, s, true)
	return choiceTexts(cs), tooLong, err
}

func (o *OpenAI) generate(ctx context.Context, model string, prompts []Prompt, k int, s Sampling, skip bool) ([][]TextChoice, map[int]string, error) {
	if err := checkK(k); err != nil {
		return nil, nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, o.cfg.Concurrency)
	out := make([][]TextChoice, len(prompts))
	tooLong := map[int]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := o.prompt(ctx, sem, model, prompts[i], k, s, s.Seed+uint64(i*k))
			if err != nil && skip && isContextRejection(err) {
				mu.Lock()
				tooLong[i] = err.Error()
				mu.Unlock()
				return
			}
			if err != nil {
				cancel(err)
				return
			}
			out[i] = got
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, nil, err
	}
	return out, tooLong, nil
}

// isContextRejection recognises a server's 400 for a prompt longer than the model's context:
// vLLM's and OpenAI's "maximum context length is N tokens", vLLM's "longer than the maximum model
// length", llama-server's "exceeds the available context size", alignkit serve's "no room to
// generate within the context length".
func isContextRejection(err error) bool {
	var se *statusError
	if !errors.As(err, &se) || se.status != http.StatusBadRequest {
		return false
	}
	m := strings.ToLower(se.message)
	for _, s := range []string{"context length", "maximum model length", "max_model_len", "context size", "context_length_exceeded", "context window"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// prompt gets k completions of one prompt.
func (o *OpenAI) prompt(ctx context.Context, sem chan struct{}, model string, p Prompt, k int, s Sampling, seed uint64) ([]TextChoice, error) {
	var texts []TextChoice
	useN, probe := o.useN(ctx, k)
	if useN {
		got, err := o.request(ctx, sem, model, p, k, s, seed)
		switch {
		case err == nil && len(got) >= k:
			o.settleN(probe, nYes, "")
			return got[:k], nil
		case err == nil && probe:
			// The server ignored n: keep choice 0 (drawn with seed, as single request 0 would be)
			// and ask for the rest one by one.
			o.settleN(probe, nNo, fmt.Sprintf("asked for n=%d, got %d choices", k, len(got)))
			texts = got[:min(len(got), 1)]
		case err != nil && probe && isNRejection(err):
			o.settleN(probe, nNo, err.Error())
		case err != nil:
			o.settleN(probe, nUnknown, "")
			return nil, err
		default:
			return nil, fmt.Errorf("openai backend: %s: asked for n=%d, got %d choices", p.where(), k, len(got))
		}
	}
	for j := len(texts); j < k; j++ {
		got, err := o.request(ctx, sem, model, p, 1, s, seed+uint64(j))
		if err != nil {
			return nil, err
		}
		if len(got) == 0 {
			return nil, fmt.Errorf("openai backend: %s: the server returned no choice", p.where())
		}
		texts = append(texts, got[0])
	}
	return texts, nil
}

// useN says whether to ask for n = k choices, and whether this request is the probe that finds out
// if the server takes n (the caller must then settle it).
func (o *OpenAI) useN(ctx context.Context, k int) (use, probe bool) {
	if k == 1 || (o.cfg.NSupported != nil && !*o.cfg.NSupported) {
		return false, false
	}
	if o.cfg.NSupported != nil {
		return true, false
	}
	for {
		o.nMu.Lock()
		switch {
		case o.nState != nUnknown:
			st := o.nState
			o.nMu.Unlock()
			return st == nYes, false
		case o.nProbe == nil:
			o.nProbe = make(chan struct{})
			o.nMu.Unlock()
			return true, true
		}
		wait := o.nProbe
		o.nMu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return false, false
		}
	}
}

// settleN records what the probe found (nUnknown: it failed otherwise, let the next request probe).
func (o *OpenAI) settleN(probe bool, state int, why string) {
	if !probe {
		return
	}
	o.nMu.Lock()
	o.nState = state
	close(o.nProbe)
	o.nProbe = nil
	o.nMu.Unlock()
	if state == nNo {
		o.logOnce.Do(func() {
			if o.cfg.Log != nil {
				fmt.Fprintf(o.cfg.Log, "openai backend: %s does not take n > 1 (%s): sending K single requests with seeds Seed+i·K+j\n", o.base, why)
			}
		})
	}
}

// request sends one completion request for n choices and returns them in choice order.
func (o *OpenAI) request(ctx context.Context, sem chan struct{}, model string, p Prompt, n int, s Sampling, seed uint64) ([]TextChoice, error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-sem }()

	var extra []option.RequestOption
	if s.TopK > 0 {
		extra = append(extra, option.WithJSONSet("top_k", s.TopK))
	}
	for _, key := range slices.Sorted(maps.Keys(o.cfg.ExtraBody)) {
		extra = append(extra, option.WithJSONSet(key, o.cfg.ExtraBody[key]))
	}
	type choice struct {
		index int64
		TextChoice
	}
	var got []choice
	var err error
	if p.Messages != nil {
		params := openai.ChatCompletionNewParams{
			Model:       model,
			Messages:    chatMessages(p),
			Temperature: openai.Float(s.Temperature),
			MaxTokens:   openai.Int(int64(s.MaxNewTokens)),
			Seed:        openai.Int(int64(seed)),
		}
		if s.TopP > 0 {
			params.TopP = openai.Float(s.TopP)
		}
		if n > 1 {
			params.N = openai.Int(int64(n))
		}
		err = o.retry(ctx, "POST", "/chat/completions", func(ctx context.Context) error {
			res, err := o.client.Chat.Completions.New(ctx, params, extra...)
			if err != nil {
				return err
			}
			got = got[:0]
			for _, c := range res.Choices {
				got = append(got, choice{c.Index, TextChoice{c.Message.Content, c.FinishReason}})
			}
			return nil
		})
	} else {
		params := openai.CompletionNewParams{
			Model:       openai.CompletionNewParamsModel(model),
			Temperature: openai.Float(s.Temperature),
			MaxTokens:   openai.Int(int64(s.MaxNewTokens)),
			Seed:        openai.Int(int64(seed)),
		}
		if p.IDs != nil {
			ids := make([]int64, len(p.IDs))
			for i, id := range p.IDs {
				ids[i] = int64(id)
			}
			params.Prompt.OfArrayOfTokens = ids
		} else {
			params.Prompt.OfString = openai.String(p.Text)
		}
		if s.TopP > 0 {
			params.TopP = openai.Float(s.TopP)
		}
		if n > 1 {
			params.N = openai.Int(int64(n))
		}
		err = o.retry(ctx, "POST", "/completions", func(ctx context.Context) error {
			res, err := o.client.Completions.New(ctx, params, extra...)
			if err != nil {
				return err
			}
			got = got[:0]
			for _, c := range res.Choices {
				got = append(got, choice{c.Index, TextChoice{c.Text, string(c.FinishReason)}})
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.where(), err)
	}
	sort.SliceStable(got, func(a, b int) bool { return got[a].index < got[b].index })
	out := make([]TextChoice, len(got))
	for i, c := range got {
		out[i] = c.TextChoice
	}
	return out, nil
}

func chatMessages(p Prompt) []openai.ChatCompletionMessageParamUnion {
	out := make([]openai.ChatCompletionMessageParamUnion, len(p.Messages))
	for i, m := range p.Messages {
		switch m.Role {
		case "system":
			out[i] = openai.SystemMessage(m.Content)
		case "assistant":
			out[i] = openai.AssistantMessage(m.Content)
		default:
			out[i] = openai.UserMessage(m.Content)
		}
	}
	return out
}

// retry runs one API call with a per-attempt timeout, retrying transient failures with exponential
// backoff. Errors come back as one line naming the method, the URL and what went wrong.
func (o *OpenAI) retry(ctx context.Context, method, path string, call func(context.Context) error) error {
	where := method + " " + o.base + path
	backoff := o.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
		err := call(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		what, transient, wait := classify(err, o.cfg.RequestTimeout)
		if isNRejection(err) {
			transient = false
		}
		if !transient || attempt >= o.cfg.MaxRetries {
			if transient {
				what += fmt.Sprintf(" (after %d attempt%s)", attempt+1, plural(attempt+1))
			}
			return &backendError{msg: "openai backend: " + where + ": " + what, cause: err}
		}
		if wait <= 0 {
			wait = backoff
			backoff = min(2*backoff, maxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// backendError is a failed request: its message is the one line shown, cause is kept for errors.As.
type backendError struct {
	msg   string
	cause error
}

func (e *backendError) Error() string { return e.msg }
func (e *backendError) Unwrap() error { return e.cause }

// classify says what an error was, whether it is worth retrying, and how long the server asked to
// wait (0: not said).
func classify(err error, timeout time.Duration) (what string, transient bool, wait time.Duration) {
	var se *statusError
	if errors.As(err, &se) {
		t := se.status == http.StatusRequestTimeout || se.status == http.StatusTooManyRequests || se.status >= 500
		return fmt.Sprintf("the server answered %d: %s", se.status, se.message), t, se.retryAfter
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within request_timeout %s", timeout), true, 0
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "cannot reach the server: " + rootCause(err), true, 0
	}
	return oneLine(err.Error()), false, 0
}

// rootCause names a connection failure without the URL noise the transport wraps around it.
func rootCause(err error) string {
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oneLine(oe.Err.Error())
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return oneLine(dnsErr.Error())
	}
	return oneLine(err.Error())
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// isNRejection recognises a server's refusal of n > 1: an error whose param is "n" (OpenAI's shape,
// alignkit serve beyond its MaxN), or llama-server's 400 or 500 "Only one completion choice is
// allowed" (older builds "Illegal param: only one ...").
func isNRejection(err error) bool {
	var se *statusError
	if !errors.As(err, &se) || se.status < 400 {
		return false
	}
	if se.param == "n" {
		return true
	}
	m := strings.ToLower(se.message)
	for _, s := range []string{"only one completion choice", "n must be 1", "n > 1", "n>1", "'n'", "\"n\""} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// statusError is an HTTP error answer, with the message of its OpenAI-shaped body.
type statusError struct {
	status     int
	message    string
	param      string // error.param, when the server names the offending field
	retryAfter time.Duration
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.message) }

// statusMiddleware turns an error response into a statusError before the SDK parses it: the SDK's
// error type wants a string "code", which llama-server sends as a number.
func statusMiddleware(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	res, err := next(req)
	if err != nil || res.StatusCode < 400 {
		return res, err
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	msg, param := errorMessage(body)
	se := &statusError{status: res.StatusCode, message: msg, param: param}
	if ra := res.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.ParseFloat(ra, 64); err == nil && secs >= 0 && secs <= 60 {
			se.retryAfter = time.Duration(secs * float64(time.Second))
		}
	}
	return nil, se
}

// errorMessage takes error.message (OpenAI's shape), a top-level message or detail, or the text;
// and error.param when given.
func errorMessage(body []byte) (msg, param string) {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  any             `json:"detail"`
	}
	if json.Unmarshal(body, &v) == nil {
		var inner struct {
			Message string `json:"message"`
			Param   any    `json:"param"`
		}
		var s string
		switch {
		case json.Unmarshal(v.Error, &inner) == nil && inner.Message != "":
			if p, ok := inner.Param.(string); ok {
				param = p
			}
			return oneLine(inner.Message), param
		case json.Unmarshal(v.Error, &s) == nil && s != "":
			return oneLine(s), ""
		case v.Message != "":
			return oneLine(v.Message), ""
		case v.Detail != nil:
			return oneLine(fmt.Sprint(v.Detail)), ""
		}
	}
	s := oneLine(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		s = "(empty body)"
	}
	return s, ""
}
