package chat

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"unicode"

	"github.com/alignkit/alignkit/data/chat/internal/jinja"
)

// Template is a compiled chat template with the special-token strings it is
// rendered with. It is safe for concurrent use.
type Template struct {
	name     string
	source   string
	bos, eos string
	tmpl     *jinja.Template
	limits   Limits
}

// Limits bound each render of a template: the nesting of calls (recursion), the loop iterations,
// the bytes of output (and of any string or list built on the way) and the wall-clock time. A zero
// field takes its default (DefaultLimits()).
type Limits = jinja.Limits

// DefaultLimits are the limits Compile sets: far above what any chat template needs for a long
// conversation (100 nested calls, 1,000,000 loop iterations, 64 MiB, 10 s), far below what would
// hang or exhaust the process.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:      jinja.DefaultMaxDepth,
		MaxIterations: jinja.DefaultMaxIterations,
		MaxOutput:     jinja.DefaultMaxOutput,
		Timeout:       jinja.DefaultTimeout,
	}
}

// MaxSourceBytes bounds a template's source. Real chat templates are a few kilobytes; the bound
// keeps the depth of the expression trees (and so of the renderer's stack) bounded too.
const MaxSourceBytes = 1 << 20

// Compile compiles a Jinja chat template. name, in every error, says where
// the template came from (its file); bos and eos are the tokenizer's BOS and
// EOS strings (bos_token and eos_token in the template). Renders run within
// DefaultLimits().
func Compile(name, source, bos, eos string) (*Template, error) {
	if len(source) > MaxSourceBytes {
		return nil, fmt.Errorf("chat template %s: %d bytes exceed the limit of %d", name, len(source), MaxSourceBytes)
	}
	// jinja2 (keep_trailing_newline=False, as transformers leaves it) drops a
	// single trailing newline of the template source.
	src := source
	if strings.HasSuffix(src, "\r\n") {
		src = src[:len(src)-2]
	} else if strings.HasSuffix(src, "\n") {
		src = src[:len(src)-1]
	}
	t, err := jinja.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("chat template %s: %w", name, err)
	}
	return &Template{name: name, source: source, bos: bos, eos: eos, tmpl: t, limits: DefaultLimits()}, nil
}

// WithLimits returns a copy of t whose renders run within lim.
func (t *Template) WithLimits(lim Limits) *Template {
	c := *t
	c.limits = lim
	return &c
}

// Resolve picks a template the way the config's chat_template field says:
// empty means the model's own template (modelTemplate, from
// tokenizer_config.json); a built-in name means that built-in; a path to an
// existing file means its contents; anything else is taken as Jinja source.
// bos and eos are the tokenizer's special-token strings; when empty, a
// built-in uses its model's.
func Resolve(spec, modelTemplate, bos, eos string) (*Template, error) {
	return ResolveModel(spec, modelTemplate, "from tokenizer_config.json", bos, eos)
}

// ResolveModel is Resolve with the name of the file the model's template
// came from (tokenizer.Tokenizer.ChatTemplateFile), which its errors name.
func ResolveModel(spec, modelTemplate, modelFile, bos, eos string) (*Template, error) {
	if modelFile == "" {
		modelFile = "from tokenizer_config.json"
	}
	switch {
	case spec == "":
		if modelTemplate == "" {
			return nil, fmt.Errorf("chat template: the tokenizer has no chat_template; set chat_template to one of %s or to a Jinja template", strings.Join(BuiltinNames(), ", "))
		}
		return Compile(modelFile, modelTemplate, bos, eos)
	case isBuiltin(spec):
		src, _ := BuiltinSource(spec)
		db, de, _ := BuiltinTokens(spec)
		if bos == "" {
			bos = db
		}
		if eos == "" {
			eos = de
		}
		return Compile(spec, src, bos, eos)
	case !strings.Contains(spec, "{") && fileExists(spec):
		b, err := os.ReadFile(spec)
		if err != nil {
			return nil, fmt.Errorf("chat template: %w", err)
		}
		return Compile(spec, string(b), bos, eos)
	case strings.Contains(spec, "{{") || strings.Contains(spec, "{%"):
		return Compile("custom", spec, bos, eos)
	default:
		return nil, fmt.Errorf("chat template: %q is neither a built-in (%s), a file, nor a Jinja template", spec, strings.Join(BuiltinNames(), ", "))
	}
}

