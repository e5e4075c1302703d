package gatt

import (
	"fmt"
	"strings"

	"github.com/alignkit/alignkit/data/chat"
)

// Placement says where the instruction goes in a training sample's first turn.
type Placement string

// Placements. PlaceAuto asks the chat template: a template that renders a system message uses
// PlaceSystem, one that raises on it (Mistral's) or drops it uses PlaceFirstUser.
const (
	PlaceAuto      Placement = "auto"
	PlaceSystem    Placement = "system"
	PlaceFirstUser Placement = "first_user"
)

// ParsePlacement validates an instruction_placement value ("" means auto).
func ParsePlacement(s string) (Placement, error) {
	switch p := Placement(s); p {
	case "", PlaceAuto:
		return PlaceAuto, nil
	case PlaceSystem, PlaceFirstUser:
		return p, nil
	}
	return "", fmt.Errorf("instruction_placement %q: want auto, system or first_user", s)
}

// probeSystem is a system text no real template writes by itself, to see whether a rendering kept it.
const probeSystem = "gatt placement probe: system text"

// DetectPlacement renders [system, user] with the template: when that raises (the template's
// raise_exception) or the system text does not appear in the output, the template has no system role
// and the instruction goes into the first user message. A template that cannot render even a lone
// user message is an error.
func DetectPlacement(t *chat.Template) (Placement, error) {
	if t == nil {
		return "", fmt.Errorf("instruction_placement auto needs a chat template: set chat_template, or instruction_placement to system or first_user")
	}
	if _, err := t.Render([]chat.Message{{Role: "user", Content: "hello"}}, true); err != nil {
		return "", fmt.Errorf("chat template %s cannot render a user message: %w", t.Name(), err)
	}
	out, err := t.Render([]chat.Message{{Role: "system", Content: probeSystem}, {Role: "user", Content: "hello"}}, true)
	if err != nil || !strings.Contains(out, probeSystem) {
		return PlaceFirstUser, nil
	}
	return PlaceSystem, nil
}

// WithInstruction is a user message with the instruction appended, as Llama 2 concatenates it to the
// user messages while sampling (and keeps it in u1 for templates without a system role).
func WithInstruction(user, instruction string) string {
	return user + "\n\n" + instruction
}

// Dialogue is a source conversation reduced to what GAtt uses: an optional system message and the
// user turns. The source's assistant replies are not used: each reply is sampled anew with the
// instruction in context.
type Dialogue struct {
	SourceRow int
	System    string // the source's leading system message, "" if none
	Users     []string
}

// DialogueFrom extracts the user turns of a source conversation. It fails, with a reason for the
// skip count, when the conversation has fewer than two user turns. With PlaceFirstUser (a template
// without a system role) a source system message is folded into the first user message.
func DialogueFrom(row int, msgs []chat.Message, p Placement) (Dialogue, error) {
	d := Dialogue{SourceRow: row}
	for i, m := range msgs {
		switch {
		case m.Role == "system" && i == 0:
			d.System = m.Content
		case m.Role == "user":
			d.Users = append(d.Users, m.Content)
		}
	}
	if len(d.Users) < 2 {
		return d, fmt.Errorf("row %d: %d user turn(s): GAtt needs at least 2", row, len(d.Users))
	}
	if p == PlaceFirstUser && d.System != "" {
		d.Users[0] = d.System + "\n\n" + d.Users[0]
		d.System = ""
	}
	return d, nil
}

// system is the system message of a training sample: the source system message, then the
// instruction with PlaceSystem; with PlaceFirstUser the source system message, which DialogueFrom
// already folded into u1 ("").
func (d Dialogue) system(instruction string, p Placement) string {
	switch {
	case p == PlaceSystem && d.System != "":
		return d.System + "\n\n" + instruction
	case p == PlaceSystem:
		return instruction
	}
	return d.System
}

// SamplingPrompt is the conversation the sampler continues for turn t (0-based): the instruction is
// appended to every user message u_0..u_t, as Llama 2 does while sampling; replies holds the t
// replies sampled so far.
func (d Dialogue) SamplingPrompt(instruction string, replies []string) []chat.Message {
	t := len(replies)
	msgs := make([]chat.Message, 0, 2*t+2)
	if d.System != "" {
		msgs = append(msgs, chat.Message{Role: "system", Content: d.System})
	}
	for i := 0; i <= t; i++ {
		msgs = append(msgs, chat.Message{Role: "user", Content: WithInstruction(d.Users[i], instruction)})
		if i < t {
			msgs = append(msgs, chat.Message{Role: "assistant", Content: replies[i]})
		}
	}
	return msgs
}

