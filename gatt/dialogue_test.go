package gatt

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data/chat"
)

func TestDetectPlacement(t *testing.T) {
	cases := []struct {
		template string
		want     Placement
	}{
		{"llama-2", PlaceSystem},    // folds the system message into <<SYS>> of the first [INST]
		{"chatml", PlaceSystem},     // <|im_start|>system
		{"zephyr", PlaceSystem},     // <|system|>
		{"llama-3", PlaceSystem},    // <|start_header_id|>system
		{"mistral", PlaceFirstUser}, // raise_exception('Only user and assistant roles are supported!')
	}
	for _, tc := range cases {
		tmpl, err := chat.Resolve(tc.template, "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := DetectPlacement(tmpl)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.template, got, err, tc.want)
		}
	}
	// A template that silently drops system messages has no system role either.
	drop, err := chat.Compile("drop", "{% for m in messages %}{% if m['role'] != 'system' %}[{{ m['role'] }}] {{ m['content'] }}\n{% endif %}{% endfor %}", "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DetectPlacement(drop); err != nil || got != PlaceFirstUser {
		t.Errorf("dropping template: %q %v", got, err)
	}
	if _, err := DetectPlacement(nil); err == nil || err.Error() != "instruction_placement auto needs a chat template: set chat_template, or instruction_placement to system or first_user" {
		t.Errorf("nil template: %v", err)
	}
	broken, _ := chat.Compile("broken", "{{ raise_exception('no') }}", "<s>", "</s>")
	if _, err := DetectPlacement(broken); err == nil || !strings.HasPrefix(err.Error(), "chat template broken cannot render a user message: ") {
		t.Errorf("broken template: %v", err)
	}
	for _, s := range []string{"", "auto", "system", "first_user"} {
		if _, err := ParsePlacement(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParsePlacement("user"); err == nil || err.Error() != `instruction_placement "user": want auto, system or first_user` {
		t.Errorf("bad placement: %v", err)
	}
}

func msgs(pairs ...string) []chat.Message {
	out := make([]chat.Message, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, chat.Message{Role: pairs[i], Content: pairs[i+1]})
	}
	return out
}

func TestDialogueFrom(t *testing.T) {
	cases := []struct {
		name    string
		in      []chat.Message
		p       Placement
		want    Dialogue
		wantErr string
	}{
		{"two turns", msgs("user", "u1", "assistant", "a1", "user", "u2", "assistant", "a2"), PlaceSystem,
			Dialogue{SourceRow: 7, Users: []string{"u1", "u2"}}, ""},
		{"ends on a user turn", msgs("user", "u1", "assistant", "a1", "user", "u2"), PlaceSystem,
			Dialogue{SourceRow: 7, Users: []string{"u1", "u2"}}, ""},
		{"system kept", msgs("system", "S", "user", "u1", "assistant", "a1", "user", "u2"), PlaceSystem,
			Dialogue{SourceRow: 7, System: "S", Users: []string{"u1", "u2"}}, ""},
		{"system folded into u1", msgs("system", "S", "user", "u1", "assistant", "a1", "user", "u2"), PlaceFirstUser,
			Dialogue{SourceRow: 7, Users: []string{"S\n\nu1", "u2"}}, ""},
		{"one user turn", msgs("user", "u1", "assistant", "a1"), PlaceSystem, Dialogue{}, "row 7: 1 user turn(s): GAtt needs at least 2"},
		{"no user turn", msgs("system", "S"), PlaceSystem, Dialogue{}, "row 7: 0 user turn(s): GAtt needs at least 2"},
	}
	for _, tc := range cases {
		d, err := DialogueFrom(7, tc.in, tc.p)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(d, tc.want) {
			t.Errorf("%s: %+v %v, want %+v", tc.name, d, err, tc.want)
		}
	}
}

func TestSamplingPrompt(t *testing.T) {
	d := Dialogue{Users: []string{"u1", "u2", "u3"}}
	got := d.SamplingPrompt("Figure: Napoleon.", []string{"r1", "r2"})
	want := msgs("user", "u1\n\nFigure: Napoleon.", "assistant", "r1", "user", "u2\n\nFigure: Napoleon.", "assistant", "r2", "user", "u3\n\nFigure: Napoleon.")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	d.System = "S"
	if got := d.SamplingPrompt("I.", nil); !reflect.DeepEqual(got, msgs("system", "S", "user", "u1\n\nI.")) {
		t.Errorf("with system: %q", got)
	}
}

// checkInstructionFirstOnly asserts that the instruction text occurs exactly once in a sample, in
// its first message, and that the user turns after the first are the source's own.
func checkInstructionFirstOnly(t *testing.T, r Row, users []string) {
	t.Helper()
	n := 0
	for i, m := range r.Messages {
		if c := strings.Count(m.Content, r.Instruction); c > 0 {
			n += c
			if i != 0 {
				t.Errorf("instruction in message %d (%s): %q", i, m.Role, m.Content)
			}
		}
	}
	if n != 1 {
		t.Errorf("instruction %q occurs %d times, want once: %q", r.Instruction, n, r.Messages)
	}
	u := 0
	for _, m := range r.Messages {
		if m.Role == "user" {
			if u > 0 && m.Content != users[u] {
				t.Errorf("user turn %d = %q, want the source's %q", u+1, m.Content, users[u])
			}
			u++
		}
	}
}

func TestBuildRows(t *testing.T) {
	d := Dialogue{SourceRow: 3, Users: []string{"u1", "u2", "u3"}}
	inst := NewInstruction([]Constraint{{Figure, "Napoleon"}, {Language, "French"}}, true)
	replies := []string{"r1", "r2", "r3"}
	const text = "Figure: Napoleon. Language: French."
	cases := []struct {
		p    Placement
		mode SampleMode
		want []Row
	}{
		{PlaceSystem, SamplesLastTurn, []Row{
			{Messages: msgs("system", text, "user", "u1", "assistant", "r1", "user", "u2", "assistant", "r2", "user", "u3", "assistant", "r3"), TrainedTurn: 6},
		}},
		{PlaceFirstUser, SamplesLastTurn, []Row{
			{Messages: msgs("user", "u1\n\n"+text, "assistant", "r1", "user", "u2", "assistant", "r2", "user", "u3", "assistant", "r3"), TrainedTurn: 5},
		}},
		{PlaceSystem, SamplesEveryTurn, []Row{
			{Messages: msgs("system", text, "user", "u1", "assistant", "r1"), TrainedTurn: 2},
			{Messages: msgs("system", text, "user", "u1", "assistant", "r1", "user", "u2", "assistant", "r2"), TrainedTurn: 4},
			{Messages: msgs("system", text, "user", "u1", "assistant", "r1", "user", "u2", "assistant", "r2", "user", "u3", "assistant", "r3"), TrainedTurn: 6},
		}},
		{PlaceFirstUser, SamplesEveryTurn, []Row{
			{Messages: msgs("user", "u1\n\n"+text, "assistant", "r1"), TrainedTurn: 1},
			{Messages: msgs("user", "u1\n\n"+text, "assistant", "r1", "user", "u2", "assistant", "r2"), TrainedTurn: 3},
			{Messages: msgs("user", "u1\n\n"+text, "assistant", "r1", "user", "u2", "assistant", "r2", "user", "u3", "assistant", "r3"), TrainedTurn: 5},
		}},
	}
	for _, tc := range cases {
		got, err := BuildRows(d, inst, tc.p, tc.mode, replies)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tc.want {
			tc.want[i].Instruction, tc.want[i].Terse, tc.want[i].SourceRow = text, true, 3
			tc.want[i].Constraints = []string{"Figure: Napoleon", "Language: French"}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %s:\n got %+v\nwant %+v", tc.p, tc.mode, got, tc.want)
		}
		for i, r := range got {
			checkInstructionFirstOnly(t, r, d.Users)
			if r.Messages[r.TrainedTurn].Role != "assistant" || r.Messages[r.TrainedTurn].Content != replies[min(i+len(replies)-len(got), 2)] {
				t.Errorf("%s %s row %d: trained turn %d is %+v", tc.p, tc.mode, i, r.TrainedTurn, r.Messages[r.TrainedTurn])
			}
		}
	}
	// A source system message stays first, the instruction after it, in the same first turn.
	ds := Dialogue{SourceRow: 1, System: "Be brief.", Users: []string{"u1", "u2"}}
	rows, _ := BuildRows(ds, inst, PlaceSystem, SamplesLastTurn, []string{"r1", "r2"})
	if rows[0].Messages[0] != (chat.Message{Role: "system", Content: "Be brief.\n\n" + text}) {
		t.Errorf("system: %+v", rows[0].Messages[0])
	}
	checkInstructionFirstOnly(t, rows[0], ds.Users)

	bad := []struct {
		p       Placement
		mode    SampleMode
		replies []string
		want    string
	}{
		{PlaceAuto, SamplesLastTurn, replies, `gatt rows: placement "auto": want system or first_user (resolve auto first)`},
		{PlaceSystem, SamplesLastTurn, nil, "gatt rows: row 3: 0 replies for 3 user turns"},
		{PlaceSystem, SamplesLastTurn, []string{"a", "b", "c", "d"}, "gatt rows: row 3: 4 replies for 3 user turns"},
		{PlaceSystem, "all", replies, `gatt rows: samples "all": want last_turn or every_turn`},
	}
	for _, b := range bad {
		if _, err := BuildRows(d, inst, b.p, b.mode, b.replies); err == nil || err.Error() != b.want {
			t.Errorf("error %v, want %q", err, b.want)
		}
	}
	if _, err := ParseSampleMode("all"); err == nil || err.Error() != `samples "all": want last_turn or every_turn` {
		t.Errorf("ParseSampleMode: %v", err)
	}
}

func TestParseConstraint(t *testing.T) {
	for _, c := range []Constraint{{Hobby, "Rock climbing"}, {Language, "French"}, {Figure, "Joan of Arc"}} {
		got, err := ParseConstraint(c.Terse())
		if err != nil || got != c {
			t.Errorf("%q: %+v %v", c.Terse(), got, err)
		}
	}
	for in, want := range map[string]string{
		"Napoleon":       `constraint "Napoleon": want Kind: value, e.g. "Figure: Napoleon"`,
		"Figure:  ":      `constraint "Figure:  ": want Kind: value, e.g. "Figure: Napoleon"`,
		"Mood: cheerful": `constraint "Mood: cheerful": kind "Mood": want Hobby, Language or Figure`,
	} {
		if _, err := ParseConstraint(in); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// TestInstructionDeterminism: an instruction depends only on (seed, row), so a fixed seed gives the
// same constraint combinations in any order and run, and about half of them are terse.
func TestInstructionDeterminism(t *testing.T) {
	lists := DefaultLists()
	const n = 400
	var a, b []Instruction
	for row := range n {
		x, err := InstructionFor(42, row, lists)
		if err != nil {
			t.Fatal(err)
		}
		a = append(a, x)
	}
	for row := n - 1; row >= 0; row-- { // the other order
		x, _ := InstructionFor(42, row, lists)
		b = append([]Instruction{x}, b...)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("seed 42 gave different instructions in another order")
	}
	other := 0
	terse := 0
	combos := map[string]bool{}
	for row := range n {
		x, _ := InstructionFor(7, row, lists)
		if !reflect.DeepEqual(x, a[row]) {
			other++
		}
		if a[row].UseTerse {
			terse++
		}
		combos[a[row].Verbose] = true
		seen := map[Kind]bool{}
		for _, c := range a[row].Constraints {
			if seen[c.Kind] {
				t.Errorf("row %d: two %s constraints: %+v", row, c.Kind, a[row].Constraints)
			}
			seen[c.Kind] = true
		}
	}
	if other < n/2 {
		t.Errorf("seed 7 repeats seed 42 on %d of %d rows", n-other, n)
	}
	// Terse with probability 1/2: over 400 rows the count has mean 200 and sd 10; 160..240 is ±4 sd.
	if terse < 160 || terse > 240 {
		t.Errorf("%d of %d instructions terse, want about half", terse, n)
	}
	// A third of the draws have one constraint (49 possible values), so repeats are expected there;
	// two or three constraints almost never repeat.
	if len(combos) < n/2 {
		t.Errorf("only %d distinct instructions in %d rows", len(combos), n)
	}
	// Same (seed, row) through Sample directly: the documented generator.
	x, _ := Sample(rand.New(rand.NewPCG(42, 5)), lists)
	if !reflect.DeepEqual(x, a[5]) {
		t.Errorf("InstructionFor(42, 5) = %+v, Sample(PCG(42, 5)) = %+v", a[5], x)
	}
}

func TestResolveLists(t *testing.T) {
	def := DefaultLists()
	got, err := ResolveLists(Lists{}, false)
	if err != nil || !reflect.DeepEqual(got, def) {
		t.Errorf("nothing given: %+v %v", got, err)
	}
	got, _ = ResolveLists(Lists{Hobbies: []string{"Juggling"}}, false)
	if !reflect.DeepEqual(got.Hobbies, []string{"Juggling"}) || !reflect.DeepEqual(got.Figures, def.Figures) {
		t.Errorf("replace: %+v", got)
	}
	got, _ = ResolveLists(Lists{Hobbies: []string{"Juggling", "tennis"}}, true)
	if len(got.Hobbies) != len(def.Hobbies)+1 || got.Hobbies[len(got.Hobbies)-1] != "Juggling" {
		t.Errorf("extend: %+v", got.Hobbies)
	}
	for _, tc := range []struct {
		l    Lists
		want string
	}{
		{Lists{Hobbies: []string{}}, "constraints: gatt hobbies list is empty: cannot sample a hobby constraint"},
		{Lists{Languages: []string{}}, "constraints: gatt languages list is empty: cannot sample a language constraint"},
		{Lists{Figures: []string{"Napoleon", " "}}, "constraints: gatt figures[1] is blank: want a value"},
	} {
		if _, err := ResolveLists(tc.l, false); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.l, err, tc.want)
		}
	}
}