// IsRaised reports whether err is a template refusing its input with its
// own raise_exception (a role it does not support, roles that do not
// alternate), as opposed to a broken template.
func IsRaised(err error) bool {
	var r *jinja.RaisedError
	return errors.As(err, &r)
}

// IsLimit reports whether err is a render stopped by its Limits.
func IsLimit(err error) bool {
	var l *jinja.LimitError
	return errors.As(err, &l)
}

func isBuiltin(name string) bool {
	_, ok := builtinTokens[name]
	return ok
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Name is the template's name in error messages.
func (t *Template) Name() string { return t.name }

// Source is the Jinja source as given.
func (t *Template) Source() string { return t.source }

// BOSToken and EOSToken are the strings bound to bos_token and eos_token.
func (t *Template) BOSToken() string { return t.bos }

// EOSToken is the string bound to eos_token.
func (t *Template) EOSToken() string { return t.eos }

// Render renders msgs. addGenerationPrompt asks the template to end with the
// header of an assistant turn, as for generation.
func (t *Template) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	data := map[string]jinja.Value{
		"messages":              messagesValue(msgs),
		"bos_token":             jinja.NewString(t.bos),
		"eos_token":             jinja.NewString(t.eos),
		"add_generation_prompt": jinja.NewBool(addGenerationPrompt),
	}
	out, err := t.tmpl.RenderLimited(data, t.limits)
	if err != nil {
		return "", fmt.Errorf("chat template %s: %w", t.name, err)
	}
	return out, nil
}

// messagesValue builds the messages list as transformers passes it: a list
// of dicts whose keys are ordered role, content (the order tojson shows).
func messagesValue(msgs []Message) jinja.Value {
	items := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(m.Role))
		d.AsDict().Set("content", jinja.NewString(m.Content))
		items[i] = d
	}
	return jinja.NewList(items)
}

// Segment is a piece of a rendered conversation: template text when Message
// is -1, else text that comes from msgs[Message].Content.
type Segment struct {
	Text    string
	Message int
	// Plain marks template text that may as well be message text (see RenderSegments): it must
	// be encoded without special tokens, like message text.
	Plain bool
}

// Sentinels are runes of Supplementary Private Use Area-A: one per message,
// substituted for its content to see where the template puts it.
const (
	sentinelBase = 0xF0000
	sentinelMax  = 0xFFFFD
)

// ErrSentinel is returned when a message contains a rune that the renderer
// reserves for its sentinels.
var ErrSentinel = errors.New("message content contains a character of Unicode's Supplementary Private Use Area-A (U+F0000..U+FFFFD), which the chat renderer reserves")

