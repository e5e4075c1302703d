package chat

import (
	"strings"
	"testing"
	"time"
)

// TestRenderLimits renders hostile templates within small limits: each must stop with the error
// of the limit it exceeds, naming the template's source, instead of hanging, exhausting memory or
// overflowing the stack.
func TestRenderLimits(t *testing.T) {
	lim := Limits{MaxDepth: 50, MaxIterations: 1000, MaxOutput: 4096, Timeout: 200 * time.Millisecond}
	msgs := []Message{{"user", "hi"}}
	for _, tc := range []struct {
		name, src, want string
		lim             Limits
	}{
		{"recursion", `{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}`,
			"chat template recursion.jinja: calls nest deeper than the limit of 50 (unbounded recursion?)", lim},
		{"mutual_recursion", `{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}`,
			"chat template mutual_recursion.jinja: calls nest deeper than the limit of 50 (unbounded recursion?)", lim},
		{"loop", `{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}`,
			"chat template loop.jinja: loops ran more than the limit of 1000 iterations", lim},
		{"loop_filter", `{% for i in range(5000) if i < 0 %}{% endfor %}`,
			"chat template loop_filter.jinja: loops ran more than the limit of 1000 iterations", lim},
		{"range", `{% for i in range(10**12) %}{% endfor %}`,
			"chat template range.jinja: range: 1000000000000 items exceed the limit of 1000000", lim},
		{"output", `{% for i in range(900) %}{{ messages[0].content }}xxx{% endfor %}`,
			"chat template output.jinja: output exceeds the limit of 4096 bytes", lim},
		{"doubling", `{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}`,
			"chat template doubling.jinja: a value exceeds the limit of 4096 bytes", lim},
		{"repeat", `{{ 'x' * 1000000000000000 }}`,
			"chat template repeat.jinja: a value exceeds the limit of 4096 bytes", lim},
		{"macro_output", `{% macro m() %}{% for i in range(500) %}0123456789{% endfor %}{% endmacro %}{{ m() }}`,
			"chat template macro_output.jinja: output exceeds the limit of 4096 bytes", lim},
		{"time", `{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}`,
			"chat template time.jinja: rendering took longer than the limit of 200ms",
			Limits{MaxDepth: 50, MaxIterations: 1000, MaxOutput: 4096, Timeout: 200 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := Compile(tc.name+".jinja", tc.src, "<s>", "</s>")
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			out, err := tmpl.WithLimits(tc.lim).Render(msgs, false)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %q, %v\nwant error %q", out, err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v to stop", d)
			}
		})
	}
}

// TestDefaultLimits checks that a template gets the default limits from Compile: unbounded
// recursion stops at DefaultLimits().MaxDepth.
func TestDefaultLimits(t *testing.T) {
	tmpl, err := Compile("tokenizer_config.json", `{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}`, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render(nil, false)
	want := "chat template tokenizer_config.json: calls nest deeper than the limit of 100 (unbounded recursion?)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// TestParseLimits checks that nesting and size are bounded when a template is compiled.
func TestParseLimits(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"parens", "{{ " + strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300) + " }}",
			"chat template parens.jinja: jinja parse: line 1: the template nests deeper than 200 levels"},
		{"nots", "{{ " + strings.Repeat("not ", 300) + "1 }}",
			"chat template nots.jinja: jinja parse: line 1: the template nests deeper than 200 levels"},
		{"blocks", strings.Repeat("{% if 1 %}", 300) + strings.Repeat("{% endif %}", 300),
			"chat template blocks.jinja: jinja parse: the template nests deeper than 200 levels"},
		{"size", strings.Repeat("x", MaxSourceBytes+1),
			"chat template size.jinja: 1048577 bytes exceed the limit of 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.name+".jinja", tc.src, "", "")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAmplifyingBuiltins: replace, join and list concatenation, which can multiply their input's
// size, are refused before they allocate past their bounds.
func TestAmplifyingBuiltins(t *testing.T) {
	lim := Limits{MaxDepth: 50, MaxIterations: 1000, MaxOutput: 1 << 20, Timeout: 5 * time.Second}
	for _, tc := range []struct{ name, src, want string }{
		{"replace_method", `{% set s = 'x' * 1000000 %}{{ s.replace('x', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') | length }}`,
			"chat template replace_method.jinja: replace: a value of 100000000 bytes exceeds the limit of 67108864 bytes"},
		{"replace_filter", `{% set s = 'x' * 1000000 %}{{ s | replace('x', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') | length }}`,
			"chat template replace_filter.jinja: replace: a value of 100000000 bytes exceeds the limit of 67108864 bytes"},
		{"join", `{% set ns = namespace(l=[]) %}{% set s = 'x' * 1000000 %}{% for i in range(100) %}{% set ns.l = ns.l + [s] %}{% endfor %}{{ ns.l | join | length }}`,
			"chat template join.jinja: join: a value exceeds the limit of 67108864 bytes"},
		{"list", `{% set ns = namespace(l=[1]) %}{% for i in range(20) %}{% set ns.l = ns.l + ns.l %}{% endfor %}`,
			"chat template list.jinja: a list exceeds the limit of 1000 items"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := Compile(tc.name+".jinja", tc.src, "", "")
			if err != nil {
				t.Fatal(err)
			}
			out, err := tmpl.WithLimits(lim).Render(nil, false)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %q, %v\nwant %q", out, err, tc.want)
			}
		})
	}
}