// TrainingMessages is the dialogue as it is trained on: the instruction only in the first turn (the
// system message, or appended to u1 with PlaceFirstUser), the original u2…un, and the sampled
// replies. len(replies) turns are used (at most len(d.Users)).
func (d Dialogue) TrainingMessages(instruction string, p Placement, replies []string) []chat.Message {
	msgs := make([]chat.Message, 0, 2*len(replies)+1)
	if s := d.system(instruction, p); s != "" {
		msgs = append(msgs, chat.Message{Role: "system", Content: s})
	}
	for i, r := range replies {
		u := d.Users[i]
		if i == 0 && p == PlaceFirstUser {
			u = WithInstruction(u, instruction)
		}
		msgs = append(msgs, chat.Message{Role: "user", Content: u}, chat.Message{Role: "assistant", Content: r})
	}
	return msgs
}

// SampleMode says how many training samples a dialogue gives.
type SampleMode string

// Sample modes.
const (
	// SamplesLastTurn gives one sample per dialogue, trained on its final reply only.
	SamplesLastTurn SampleMode = "last_turn"
	// SamplesEveryTurn gives one sample per turn t, the dialogue cut after a_t, trained on a_t only.
	SamplesEveryTurn SampleMode = "every_turn"
)

// ParseSampleMode validates a samples value ("" means last_turn).
func ParseSampleMode(s string) (SampleMode, error) {
	switch m := SampleMode(s); m {
	case "":
		return SamplesLastTurn, nil
	case SamplesLastTurn, SamplesEveryTurn:
		return m, nil
	}
	return "", fmt.Errorf("samples %q: want last_turn or every_turn", s)
}

// Row is one training sample of gatt.parquet.
type Row struct {
	Messages    []chat.Message `json:"messages"`
	Instruction string         `json:"instruction"`  // the exact text placed in the first turn
	Constraints []string       `json:"constraints"`  // each constraint's terse form, "Figure: Napoleon"
	Terse       bool           `json:"terse"`        // whether Instruction is the terse rendering
	TrainedTurn int            `json:"trained_turn"` // index in Messages of the assistant message with loss
	SourceRow   int            `json:"source_row"`
}

// BuildRows makes the training samples of a dialogue whose replies were sampled under inst.
func BuildRows(d Dialogue, inst Instruction, p Placement, mode SampleMode, replies []string) ([]Row, error) {
	if p != PlaceSystem && p != PlaceFirstUser {
		return nil, fmt.Errorf("gatt rows: placement %q: want system or first_user (resolve auto first)", p)
	}
	if len(replies) < 1 || len(replies) > len(d.Users) {
		return nil, fmt.Errorf("gatt rows: row %d: %d replies for %d user turns", d.SourceRow, len(replies), len(d.Users))
	}
	text := inst.Text()
	full := d.TrainingMessages(text, p, replies)
	cs := make([]string, len(inst.Constraints))
	for i, c := range inst.Constraints {
		cs[i] = c.Terse()
	}
	row := func(end int) Row {
		return Row{
			Messages: append([]chat.Message(nil), full[:end+1]...), Instruction: text,
			Constraints: append([]string(nil), cs...), Terse: inst.UseTerse, TrainedTurn: end, SourceRow: d.SourceRow,
		}
	}
	if mode == SamplesLastTurn {
		return []Row{row(len(full) - 1)}, nil
	}
	if mode != SamplesEveryTurn {
		return nil, fmt.Errorf("gatt rows: samples %q: want last_turn or every_turn", mode)
	}
	var out []Row
	for i, m := range full {
		if m.Role == "assistant" {
			out = append(out, row(i))
		}
	}
	return out, nil
}

// ParseConstraint reads a constraint back from its terse form ("Figure: Napoleon").
func ParseConstraint(s string) (Constraint, error) {
	head, value, ok := strings.Cut(s, ":")
	value = strings.TrimSpace(value)
	if !ok || value == "" {
		return Constraint{}, fmt.Errorf("constraint %q: want Kind: value, e.g. \"Figure: Napoleon\"", s)
	}
	switch k := Kind(strings.ToLower(strings.TrimSpace(head))); k {
	case Hobby, Language, Figure:
		return Constraint{Kind: k, Value: value}, nil
	}
	return Constraint{}, fmt.Errorf("constraint %q: kind %q: want Hobby, Language or Figure", s, strings.TrimSpace(head))
}
