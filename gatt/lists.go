package gatt

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/alignkit/alignkit/internal/atomicfile"

	"gopkg.in/yaml.v3"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/rlhf"
)

// ListPrompts are the requests Llama 2 describes ("we asked Llama 2-Chat to generate" the hobbies
// and public figures): one per category, asking for a plain list.
var ListPrompts = map[Kind]string{
	Hobby:    "List %d different hobbies that a person can enjoy. Write one hobby per line, as a numbered list, with only its name.",
	Language: "List %d different languages that people speak. Write one language per line, as a numbered list, with only its name.",
	Figure:   "List %d famous public figures, historical or contemporary, from different fields. Write one person per line, as a numbered list, with only their name.",
}

// ListGenConfig configures GenerateLists.
type ListGenConfig struct {
	N            int     // values asked for per category (default 20)
	MaxNewTokens int     // reply length (default 256)
	Temperature  float64 // 0 is greedy
	Seed         uint64
}

// GenerateLists asks the model for each category's list and parses the replies. A category whose
// reply holds no list item is an error quoting the start of the reply.
func GenerateLists(ctx context.Context, gen rlhf.Generator, cfg ListGenConfig) (Lists, error) {
	if cfg.N <= 0 {
		cfg.N = 20
	}
	if cfg.MaxNewTokens <= 0 {
		cfg.MaxNewTokens = 256
	}
	prompts := make([]rlhf.Prompt, len(kinds))
	for i, k := range kinds {
		prompts[i] = rlhf.Prompt{Messages: []chat.Message{{Role: "user", Content: fmt.Sprintf(ListPrompts[k], cfg.N)}}, Source: "gatt lists", Row: i}
	}
	out, err := gen.Generate(ctx, prompts, 1, rlhf.Sampling{Temperature: cfg.Temperature, MaxNewTokens: cfg.MaxNewTokens, Seed: cfg.Seed})
	if err != nil {
		return Lists{}, fmt.Errorf("gatt lists: %w", err)
	}
	var l Lists
	for i, k := range kinds {
		vs := ParseList(out[i][0])
		if len(vs) == 0 {
			return Lists{}, fmt.Errorf("gatt lists: the model proposed no %s: its reply %q holds no list item", fieldName(k), oneLine(out[i][0], 80))
		}
		if len(vs) > cfg.N {
			vs = vs[:cfg.N]
		}
		switch k {
		case Hobby:
			l.Hobbies = vs
		case Language:
			l.Languages = vs
		case Figure:
			l.Figures = vs
		}
	}
	return l, nil
}

var (
	// bulletRE matches a list marker: "1.", "1)", "(1)", "-", "*", "•".
	bulletRE = regexp.MustCompile(`^\s*(?:\(?\d{1,3}[.)]|[-*•])\s+`)
	// tailRE cuts what follows a name: " - description", ": description", " (details)", " – ...".
	tailRE = regexp.MustCompile(`\s*(?:\s[-–—]\s|:|\().*$`)
)

// ParseList reads list items out of a model's reply: lines that start with a number or a bullet,
// or, when no line does, a single comma-separated line. Each item loses its marker, markdown
// emphasis, a trailing description and final punctuation; blank, overlong (over six words or 60
// characters) and repeated (case-insensitively) items are dropped.
func ParseList(reply string) []string {
	lines := strings.Split(reply, "\n")
	var raw []string
	for _, ln := range lines {
		if loc := bulletRE.FindStringIndex(ln); loc != nil {
			raw = append(raw, ln[loc[1]:])
		}
	}
	if len(raw) == 0 {
		for _, ln := range lines {
			if strings.Count(ln, ",") >= 2 {
				raw = strings.Split(ln, ",")
				break
			}
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, it := range raw {
		it = strings.NewReplacer("**", "", "__", "", "`", "").Replace(it)
		it = tailRE.ReplaceAllString(it, "")
		it = strings.TrimFunc(it, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) && r != '\'' })
		it = strings.TrimPrefix(strings.TrimPrefix(it, "and "), "or ")
		key := strings.ToLower(it)
		if it == "" || len(it) > 60 || len(strings.Fields(it)) > 6 || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, it)
	}
	return out
}

// ListsYAML is Lists as a config fragment: `constraints: {hobbies: [...], ...}`, ready to paste into
// a synth or eval config (with extend_constraints to add them to the defaults).
func ListsYAML(l Lists) ([]byte, error) {
	return yaml.Marshal(struct {
		Constraints Lists `yaml:"constraints"`
	}{l})
}

// WriteListsYAML writes ListsYAML to path atomically.
func WriteListsYAML(path string, l Lists) error {
	b, err := ListsYAML(l)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, b)
}

// UncheckableLanguages lists the languages of l that the language checker cannot identify.
func UncheckableLanguages(l Lists) []string {
	var out []string
	for _, lang := range l.Languages {
		if _, known := stopWords[strings.ToLower(strings.TrimSpace(lang))]; !known {
			out = append(out, lang)
		}
	}
	return out
}

// GenerateListsFrom opens the backend (local: the model at modelPath; openai: b.BaseURL) and runs
// GenerateLists with it.
func GenerateListsFrom(ctx context.Context, b Backend, modelPath, chatTemplate string, cfg ListGenConfig) (Lists, error) {
	b = withDefaults(b)
	if err := validateBackend(b, modelPath); err != nil {
		return Lists{}, err
	}
	s, err := newSampler(ctx, b, modelPath, chatTemplate)
	if err != nil {
		return Lists{}, err
	}
	return GenerateLists(ctx, s.gen, cfg)
}