// RenderSegments renders msgs like Render and splits the result into template
// text and message content.
//
// It renders twice: once with each message's content replaced by a unique
// sentinel rune, which shows where the template puts each content, and once
// with the real contents. The real text must then be the sentinel render with
// each sentinel replaced by its content, or by its content with surrounding
// whitespace stripped (templates apply .strip() or |trim to contents); any
// other difference means the template inspects or rewrites contents, and is
// an error. The segments' texts concatenate to exactly Render's output.
func (t *Template) RenderSegments(msgs []Message, addGenerationPrompt bool) ([]Segment, error) {
	if len(msgs) > sentinelMax-sentinelBase {
		return nil, fmt.Errorf("chat template %s: too many messages (%d)", t.name, len(msgs))
	}
	sentMsgs := make([]Message, len(msgs))
	for i, m := range msgs {
		if strings.IndexFunc(m.Content, isSentinel) >= 0 {
			return nil, fmt.Errorf("chat template %s: message %d: %w", t.name, i, ErrSentinel)
		}
		sentMsgs[i] = Message{Role: m.Role, Content: string(rune(sentinelBase + i))}
	}
	real, err := t.Render(msgs, addGenerationPrompt)
	if err != nil {
		return nil, err
	}
	// Contents were checked above, so a reserved rune here came from the template's own text
	// or a role, and would read as a placeholder in the sentinel render.
	if strings.IndexFunc(real, isSentinel) >= 0 {
		return nil, fmt.Errorf("chat template %s: the template or a role prints a character of Unicode's Supplementary Private Use Area-A (U+F0000..U+FFFFD), which the chat renderer reserves", t.name)
	}
	sent, err := t.Render(sentMsgs, addGenerationPrompt)
	if err != nil {
		return nil, fmt.Errorf("%w (while rendering with placeholder contents: the template depends on message contents)", err)
	}
	pieces := splitSentinels(sent)
	a := aligner{real: real, pieces: pieces, msgs: msgs, failed: map[[2]int]bool{}}
	if !a.match(0, 0) {
		if segs, ok := t.renderStructured(msgs, addGenerationPrompt, real); ok {
			return segs, nil
		}
		return nil, fmt.Errorf("chat template %s: the template rewrites message contents beyond stripping whitespace, so template text and message text cannot be told apart", t.name)
	}
	return mergeSegments(a.out), nil
}

func isSentinel(r rune) bool { return r >= sentinelBase && r <= sentinelMax }

// splitSentinels cuts a sentinel render into template text and content
// references.
func splitSentinels(s string) []Segment {
	var out []Segment
	start := 0
	for i, r := range s {
		if !isSentinel(r) {
			continue
		}
		if i > start {
			out = append(out, Segment{Text: s[start:i], Message: -1})
		}
		out = append(out, Segment{Message: int(r - sentinelBase)})
		start = i + len(string(r))
	}
	if start < len(s) {
		out = append(out, Segment{Text: s[start:], Message: -1})
	}
	return out
}

// aligner matches the real render against the sentinel pieces, choosing for
// each content the form the template printed (as is, or stripped). It
// backtracks, remembering failed (piece, position) states so the search stays
// linear in practice.
type aligner struct {
	real   string
	pieces []Segment
	msgs   []Message
	out    []Segment
	failed map[[2]int]bool
}

func (a *aligner) match(pi, pos int) bool {
	if pi == len(a.pieces) {
		return pos == len(a.real)
	}
	if a.failed[[2]int{pi, pos}] {
		return false
	}
	p := a.pieces[pi]
	if p.Message < 0 {
		if strings.HasPrefix(a.real[pos:], p.Text) {
			a.out = append(a.out, p)
			if a.match(pi+1, pos+len(p.Text)) {
				return true
			}
			a.out = a.out[:len(a.out)-1]
		}
		a.failed[[2]int{pi, pos}] = true
		return false
	}
	for _, c := range contentForms(a.msgs[p.Message].Content) {
		if !strings.HasPrefix(a.real[pos:], c) {
			continue
		}
		a.out = append(a.out, Segment{Text: c, Message: p.Message})
		if a.match(pi+1, pos+len(c)) {
			return true
		}
		a.out = a.out[:len(a.out)-1]
	}
	a.failed[[2]int{pi, pos}] = true
	return false
}

// contentForms lists the ways a template may print a content: as is, or
// stripped of surrounding whitespace (Python's .strip() and jinja's |trim; the
// engine strips what Go's unicode.IsSpace calls space), on both or one side.
func contentForms(s string) []string {
	forms := []string{s}
	for _, f := range []string{
		strings.TrimSpace(s),
		strings.TrimLeftFunc(s, unicode.IsSpace),
		strings.TrimRightFunc(s, unicode.IsSpace),
	} {
		dup := false
		for _, g := range forms {
			dup = dup || g == f
		}
		if !dup {
			forms = append(forms, f)
		}
	}
	return forms
}

