package gatt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Kind is a constraint category.
type Kind string

// The three categories of Llama 2's GAtt instructions.
const (
	Hobby    Kind = "hobby"
	Language Kind = "language"
	Figure   Kind = "figure"
)

// kinds lists the categories in a fixed order; it is never modified.
var kinds = [...]Kind{Hobby, Language, Figure}

// Constraint is one attribute the assistant must keep for the whole dialogue.
type Constraint struct {
	Kind  Kind
	Value string // e.g. "Tennis", "French", "Napoleon"
}

// Verbose is the constraint's full sentence, without a final period.
func (c Constraint) Verbose() string {
	switch c.Kind {
	case Hobby:
		return "You enjoy " + c.Value
	case Language:
		return "Always speak in " + c.Value
	case Figure:
		return "Always act as " + c.Value + " from now"
	}
	return string(c.Kind) + ": " + c.Value
}

// Terse is the constraint's short form, without a final period.
func (c Constraint) Terse() string {
	switch c.Kind {
	case Hobby:
		return "Hobby: " + c.Value
	case Language:
		return "Language: " + c.Value
	case Figure:
		return "Figure: " + c.Value
	}
	return string(c.Kind) + ": " + c.Value
}

// Instruction is a sampled GAtt instruction: 1–3 constraints of distinct kinds and both renderings.
type Instruction struct {
	Constraints []Constraint
	Verbose     string // "Always act as Napoleon from now. Always speak in French. You enjoy Tennis."
	Terse       string // "Figure: Napoleon. Language: French. Hobby: Tennis."
	UseTerse    bool   // which of the two Text returns
}

// Text is the instruction as it is put into the dialogue.
func (in Instruction) Text() string {
	if in.UseTerse {
		return in.Terse
	}
	return in.Verbose
}

// NewInstruction renders constraints in the given order; it does not check them.
func NewInstruction(cs []Constraint, terse bool) Instruction {
	v := make([]string, len(cs))
	t := make([]string, len(cs))
	for i, c := range cs {
		v[i] = c.Verbose() + "."
		t[i] = c.Terse() + "."
	}
	return Instruction{
		Constraints: append([]Constraint(nil), cs...),
		Verbose:     strings.Join(v, " "),
		Terse:       strings.Join(t, " "),
		UseTerse:    terse,
	}
}

// Lists holds the values each category draws from. The yaml/json names are those of the config file.
type Lists struct {
	Hobbies   []string `json:"hobbies" yaml:"hobbies" mapstructure:"hobbies"`
	Languages []string `json:"languages" yaml:"languages" mapstructure:"languages"`
	Figures   []string `json:"figures" yaml:"figures" mapstructure:"figures"`
}

// DefaultLists returns alignkit's default lists (a fresh copy each call). The languages are exactly
// those the language checker can identify.
func DefaultLists() Lists {
	return Lists{
		Hobbies: []string{
			"Tennis", "Golf", "Chess", "Gardening", "Painting", "Photography", "Hiking", "Cooking",
			"Swimming", "Knitting", "Birdwatching", "Astronomy", "Surfing", "Pottery", "Rock climbing",
			"Cycling", "Baking", "Fishing", "Yoga", "Sailing", "Origami", "Calligraphy", "Skiing",
			"Woodworking",
		},
		Languages: []string{"English", "French", "German", "Italian", "Spanish"},
		Figures: []string{
			"Napoleon", "Albert Einstein", "Cleopatra", "William Shakespeare", "Marie Curie",
			"Leonardo da Vinci", "Abraham Lincoln", "Ada Lovelace", "Mahatma Gandhi", "Isaac Newton",
			"Julius Caesar", "Amelia Earhart", "Charles Darwin", "Frida Kahlo", "Wolfgang Amadeus Mozart",
			"Nelson Mandela", "Joan of Arc", "Galileo Galilei", "Queen Victoria", "Confucius",
		},
	}
}

