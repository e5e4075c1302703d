package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// WriteChatTemplate leaves every loader with the new template: chat_template.jinja always, and
// tokenizer_config.json's chat_template when the file already has one (its other keys, big integers
// and "<s>" included, kept as written); a config without a template is left byte for byte.
func TestWriteChatTemplate(t *testing.T) {
	const src = "{% for m in messages %}<s>[INST] {{ m['content'] }} [/INST]{% endfor %}"
	cases := []struct {
		name       string
		config     string // tokenizer_config.json before; "" for none
		wantConfig string // after; "" for none
	}{
		{"no config", "", ""},
		{"config without a template", `{"bos_token": "<s>", "model_max_length": 1000000000000000019884624838656}`,
			`{"bos_token": "<s>", "model_max_length": 1000000000000000019884624838656}`},
		{"config with a template", `{"bos_token": "<s>", "chat_template": "old", "model_max_length": 1000000000000000019884624838656}`,
			"{\n  \"bos_token\": \"<s>\",\n  \"chat_template\": \"{% for m in messages %}<s>[INST] {{ m['content'] }} [/INST]{% endfor %}\",\n  \"model_max_length\": 1000000000000000019884624838656\n}\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "tokenizer_config.json")
			if tc.config != "" {
				if err := os.WriteFile(cfgPath, []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteChatTemplate(dir, src); err != nil {
				t.Fatal(err)
			}
			jinja, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja"))
			if err != nil || string(jinja) != src {
				t.Fatalf("chat_template.jinja = %q, %v; want the template", jinja, err)
			}
			got, err := os.ReadFile(cfgPath)
			if tc.wantConfig == "" {
				if !os.IsNotExist(err) {
					t.Fatalf("tokenizer_config.json was created: %q %v", got, err)
				}
			} else if string(got) != tc.wantConfig {
				t.Fatalf("tokenizer_config.json:\n%s\nwant\n%s", got, tc.wantConfig)
			}
			cfg, err := readConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.chatTemplate != src {
				t.Fatalf("the loader reads template %q, want the new one", cfg.chatTemplate)
			}
		})
	}
}

func TestWriteChatTemplateCorruptConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokenizer_config.json")
	if err := os.WriteFile(path, []byte(`{"chat_template": `), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteChatTemplate(dir, "x")
	want := "saving the chat template: " + path + ": unexpected end of JSON input"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "chat_template.jinja")); !os.IsNotExist(err) {
		t.Fatalf("chat_template.jinja written after the error: %v", err)
	}
}

// TestChatTemplateCheckedAtLoad: a chat template that does not compile, recurses or loops without
// bound, or renders no conversation at all fails Load with its file named; one that refuses some
// conversations with raise_exception (no system turns, say) loads.
func TestChatTemplateCheckedAtLoad(t *testing.T) {
	for _, c := range []struct {
		name, file, template string
		want                 string // after "chat template <dir>/<file>: "; "" means it loads
	}{
		{"recursion", "tokenizer_config.json", `{% macro f(m) %}{{ f(m) }}{% endmacro %}{{ f(messages) }}`,
			"calls nest deeper than the limit of 100 (unbounded recursion?) (test-rendering a 1-message conversation)"},
		{"loop", "chat_template.jinja", `{% for m in messages %}{% for i in range(1000000) %}{{ '' }}{% endfor %}{% endfor %}`,
			"loops ran more than the limit of 1000000 iterations (test-rendering a 1-message conversation)"},
		{"syntax", "tokenizer_config.json", `{% for m in messages %}{{ m.content }}`,
			"jinja parse: unclosed for block"},
		{"always_raises", "chat_template.jinja", `{{ raise_exception('Only tools are supported') }}`,
			"Only tools are supported (test-rendering: no probe conversation renders)"},
		{"no_system", "tokenizer_config.json", `{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}{{ m.content }}{% endfor %}`, ""},
		{"fine", "chat_template.jinja", "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			llama3Fixture(t, dir, true, true)
			path := filepath.Join(dir, c.file)
			if c.file == "tokenizer_config.json" {
				b, err := json.Marshal(map[string]string{"chat_template": c.template})
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, path, b)
			} else {
				writeFile(t, path, []byte(c.template))
			}
			tk, err := Load(dir)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tk.ChatTemplateFile() != path || tk.ChatTemplate() != c.template {
					t.Errorf("ChatTemplateFile = %q, template %q", tk.ChatTemplateFile(), tk.ChatTemplate())
				}
				return
			}
			want := "chat template " + path + ": " + c.want
			if err == nil || err.Error() != want {
				t.Fatalf("got %v\nwant %s", err, want)
			}
		})
	}
}