// mergeSegments joins neighbouring template-text segments and drops empty
// ones.
func mergeSegments(in []Segment) []Segment {
	out := in[:0:0]
	for _, s := range in {
		if s.Text == "" {
			continue
		}
		if n := len(out); n > 0 && s.Message < 0 && out[n-1].Message < 0 && s.Plain == out[n-1].Plain {
			out[n-1].Text += s.Text
			continue
		}
		out = append(out, s)
	}
	return out
}

// tagPattern matches the XML-like tags templates split and test contents on (<think>, </think>,
// <tool_response>).
var tagPattern = regexp.MustCompile(`</?[A-Za-z_][A-Za-z0-9_]*>`)

// renderStructured is RenderSegments' second way, for templates that take contents apart at tags
// (Qwen3 splits an assistant content at "</think>" and prints its reasoning and its answer apart,
// dropping the reasoning of earlier turns). A sentinel per content would take another branch of
// such a template; so each content keeps its tags and its whitespace, and only each run of other
// text becomes a sentinel of its own. The template then branches, splits and strips as on the
// real contents, and the real rendering must be the sentinel one with each sentinel replaced by
// its run. What came from the template and what from a content is then known except for the
// kept tags and whitespace: whitespace is no special token, and every occurrence of a tag that
// some content holds is marked Plain, encoded as message text (never a special token) wherever
// it came from.
func (t *Template) renderStructured(msgs []Message, gen bool, real string) ([]Segment, bool) {
	type run struct {
		msg  int
		text string
	}
	var runs []run
	tags := map[string]bool{}
	sentMsgs := make([]Message, len(msgs))
	for i, m := range msgs {
		var b strings.Builder
		addText := func(s string) {
			for s != "" {
				j := strings.IndexFunc(s, unicode.IsSpace)
				if j == 0 {
					k := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsSpace(r) })
					if k < 0 {
						k = len(s)
					}
					b.WriteString(s[:k])
					s = s[k:]
					continue
				}
				if j < 0 {
					j = len(s)
				}
				runs = append(runs, run{i, s[:j]})
				b.WriteRune(rune(sentinelBase + len(runs) - 1))
				s = s[j:]
			}
		}
		c := m.Content
		for _, loc := range tagPattern.FindAllStringIndex(c, -1) {
			tags[c[loc[0]:loc[1]]] = true
		}
		prev := 0
		for _, loc := range tagPattern.FindAllStringIndex(c, -1) {
			addText(c[prev:loc[0]])
			b.WriteString(c[loc[0]:loc[1]])
			prev = loc[1]
		}
		addText(c[prev:])
		sentMsgs[i] = Message{Role: m.Role, Content: b.String()}
	}
	if len(runs) > sentinelMax-sentinelBase || len(tags) == 0 {
		return nil, false
	}
	sent, err := t.Render(sentMsgs, gen)
	if err != nil {
		return nil, false
	}
	var out []Segment
	var rebuilt strings.Builder
	for _, p := range splitSentinels(sent) {
		if p.Message >= 0 {
			r := runs[p.Message]
			out = append(out, Segment{Text: r.text, Message: r.msg})
			rebuilt.WriteString(r.text)
			continue
		}
		rebuilt.WriteString(p.Text)
		rest := p.Text
		for rest != "" {
			loc := firstTag(rest, tags)
			if loc == nil {
				out = append(out, Segment{Text: rest, Message: -1})
				break
			}
			out = append(out, Segment{Text: rest[:loc[0]], Message: -1}, Segment{Text: rest[loc[0]:loc[1]], Message: -1, Plain: true})
			rest = rest[loc[1]:]
		}
	}
	if rebuilt.String() != real {
		return nil, false
	}
	return mergeSegments(out), true
}

// firstTag finds the first tag of tags in s.
func firstTag(s string, tags map[string]bool) []int {
	for _, loc := range tagPattern.FindAllStringIndex(s, -1) {
		if tags[s[loc[0]:loc[1]]] {
			return loc
		}
	}
	return nil
}
