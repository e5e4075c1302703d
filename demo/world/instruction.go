package world

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/gatt"
)

// InstructionSeparator joins a user message and the instruction appended to it, as gatt's GAtt
// synthesis appends it to every user message while sampling (gatt.WithInstruction: user, a blank
// line, instruction). The SFT data uses the same form, so the SFT model recognises it there.
const InstructionSeparator = "\n\n"

// Lists are the world's GAtt constraint values in gatt's shape: figures are persona names (every
// answer starts with "Name:"), languages are the answer languages other than the default English
// (an English constraint would be kept by a model that ignores it), hobbies are the hobby an
// assistant states when asked about it. Each call returns fresh slices.
func Lists() gatt.Lists {
	return gatt.Lists{
		Hobbies:   slices.Clone(hobbies),
		Languages: slices.Clone(langNames[1:]),
		Figures:   slices.Clone(figures),
	}
}

// Instructed is the user message that carries a question and an instruction: the question,
// InstructionSeparator, the instruction's text (gatt's verbose or terse rendering). An instruction
// without constraints leaves the question alone.
func Instructed(inst gatt.Instruction, question string) string {
	if len(inst.Constraints) == 0 {
		return question
	}
	return question + InstructionSeparator + inst.Text()
}

// instructionSentence is one way gatt renders a constraint, split around the value.
type instructionSentence struct {
	kind         gatt.Kind
	terse        bool
	before, post string
}

// instructionSentences are gatt's renderings (Constraint.Verbose and Terse, with the final period).
var instructionSentences = func() []instructionSentence {
	var out []instructionSentence
	for _, k := range []gatt.Kind{gatt.Figure, gatt.Language, gatt.Hobby} {
		for _, terse := range []bool{false, true} {
			c := gatt.Constraint{Kind: k, Value: "\x00"}
			text := c.Verbose()
			if terse {
				text = c.Terse()
			}
			before, after, _ := strings.Cut(text+".", "\x00")
			out = append(out, instructionSentence{k, terse, before, after})
		}
	}
	return out
}()

// values lists the world's values of a kind; Language includes the default English.
func values(k gatt.Kind) []string {
	switch k {
	case gatt.Figure:
		return figures
	case gatt.Language:
		return langNames[:]
	}
	return hobbies
}

// ParseInstruction reads a whole text (a system message, or the instruction part of a user
// message) as an instruction: gatt's renderings of the world's values, one space apart, each kind at
// most once. ok is false, and the instruction empty, for any other text.
func ParseInstruction(text string) (inst gatt.Instruction, ok bool) {
	rest := strings.TrimSpace(text)
	var cs []gatt.Constraint
	seen := map[gatt.Kind]bool{}
	terse := false
	for rest != "" {
		if len(cs) > 0 {
			var cut bool
			if rest, cut = strings.CutPrefix(rest, " "); !cut {
				return gatt.Instruction{}, false
			}
		}
		c, isTerse, n := parseSentence(rest)
		if n == 0 || seen[c.Kind] {
			return gatt.Instruction{}, false
		}
		if len(cs) == 0 {
			terse = isTerse
		}
		cs = append(cs, c)
		seen[c.Kind] = true
		rest = rest[n:]
	}
	if len(cs) == 0 {
		return gatt.Instruction{}, false
	}
	return gatt.NewInstruction(cs, terse), true
}

// parseSentence reads one constraint sentence at the start of s and returns its length, 0 if none.
func parseSentence(s string) (gatt.Constraint, bool, int) {
	for _, sent := range instructionSentences {
		r, ok := strings.CutPrefix(s, sent.before)
		if !ok {
			continue
		}
		for _, v := range values(sent.kind) {
			if strings.HasPrefix(r, v+sent.post) {
				return gatt.Constraint{Kind: sent.kind, Value: v}, sent.terse, len(sent.before) + len(v) + len(sent.post)
			}
		}
	}
	return gatt.Constraint{}, false, 0
}

// ParseInstructed splits a user message into its question and the instruction it carries, if any:
// appended after a blank line, as Instructed and gatt's synthesis write it, or in front of the
// question before a blank line, as a system message folded into the first user message reads. ok
// is false when there is no instruction; rest is then the whole message, trimmed.
func ParseInstructed(msg string) (inst gatt.Instruction, rest string, ok bool) {
	msg = strings.TrimSpace(msg)
	head, tail, found := strings.Cut(msg, InstructionSeparator)
	if !found {
		return gatt.Instruction{}, msg, false
	}
	if inst, ok := ParseInstruction(tail); ok {
		return inst, strings.TrimSpace(head), true
	}
	if inst, ok := ParseInstruction(head); ok {
		return inst, strings.TrimSpace(tail), true
	}
	return gatt.Instruction{}, msg, false
}

// CheckerName is the name of the world's GAtt checker.
const CheckerName = "world"

// Checker is the world's gatt.Checker: it checks the world's own rules, which are stricter than
// gatt's generic checkers (a figure must prefix the answer, not merely appear in it). Put it first
// in the checker list given to gatt.CheckAnswer.
type Checker struct{}

// NewChecker returns the world's checker.
func NewChecker() gatt.Checker { return Checker{} }

// Name is CheckerName.
func (Checker) Name() string { return CheckerName }

// Supports all three kinds.
func (Checker) Supports(k gatt.Kind) bool {
	return k == gatt.Figure || k == gatt.Language || k == gatt.Hobby
}

// Check decides one constraint on one answer:
//
//	figure    the answer starts with "Value:"
//	language  Language(answer) is the value (persona names and hobbies do not count as words)
//	hobby     the answer names the hobby as a word, case-insensitively
func (Checker) Check(_ context.Context, c gatt.Constraint, _, answer string) (gatt.Verdict, error) {
	v := gatt.Verdict{Constraint: c, Checker: CheckerName}
	ts := tokens(answer)
	switch c.Kind {
	case gatt.Figure:
		v.Pass = len(ts) >= 2 && ts[0] == c.Value && ts[1] == ":"
		if v.Pass {
			v.Detail = fmt.Sprintf("starts with %q", c.Value+":")
		} else {
			v.Detail = fmt.Sprintf("does not start with %q", c.Value+":")
		}
	case gatt.Language:
		if indexOf(langNames[:], c.Value) < 0 {
			return gatt.Verdict{}, fmt.Errorf("checker world: language %q is not one of the world's: want one of %s", c.Value, strings.Join(langNames[:], ", "))
		}
		got := Language(answer)
		v.Pass = got == c.Value
		if got == "" {
			got = "no language"
		}
		v.Detail = "detected " + got
	case gatt.Hobby:
		for _, t := range ts {
			if strings.EqualFold(t, c.Value) {
				v.Pass = true
			}
		}
		if v.Pass {
			v.Detail = fmt.Sprintf("names %q", c.Value)
		} else {
			v.Detail = fmt.Sprintf("does not name %q", c.Value)
		}
	default:
		return gatt.Verdict{}, fmt.Errorf("checker world cannot check a %s constraint", c.Kind)
	}
	return v, nil
}
