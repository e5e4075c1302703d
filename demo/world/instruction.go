package world

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/gatt"
)

// InstructionSeparator joins an instruction and the question of the same user message. GAtt
// synthesis must join them the same way (use Instructed) for the SFT model to recognise the
// instruction.
const InstructionSeparator = " "

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

// Instructed is the user message that carries an instruction and a question: the instruction's
// text (gatt's verbose or terse rendering), InstructionSeparator, the question. An instruction
// without constraints leaves the question alone.
func Instructed(inst gatt.Instruction, question string) string {
	if len(inst.Constraints) == 0 {
		return question
	}
	return inst.Text() + InstructionSeparator + question
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

// ParseInstructed splits a user message into the instruction in front of it, if any, and the rest
// (the question). Only gatt's renderings of the world's values are recognised, each kind at most
// once; ok is false when there is no instruction, and the instruction is then empty.
func ParseInstructed(msg string) (inst gatt.Instruction, rest string, ok bool) {
	rest = strings.TrimSpace(msg)
	var cs []gatt.Constraint
	seen := map[gatt.Kind]bool{}
	terse := false
	for {
		found := false
		for _, s := range instructionSentences {
			if seen[s.kind] || !strings.HasPrefix(rest, s.before) {
				continue
			}
			for _, v := range values(s.kind) {
				r := rest[len(s.before):]
				if !strings.HasPrefix(r, v+s.post) {
					continue
				}
				r = r[len(v)+len(s.post):]
				if r != "" && !strings.HasPrefix(r, InstructionSeparator) {
					continue
				}
				if len(cs) == 0 {
					terse = s.terse
				}
				cs = append(cs, gatt.Constraint{Kind: s.kind, Value: v})
				seen[s.kind] = true
				rest, found = strings.TrimPrefix(r, InstructionSeparator), true
				break
			}
			if found {
				break
			}
		}
		if !found {
			break
		}
	}
	if len(cs) == 0 {
		return gatt.Instruction{}, rest, false
	}
	return gatt.NewInstruction(cs, terse), rest, true
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