// DefaultAliases are shorter names the keyword checker also accepts for default values, keyed by the
// value: an answer "I am Einstein" names "Albert Einstein".
func DefaultAliases() map[string][]string {
	return map[string][]string{
		"Napoleon":                {"Napoleon Bonaparte", "Napoléon"},
		"Albert Einstein":         {"Einstein"},
		"William Shakespeare":     {"Shakespeare"},
		"Marie Curie":             {"Curie", "Madame Curie"},
		"Leonardo da Vinci":       {"Leonardo", "da Vinci"},
		"Abraham Lincoln":         {"Lincoln"},
		"Ada Lovelace":            {"Lovelace"},
		"Mahatma Gandhi":          {"Gandhi"},
		"Isaac Newton":            {"Newton"},
		"Julius Caesar":           {"Caesar"},
		"Amelia Earhart":          {"Earhart"},
		"Charles Darwin":          {"Darwin"},
		"Frida Kahlo":             {"Frida", "Kahlo"},
		"Wolfgang Amadeus Mozart": {"Mozart"},
		"Nelson Mandela":          {"Mandela"},
		"Joan of Arc":             {"Jeanne d'Arc"},
		"Galileo Galilei":         {"Galileo"},
		"Queen Victoria":          {"Victoria"},
		"Rock climbing":           {"climbing"},
		"Birdwatching":            {"bird watching", "birding"},
		"Woodworking":             {"woodwork"},
	}
}

// Extend returns l with extra's values appended to each list, skipping values already present
// (case-insensitively). To replace a list instead, set it directly.
func (l Lists) Extend(extra Lists) Lists {
	return Lists{
		Hobbies:   union(l.Hobbies, extra.Hobbies),
		Languages: union(l.Languages, extra.Languages),
		Figures:   union(l.Figures, extra.Figures),
	}
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	seen := map[string]bool{}
	for _, s := range a {
		seen[strings.ToLower(strings.TrimSpace(s))] = true
	}
	for _, s := range b {
		k := strings.ToLower(strings.TrimSpace(s))
		if !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	return out
}

// List returns the values of one category.
func (l Lists) List(k Kind) ([]string, error) {
	switch k {
	case Hobby:
		return l.Hobbies, nil
	case Language:
		return l.Languages, nil
	case Figure:
		return l.Figures, nil
	}
	return nil, fmt.Errorf("constraint kind %q: want one of hobby, language, figure", k)
}

// fieldName is the config name of a category's list.
func fieldName(k Kind) string {
	switch k {
	case Hobby:
		return "hobbies"
	case Language:
		return "languages"
	}
	return "figures"
}

// check validates the lists of the requested categories: each must be non-empty and hold no blank value.
func (l Lists) check(ks []Kind) error {
	for _, k := range ks {
		vs, err := l.List(k)
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			return fmt.Errorf("gatt %s list is empty: cannot sample a %s constraint", fieldName(k), k)
		}
		for i, v := range vs {
			if strings.TrimSpace(v) == "" {
				return fmt.Errorf("gatt %s[%d] is blank: want a value", fieldName(k), i)
			}
		}
	}
	return nil
}

// Sample draws one instruction from all three categories: 1–3 constraints, uniformly many, of
// distinct kinds in random order, each value uniform over its list, and the terse rendering with
// probability 1/2. Every category's list must be non-empty, whether or not this draw uses it, so a
// bad config fails on the first call rather than at random.
func Sample(rng *rand.Rand, lists Lists) (Instruction, error) {
	return SampleKinds(rng, lists, kinds[:])
}

