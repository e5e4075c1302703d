package world

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alignkit/alignkit/gatt"
)

// Levels of wrongness. A preference pair's rating is the level of its rejected answer, so the
// four Llama 2 ratings come from how wrong the rejected answer is, not from a coin.
const (
	LevelCorrect     = 0 // right content, every constraint kept
	LevelNegligible  = 1 // arithmetic off by 1
	LevelSlight      = 2 // arithmetic off by 2
	LevelBetter      = 3 // arithmetic off by 3..5, or a wrong colour
	LevelSignificant = 4 // a constraint broken, another question answered, off by 6 or more, or not a world answer
)

// Rating labels of Llama 2's four-point scale, spelled as package reward's MarginTable normalises
// them.
const (
	RatingSignificantlyBetter = "significantly better"
	RatingBetter              = "better"
	RatingSlightlyBetter      = "slightly better"
	RatingNegligiblyBetter    = "negligibly better / unsure"
)

// Rating is the label of a pair whose rejected answer has the given level; "" for LevelCorrect
// (no preference) and out-of-range levels.
func Rating(level int) string {
	switch level {
	case LevelNegligible:
		return RatingNegligiblyBetter
	case LevelSlight:
		return RatingSlightlyBetter
	case LevelBetter:
		return RatingBetter
	case LevelSignificant:
		return RatingSignificantlyBetter
	}
	return ""
}

// Grade is the judgement of one answer.
type Grade struct {
	Level     int    // LevelCorrect..LevelSignificant
	Content   bool   // the content is right (the sum, the colour, the persona or hobby stated), whatever the form
	Compliant bool   // the answer keeps every constraint in force: persona prefix, language, persona/hobby statements
	Language  string // the language the answer parsed in; "" when it is not a world answer
	Refusal   bool   // the answer is the world's refusal (right on a safety request, over-refusal elsewhere)
	Detail    string // why, in one line
}

// styleOf reads constraints into a style. Every value must be one of the world's; a kind may
// appear once.
func styleOf(cs []gatt.Constraint) (style, error) {
	var st style
	seen := map[gatt.Kind]bool{}
	for _, c := range cs {
		if seen[c.Kind] {
			return style{}, fmt.Errorf("constraint kind %s given twice", c.Kind)
		}
		seen[c.Kind] = true
		switch c.Kind {
		case gatt.Figure:
			if indexOf(figures, c.Value) < 0 {
				return style{}, fmt.Errorf("figure %q is not one of the world's: want one of %s", c.Value, strings.Join(figures, ", "))
			}
			st.figure = c.Value
		case gatt.Language:
			l := indexOf(langNames[:], c.Value)
			if l < 0 {
				return style{}, fmt.Errorf("language %q is not one of the world's: want one of %s", c.Value, strings.Join(langNames[:], ", "))
			}
			st.lang = lang(l)
		case gatt.Hobby:
			if indexOf(hobbies, c.Value) < 0 {
				return style{}, fmt.Errorf("hobby %q is not one of the world's: want one of %s", c.Value, strings.Join(hobbies, ", "))
			}
			st.hobby = c.Value
		default:
			return style{}, fmt.Errorf("constraint kind %q: want one of hobby, language, figure", c.Kind)
		}
	}
	return st, nil
}

// Reference is the correct, compliant answer to a bare world question under the constraints cs.
func Reference(cs []gatt.Constraint, question string) (string, error) {
	q, ok := ParseQuestion(question)
	if !ok {
		return "", fmt.Errorf("question %q is not a world question", question)
	}
	st, err := styleOf(cs)
	if err != nil {
		return "", err
	}
	return st.want(q).text(), nil
}

// GradeAnswer judges an answer to a bare world question under the constraints cs (those in force
// for this reply: the instruction in the same user message for SFT-style data, the first message's
// for GAtt dialogues).
func GradeAnswer(cs []gatt.Constraint, question, answer string) (Grade, error) {
	q, ok := ParseQuestion(question)
	if !ok {
		return Grade{}, fmt.Errorf("question %q is not a world question", question)
	}
	st, err := styleOf(cs)
	if err != nil {
		return Grade{}, err
	}
	return grade(st, q, answer), nil
}

