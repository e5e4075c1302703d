package serve

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// recursiveTemplate recurses without end when a message says "recurse", and renders every other
// conversation, so the model loads (its template is test-rendered then) and only such a request
// fails.
const recursiveTemplate = `{% macro deeper(n) %}{{ deeper(n + 1) }}{% endmacro %}` +
	`{% for m in messages %}{% if m.content == 'recurse' %}{{ deeper(0) }}{% endif %}{{ m.role }}: {{ m.content }}
{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}`

// TestRecursiveTemplateRequest serves a model whose own tokenizer_config.json holds a template that
// recurses on some input: that request is answered 400 naming the template's file and the limit,
// and the server goes on answering the next request.
func TestRecursiveTemplateRequest(t *testing.T) {
	src := filepath.Join(sharedDir(t), "models", "stories260K")
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.model", "special_tokens_map.json", "generation_config.json"} {
		if err := os.Symlink(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["chat_template"] = recursiveTemplate
	tcPath := filepath.Join(dir, "tokenizer_config.json")
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tcPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), Config{Model: dir})
	if err != nil {
		t.Fatal(err)
	}
	base := startServer(t, s)
	ask := func(content string) (int, []byte) {
		return post(t, base+"/v1/chat/completions", map[string]any{
			"messages": []map[string]string{{"role": "user", "content": content}}, "max_tokens": 4, "temperature": 0})
	}

	status, body := ask("recurse")
	if status != http.StatusBadRequest {
		t.Fatalf("recursive render: status %d %s", status, body)
	}
	e := decodeJSON[struct {
		Error struct{ Message, Type, Param string }
	}](t, body)
	want := "request: row 0: chat template " + tcPath + ": calls nest deeper than the limit of 100 (unbounded recursion?)"
	if e.Error.Message != want || e.Error.Param != "messages" || e.Error.Type != "invalid_request_error" {
		t.Errorf("error %+v\nwant message %q", e.Error, want)
	}

	for range 2 {
		status, body = ask("Tell me a story.")
		if status != http.StatusOK {
			t.Fatalf("the request after: status %d %s", status, body)
		}
		res := decodeJSON[completionResponse](t, body)
		if len(res.Choices) != 1 || res.Choices[0].Message.Role != "assistant" || res.Choices[0].FinishReason == "" || res.Usage.PromptTokens == 0 {
			t.Errorf("the request after: %s", body)
		}
	}
}