// SampleKinds is Sample restricted to the given categories (1–len(ks) constraints).
func SampleKinds(rng *rand.Rand, lists Lists, ks []Kind) (Instruction, error) {
	if rng == nil {
		return Instruction{}, errors.New("gatt sample: rng is nil: want a seeded *rand.Rand")
	}
	if len(ks) == 0 {
		return Instruction{}, errors.New("gatt sample: no constraint kinds requested")
	}
	seen := map[Kind]bool{}
	for _, k := range ks {
		if seen[k] {
			return Instruction{}, fmt.Errorf("gatt sample: kind %q requested twice", k)
		}
		seen[k] = true
	}
	if err := lists.check(ks); err != nil {
		return Instruction{}, err
	}
	n := 1 + rng.IntN(min(3, len(ks)))
	perm := rng.Perm(len(ks))
	cs := make([]Constraint, n)
	for i := range cs {
		k := ks[perm[i]]
		vs, _ := lists.List(k) // checked above
		cs[i] = Constraint{Kind: k, Value: strings.TrimSpace(vs[rng.IntN(len(vs))])}
	}
	return NewInstruction(cs, rng.IntN(2) == 0), nil
}

// Question is one evaluation turn and the constraints its answer can be checked against.
type Question struct {
	Text   string
	Checks []Constraint
}

// Question banks. Hobby and figure questions refer back to the attribute; general questions carry no
// attribute, so only a language constraint can be checked on their answers.
var (
	hobbyQuestions = []string{
		"What is your favorite hobby?",
		"What do you like to do in your free time?",
		"How do you like to spend your weekends?",
		"Which activity do you enjoy the most?",
	}
	figureQuestions = []string{
		"What is your name?",
		"Who are you?",
		"Can you introduce yourself?",
		"Who am I talking to?",
	}
	generalQuestions = []string{
		"Can you recommend a good book?",
		"How do I make a good cup of tea?",
		"What should I cook for dinner tonight?",
		"Tell me something interesting about the ocean.",
		"How can I sleep better?",
		"Why is the sky blue?",
		"Give me three tips for a job interview.",
		"What is a good way to start learning to draw?",
	}
)

// Questions returns turns evaluation questions for an instruction. The turns cycle through the
// instruction's hobby and figure constraints and a general question, in a random order per cycle;
// each question is drawn from its bank without repeats until the bank is used up. A language
// constraint is listed in every question's Checks, since it applies to any answer.
func Questions(inst Instruction, turns int, rng *rand.Rand) ([]Question, error) {
	if rng == nil {
		return nil, errors.New("gatt questions: rng is nil: want a seeded *rand.Rand")
	}
	if turns < 1 {
		return nil, fmt.Errorf("gatt questions: turns %d: want at least 1", turns)
	}
	if len(inst.Constraints) == 0 {
		return nil, errors.New("gatt questions: the instruction has no constraints")
	}
	// Turn slots: one per referring constraint, plus one for a general question.
	var langs, referring []Constraint
	for _, c := range inst.Constraints {
		switch c.Kind {
		case Language:
			langs = append(langs, c)
		case Hobby, Figure:
			referring = append(referring, c)
		default:
			return nil, fmt.Errorf("gatt questions: constraint kind %q: want one of hobby, language, figure", c.Kind)
		}
	}
	banks := map[Kind]*bank{
		Hobby:  {src: hobbyQuestions},
		Figure: {src: figureQuestions},
		"":     {src: generalQuestions},
	}
	out := make([]Question, 0, turns)
	slots := len(referring) + 1
	var order []int
	for len(out) < turns {
		if len(order) == 0 {
			order = rng.Perm(slots)
		}
		s := order[0]
		order = order[1:]
		q := Question{Checks: append([]Constraint(nil), langs...)}
		if s < len(referring) {
			c := referring[s]
			q.Text = banks[c.Kind].next(rng)
			q.Checks = append(q.Checks, c)
		} else {
			q.Text = banks[""].next(rng)
		}
		out = append(out, q)
	}
	return out, nil
}

// bank hands out questions in a random order without repeats, reshuffling when used up.
type bank struct {
	src   []string
	order []int
}

func (b *bank) next(rng *rand.Rand) string {
	if len(b.order) == 0 {
		b.order = rng.Perm(len(b.src))
	}
	i := b.order[0]
	b.order = b.order[1:]
	return b.src[i]
}
