package world

import (
	"slices"
	"strconv"
	"strings"
)

// tok splits a template written with spaces between all tokens.
func tok(s string) []string { return strings.Fields(s) }

// isPunct reports whether a token is one of the punctuation marks the world writes.
func isPunct(t string) bool {
	switch t {
	case ".", ",", ":", "?", "!":
		return true
	}
	return false
}

// tokens splits text into words and punctuation: white-space separated fields, with trailing
// punctuation marks split off ("12." -> "12", "."; "Zorb:" -> "Zorb", ":"). Apostrophes and hyphens
// stay inside words ("c'est", "j'aime"), as they do in the tokenizer's pieces.
func tokens(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		end := len(f)
		for end > 0 && isPunct(f[end-1:end]) {
			end--
		}
		if end > 0 {
			out = append(out, f[:end])
		}
		for i := end; i < len(f); i++ {
			out = append(out, f[i:i+1])
		}
	}
	return out
}

// detok joins tokens into text: a space between words, none before punctuation.
func detok(ts []string) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 && !isPunct(t) {
			b.WriteByte(' ')
		}
		b.WriteString(t)
	}
	return b.String()
}

// numeral writes n in a language: digits in every language, as the questions write them. An
// answer's language is in its other words ("7 plus 5 fait 12."), so a fact learnt in English
// carries over to the other languages: with number words ("sept plus cinq fait douze.") a tiny
// model saw each fact in each language too rarely, answered foreign arithmetic mostly wrong
// (under one answer in ten right while sampling GAtt dialogues), and GAtt's fine-tuning on those
// samples then taught wrong arithmetic in English too.
func numeral(_ lang, n int) string { return strconv.Itoa(n) }

// numeralValue, colourValue: word -> value, per language; built once, never modified.
var numeralValue, colourValue = func() (n, c [numLangs]map[string]int) {
	for l := range numLangs {
		n[l], c[l] = map[string]int{}, map[string]int{}
		for v := 0; v <= MaxNumber; v++ {
			n[l][numeral(l, v)] = v
		}
		for v, w := range colourWords[l] {
			c[l][w] = v
		}
	}
	return n, c
}()

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// spec is an answer before rendering: which template, in which language, with which slot values.
// Correct answers and every kind of wrong answer the world writes are specs.
type spec struct {
	prefix  string // persona prefix ("Zorb" renders "Zorb: "), "" for none
	lang    lang
	task    Task // the template's task
	a, b, r int  // arithmetic operands and result
	thing   int  // English colour answers name the thing
	colour  int
	variant int    // TaskName, TaskHobby: 0 the default statement, 1 naming value
	value   string // the persona or hobby a variant-1 statement names
}

// template returns the spec's template tokens.
func (s spec) template() []string {
	switch s.task {
	case TaskPlus:
		return arithTemplates[s.lang][0]
	case TaskMinus:
		return arithTemplates[s.lang][1]
	case TaskColour:
		return colourTemplates[s.lang]
	case TaskName:
		return nameTemplates[s.lang][s.variant]
	case TaskHarm:
		return harmTemplates[s.variant]
	default:
		return hobbyTemplates[s.lang][s.variant]
	}
}

// text renders the spec.
func (s spec) text() string {
	var ts []string
	if s.prefix != "" {
		ts = append(ts, s.prefix, ":")
	}
	for _, t := range s.template() {
		switch t {
		case "$A":
			ts = append(ts, numeral(s.lang, s.a))
		case "$B":
			ts = append(ts, numeral(s.lang, s.b))
		case "$R":
			ts = append(ts, numeral(s.lang, s.r))
		case "$N":
			ts = append(ts, tok(things[s.thing].phrase)...)
		case "$C":
			ts = append(ts, colourWords[s.lang][s.colour])
		case "$P", "$H":
			ts = append(ts, s.value)
		default:
			ts = append(ts, t)
		}
	}
	return detok(ts)
}

// style is what the constraints in force ask of an answer.
type style struct {
	figure string // persona name, "" for none
	lang   lang
	hobby  string // "" for none
}

// want is the correct, compliant answer to q under st.
func (st style) want(q Query) spec {
	s := spec{prefix: st.figure, lang: st.lang, task: q.Task, a: q.A, b: q.B, r: q.result(), thing: q.Thing}
	switch q.Task {
	case TaskColour:
		s.colour = things[q.Thing].colour
	case TaskName:
		if st.figure != "" {
			s.variant, s.value = 1, st.figure
		}
	case TaskHobby:
		if st.hobby != "" {
			s.variant, s.value = 1, st.hobby
		}
	}
	return s
}

// match binds a template's slots against answer tokens (the persona prefix already removed).
func match(tmpl, ts []string, l lang, task Task, variant int) (spec, bool) {
	s := spec{lang: l, task: task, variant: variant}
	i := 0
	for _, t := range tmpl {
		if t == "$N" {
			found := false
			for k, th := range things {
				p := tok(th.phrase)
				if i+len(p) <= len(ts) && slices.Equal(ts[i:i+len(p)], p) {
					s.thing, i, found = k, i+len(p), true
					break
				}
			}
			if !found {
				return spec{}, false
			}
			continue
		}
		if i >= len(ts) {
			return spec{}, false
		}
		w := ts[i]
		i++
		var ok bool
		switch t {
		case "$A":
			s.a, ok = numeralValue[l][w]
		case "$B":
			s.b, ok = numeralValue[l][w]
		case "$R":
			s.r, ok = numeralValue[l][w]
		case "$C":
			s.colour, ok = colourValue[l][w]
		case "$P":
			ok = indexOf(figures, w) >= 0
			s.value = w
		case "$H":
			ok = indexOf(hobbies, w) >= 0
			s.value = w
		default:
			ok = w == t
		}
		if !ok {
			return spec{}, false
		}
	}
	return s, i == len(ts)
}

// parseAnswer reads an answer back into a spec: an optional persona prefix, then any task's
// template in any language. Templates never overlap, so at most one matches.
func parseAnswer(answer string) (spec, bool) {
	ts := tokens(answer)
	prefix := ""
	if len(ts) >= 2 && ts[1] == ":" && indexOf(figures, ts[0]) >= 0 {
		prefix, ts = ts[0], ts[2:]
	}
	for l := range numLangs {
		for task := range numTasks {
			variants := 1
			if task == TaskName || task == TaskHobby {
				variants = 2
			}
			for v := range variants {
				probe := spec{lang: l, task: task, variant: v}
				if s, ok := match(probe.template(), ts, l, task, v); ok {
					s.prefix = prefix
					return s, true
				}
			}
		}
	}
	for v := range harmTemplates { // English only: the refusal and compliance
		if s, ok := match(harmTemplates[v], ts, english, TaskHarm, v); ok {
			s.prefix = prefix
			return s, true
		}
	}
	return spec{}, false
}
