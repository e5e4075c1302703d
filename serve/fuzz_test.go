package serve

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequestBody runs arbitrary bytes through everything a completion, chat or score request
// goes through before a model is touched: the bounded JSON decode, the model check, prompt and
// message parsing, and the sampling parameters. Never a panic; every refusal is a 4xx apiError
// with a one-line message.
func FuzzRequestBody(f *testing.F) {
	f.Add([]byte(`{"prompt": "Once", "max_tokens": 4, "temperature": 0, "n": 2, "seed": 1, "stop": ["."]}`))
	f.Add([]byte(`{"prompt": [[1, 2, 3], "text"], "top_p": 0.5, "top_k": 3, "stream": true}`))
	f.Add([]byte(`{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}`))
	f.Add([]byte(`{"model": "other", "prompt": "x", "n": 1000000, "max_tokens": -1, "temperature": 1e308}`))
	f.Add([]byte(`{"prompt": "x", "stop": "a", "logprobs": 3, "best_of": 2}`))
	f.Add([]byte(`{"prompt": "x"} {"prompt": "y"}`))
	f.Add([]byte(`{"lora_name": "a b\u0000", "lora_path": "/etc/passwd"}`))
	s := NewWith(nil, nil, Config{MaxBodyBytes: 4096})
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 || strings.Contains(ae.msg, "\n") {
			t.Fatalf("not a one-line 4xx apiError: %#v", err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/completions", strings.NewReader(string(body)))
		var q request
		if err := s.decode(httptest.NewRecorder(), r, &q); err != nil {
			check(t, err)
			return
		}
		if _, _, err := s.generator(q.Model); err != nil {
			check(t, err)
		}
		if _, err := parsePrompts(q.Prompt); err != nil {
			check(t, err)
		}
		if _, err := parseMessages(q.Messages, "messages"); err != nil {
			check(t, err)
		}
		for _, max := range []int{16, 1<<31 - 1} {
			if _, _, _, err := q.sampling(max); err != nil {
				check(t, err)
			}
		}
		// The runtime LoRA routes' fields: a bad name or path is a one-line 4xx, never a panic.
		r = httptest.NewRequest(http.MethodPost, "/v1/load_lora_adapter", strings.NewReader(string(body)))
		var lq loraRequest
		if err := s.decode(httptest.NewRecorder(), r, &lq); err != nil {
			check(t, err)
			return
		}
		if err := checkLoRAName(lq.LoraName); err != nil {
			check(t, err)
		}
		if _, err := checkLoRAPath(lq.LoraPath); err != nil {
			check(t, err)
		}
	})
}
