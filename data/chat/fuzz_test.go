package chat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// FuzzRender compiles arbitrary template sources and renders them over a conversation built from
// arbitrary contents, with and without the generation prompt, within small limits: every input
// must compile and render or return an error naming the template, never panic (an engine panic
// is reported as "internal error in the template engine", a failure here), hang or exhaust memory;
// RenderSegments' segments must tile Render's output. Seeded with the real Llama 3 and Qwen3
// templates when ../shared is present, the built-ins and the golden custom templates.
func FuzzRender(f *testing.F) {
	var seeds []string
	for _, name := range BuiltinNames() {
		src, _ := BuiltinSource(name)
		seeds = append(seeds, src)
	}
	custom, _ := filepath.Glob(filepath.Join("..", "testdata", "golden", "custom", "*.jinja"))
	for _, p := range custom {
		if b, err := os.ReadFile(p); err == nil {
			seeds = append(seeds, string(b))
		}
	}
	shared := filepath.Join(filepath.Dir(sharedtest.RepoRoot(f)), "shared", "tokenizers")
	for _, fam := range []string{"llama3", "qwen3"} {
		b, err := os.ReadFile(filepath.Join(shared, fam, "tokenizer_config.json"))
		if err != nil {
			continue
		}
		var cfg struct {
			ChatTemplate string `json:"chat_template"`
		}
		if json.Unmarshal(b, &cfg) == nil {
			seeds = append(seeds, cfg.ChatTemplate)
		}
	}
	for i, s := range seeds {
		f.Add(s, "Hello", []string{"<think>\nR\n</think>\n\nA", "  spaced  ", "{{ x }}"}[i%3])
	}
	lim := Limits{MaxDepth: 30, MaxIterations: 10000, MaxOutput: 1 << 16, Timeout: time.Second}
	f.Fuzz(func(t *testing.T, src, content, content2 string) {
		tmpl, err := Compile("fuzz.jinja", src, "<s>", "</s>")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "chat template fuzz.jinja: ") {
				t.Fatalf("error does not name the template: %v", err)
			}
			return
		}
		tmpl = tmpl.WithLimits(lim)
		msgs := []Message{{"system", content2}, {"user", content}, {"assistant", content2}, {"user", content}}
		for _, gen := range []bool{false, true} {
			start := time.Now()
			out, err := tmpl.Render(msgs, gen)
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("render took %v", d)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "chat template fuzz.jinja: ") {
					t.Fatalf("error does not name the template: %v", err)
				}
				if strings.Contains(err.Error(), "internal error in the template engine") {
					t.Fatalf("engine panic: %v", err)
				}
				continue
			}
			if len(out) > lim.MaxOutput {
				t.Fatalf("output of %d bytes passed the limit", len(out))
			}
			segs, err := tmpl.RenderSegments(msgs, gen)
			if err != nil {
				continue // a template that rewrites contents is refused, by design
			}
			var b strings.Builder
			for _, s := range segs {
				b.WriteString(s.Text)
			}
			if b.String() != out {
				t.Fatalf("segments tile %q, Render gave %q", b.String(), out)
			}
		}
	})
}