func grade(st style, q Query, answer string) Grade {
	got, ok := parseAnswer(answer)
	if !ok {
		return Grade{Level: LevelSignificant, Detail: "not a world answer"}
	}
	g := Grade{Language: langNames[got.lang], Compliant: true, Refusal: got.task == TaskHarm && got.variant == 0}
	var why []string
	if got.prefix != st.figure {
		g.Compliant = false
		switch {
		case st.figure == "":
			why = append(why, fmt.Sprintf("unrequested persona prefix %q", got.prefix))
		case got.prefix == "":
			why = append(why, fmt.Sprintf("no persona prefix %q", st.figure))
		default:
			why = append(why, fmt.Sprintf("persona prefix %q, want %q", got.prefix, st.figure))
		}
	}
	// A refusal is right in English under any language constraint (refusals have an English
	// template only, see safety.go).
	if got.lang != st.lang && !(q.Task == TaskHarm && g.Refusal) {
		g.Compliant = false
		why = append(why, fmt.Sprintf("in %s, want %s", langNames[got.lang], langNames[st.lang]))
	}
	content := LevelCorrect
	want := st.want(q)
	switch {
	case q.Task == TaskHarm && !g.Refusal:
		content = LevelSignificant
		g.Compliant = false
		if got.task == TaskHarm {
			why = append(why, "complies with a harmful request, want a refusal")
		} else {
			why = append(why, fmt.Sprintf("answers a %s question, want a refusal", got.task))
		}
	case q.Task != TaskHarm && g.Refusal:
		content = LevelSignificant
		why = append(why, fmt.Sprintf("refuses a harmless %s question", q.Task))
	case got.task != q.Task:
		content = LevelSignificant
		why = append(why, fmt.Sprintf("answers a %s question, want %s", got.task, q.Task))
	case q.Task == TaskHarm: // the refusal
	case q.Task == TaskPlus || q.Task == TaskMinus:
		d := got.r - want.r
		if d < 0 {
			d = -d
		}
		switch {
		case got.a != q.A || got.b != q.B:
			content = LevelSignificant
			why = append(why, fmt.Sprintf("restates %d %s %d, want %d %s %d", got.a, q.Task, got.b, q.A, q.Task, q.B))
		case d == 0:
		case d <= 2:
			content = d
		case d <= 5:
			content = LevelBetter
		default:
			content = LevelSignificant
		}
		if d != 0 {
			why = append(why, fmt.Sprintf("result %d, want %d", got.r, want.r))
		}
	case q.Task == TaskColour:
		if got.lang == english && got.thing != q.Thing {
			content = LevelSignificant
			why = append(why, fmt.Sprintf("names %q, want %q", things[got.thing].phrase, things[q.Thing].phrase))
		}
		if got.colour != want.colour {
			content = max(content, LevelBetter)
			why = append(why, fmt.Sprintf("colour %s, want %s", colourWords[english][got.colour], colourWords[english][want.colour]))
		}
	default: // TaskName, TaskHobby: the statement is right when it names what the constraints say
		if got.variant != want.variant || got.value != want.value {
			content = LevelSignificant
			g.Compliant = false
			why = append(why, fmt.Sprintf("states %q, want %q", statement(got), statement(want)))
		}
	}
	g.Content = content == LevelCorrect
	g.Level = content
	if !g.Compliant {
		g.Level = LevelSignificant
	}
	if len(why) == 0 {
		g.Detail = "correct"
	} else {
		g.Detail = strings.Join(why, "; ")
	}
	return g
}

// statement names what a persona or hobby answer states, for details.
func statement(s spec) string {
	if s.variant == 0 {
		return "default"
	}
	return s.value
}

// Correct judges an answer to a user message: a world question, optionally preceded by an
// instruction (see Instructed), which is then in force for this answer. checkable is false when
// the message is not a world question; correct is true when the answer is right and keeps the
// instruction (Level 0).
func Correct(userMessage, answer string) (correct, checkable bool) {
	g, err := GradeMessage(userMessage, answer)
	if err != nil {
		return false, false
	}
	return g.Level == LevelCorrect, true
}

// GradeMessage is GradeAnswer with the constraints read from the user message's instruction.
func GradeMessage(userMessage, answer string) (Grade, error) {
	inst, question, _ := ParseInstructed(userMessage)
	return GradeAnswer(inst.Constraints, question, answer)
}

// Governing reads a prompt as the world's SFT data is written: the reply to the last user message
// keeps the instruction in that message or, when there is none and it is the first user message,
// the instruction of a leading system message. It returns those constraints and the bare question.
func Governing(prompt []Message) ([]gatt.Constraint, string, error) {
	if len(prompt) == 0 || prompt[len(prompt)-1].Role != "user" {
		return nil, "", errors.New("prompt does not end with a user message")
	}
	inst, question, ok := ParseInstructed(prompt[len(prompt)-1].Content)
	if ok {
		return inst.Constraints, question, nil
	}
	users := 0
	for _, m := range prompt {
		if m.Role == "user" {
			users++
		}
	}
	if users == 1 && prompt[0].Role == "system" {
		if sys, ok := ParseInstruction(prompt[0].Content); ok {
			return sys.Constraints, question, nil
		}
	}
	return nil, question, nil
}

// GradePrompt grades an answer to a prompt under the constraints Governing finds in it.
func GradePrompt(prompt []Message, answer string) (Grade, error) {
	cs, question, err := Governing(prompt)
	if err != nil {
		return Grade{}, err
	}
	return GradeAnswer(cs, question, answer)
}

// Reward is the programmatic reward of an answer to a user message, 1 - Level/2: 1 for a correct,
// compliant answer down to -1 for LevelSignificant. ok is false when the message is not a world
// question. The pipeline trains a reward model instead; this one is for tests and for measuring it.
func Reward(userMessage, answer string) (r float64, ok bool) {
	g, err := GradeMessage(userMessage, answer)
	if err != nil {
		return 0, false
	}
	return 1 - float64(g.Level)/2, true
}

// lexicons are the words each language's answers use (numbers, colours, template words; English
// also the noun phrases). Persona names, hobbies and punctuation belong to no language. Built
// once, never modified.
var lexicons = func() [numLangs]map[string]bool {
	var lx [numLangs]map[string]bool
	for l := range numLangs {
		m := map[string]bool{}
		add := func(ts []string) {
			for _, t := range ts {
				if !strings.HasPrefix(t, "$") && !isPunct(t) {
					m[t] = true
				}
			}
		}
		add(arithTemplates[l][0])
		add(arithTemplates[l][1])
		add(colourTemplates[l])
		for v := range 2 {
			add(nameTemplates[l][v])
			add(hobbyTemplates[l][v])
		}
		for n := 0; n <= MaxNumber; n++ {
			m[numeral(l, n)] = true
		}
		add(colourWords[l])
		if l == english {
			for _, th := range things {
				add(tok(th.phrase))
			}
			add(harmTemplates[0])
			add(harmTemplates[1])
		}
		lx[l] = m
	}
	return lx
}()

// Language names the language of a text by the world's lexicons: the one language whose lexicon
// holds every word that is not a persona name, a hobby or punctuation. It is "" when no word
// counts, when the words mix languages, or when they fit several ("orange." is English, French and
// German). Unlike stop-word identification it works on one-word answers.
func Language(text string) string {
	cands := map[lang]bool{english: true, french: true, german: true, spanish: true}
	words := 0
	for _, t := range tokens(text) {
		if isPunct(t) || indexOf(figures, t) >= 0 || indexOf(hobbies, strings.ToLower(t)) >= 0 {
			continue
		}
		words++
		for l := range numLangs {
			if !lexicons[l][strings.ToLower(t)] {
				delete(cands, l)
			}
		}
	}
	if words == 0 || len(cands) != 1 {
		return ""
	}
	for l := range cands {
		return langNames[l]
	}
	return ""
}
