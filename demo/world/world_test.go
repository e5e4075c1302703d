package world

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/gatt"
)

func newWorld(t *testing.T, cfg Config) *World {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDeterminism: the same config writes byte-identical datasets; another seed changes them.
func TestDeterminism(t *testing.T) {
	cfg := Quick()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	for i, d := range dirs {
		c := cfg
		if i == 2 {
			c.Seed++
		}
		if err := newWorld(t, c).WriteDatasets(d); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{FileSFT, FilePrefs, FileHeldOutPrefs, FilePrompts, FileHeldOutPrompts, FileSafetyPrefs, FileHeldOutSafetyPrefs,
		FileGAttSource, FileGAttEval, FileWorld}
	for _, name := range names {
		a, err := os.ReadFile(filepath.Join(dirs[0], name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dirs[1], name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := os.ReadFile(filepath.Join(dirs[2], name))
		if err != nil {
			t.Fatal(err)
		}
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: %d and %d bytes, not identical", name, len(a), len(b))
		}
		if bytes.Equal(a, c) {
			t.Errorf("%s: seed %d and %d wrote the same bytes", name, cfg.Seed, cfg.Seed+1)
		}
	}
	entries, err := os.ReadDir(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(names) {
		t.Errorf("wrote %d files, want %d (no temporary files left)", len(entries), len(names))
	}
	// Generators are pure: a second call gives the same data.
	w := newWorld(t, cfg)
	if a, b := w.SFT(), w.SFT(); !slices.EqualFunc(a, b, func(x, y Dialogue) bool { return slices.Equal(x, y) }) {
		t.Error("SFT differs between calls")
	}
}

// TestDatasetsLoadAsTRL: package data reads the files in the formats they claim.
// TestWriteDatasetsBadDir: a directory that cannot be created is an error naming the step.
func TestWriteDatasetsBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := newWorld(t, Quick()).WriteDatasets(filepath.Join(file, "data"))
	if err == nil || !strings.HasPrefix(err.Error(), "writing world datasets: ") {
		t.Fatalf("err = %v, want a writing world datasets error", err)
	}
}

func TestDatasetsLoadAsTRL(t *testing.T) {
	dir := t.TempDir()
	w := newWorld(t, Quick())
	if err := w.WriteDatasets(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file   string
		format data.Format
		n      int
	}{
		{FileSFT, data.FormatConversation, w.cfg.NumSFT + w.numSafety(w.cfg.NumSFT)},
		{FilePrefs, data.FormatPreference, w.cfg.NumPrefs},
		{FileHeldOutPrefs, data.FormatPreference, w.cfg.NumHeldOutPairs},
		{FileSafetyPrefs, data.FormatPreference, w.cfg.NumSafetyPairs},
		{FileHeldOutSafetyPrefs, data.FormatPreference, w.cfg.NumHeldOutSafetyPairs},
		{FileGAttSource, data.FormatConversation, w.cfg.NumGAtt},
	} {
		ds, err := data.Load(data.Source{Path: filepath.Join(dir, tc.file)})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if ds.Format != tc.format || ds.Len() != tc.n {
			t.Errorf("%s: format %s, %d rows; want %s, %d", tc.file, ds.Format, ds.Len(), tc.format, tc.n)
		}
		if tc.format == data.FormatPreference {
			p := ds.Pairs[0]
			if !p.Conversational || len(p.PromptMessages) != 1 || len(p.ChosenMessages) != 1 || p.ChosenMessages[0].Role != "assistant" {
				t.Errorf("%s: pair 0 %+v", tc.file, p)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.NumSFT = -1 }, "world config num_sft -1: want >= 0"},
		{func(c *Config) { c.WrongRate = 1.5 }, "world config wrong_rate 1.5: want a share in [0, 1]"},
		{func(c *Config) { c.NumSafetyPairs = -2 }, "world config num_safety_pairs -2: want >= 0"},
		{func(c *Config) { c.SafetyRate = -0.1 }, "world config safety_rate -0.1: want a share in [0, 1]"},
		{func(c *Config) { c.RefusalRate = math.NaN() }, "world config refusal_rate NaN: want a share in [0, 1]"},
		{func(c *Config) { c.HeldOutFrac = math.NaN() }, "world config heldout_frac NaN: want a share in [0, 1]"},
		{func(c *Config) { c.InstructedRate, c.MultiTurnRate = 0.6, 0.6 }, "world config instructed_rate 0.6 + multi_turn_rate 0.6: want at most 1"},
		{func(c *Config) { c.EvalTurns = 0 }, "world config eval_turns 0: want >= 1"},
		{func(c *Config) { c.MaxTurns = 1 }, "world config max_turns 1: want >= 2 for multi-turn dialogues"},
		{func(c *Config) { c.MaxGAttTurns = 1 }, "world config max_gatt_turns 1: want >= 2"},
		{func(c *Config) { c.HeldOutFrac = 0 }, "world config heldout_frac 0: held-out prompts and pairs need held-out questions"},
		{func(c *Config) { c.HeldOutFrac = 1 }, "world config heldout_frac 1: training data needs training questions"},
	} {
		c := Quick()
		tc.edit(&c)
		if _, err := New(c); err == nil || err.Error() != tc.want {
			t.Errorf("New: error %v, want %q", err, tc.want)
		}
	}
	for _, c := range []Config{Default(), Quick()} {
		if err := c.Validate(); err != nil {
			t.Errorf("preset: %v", err)
		}
	}
	if _, err := newWorld(t, Quick()).Prompts("test"); err == nil || err.Error() != `split "test": want train or heldout` {
		t.Errorf("Prompts(test): %v", err)
	}
}

// sftReplies walks the SFT dialogues: each reply with its prompt (the dialogue up to it), its
// question and its grade under the constraints Governing finds.
func sftReplies(t *testing.T, w *World, f func(prompt []Message, q Query, reply string, g Grade)) {
	t.Helper()
	for i, d := range w.SFT() {
		msgs := []Message(d)
		if len(msgs) > 0 && msgs[0].Role == "system" {
			if _, ok := ParseInstruction(msgs[0].Content); !ok {
				t.Fatalf("dialogue %d: system message %q is not an instruction", i, msgs[0].Content)
			}
			msgs = msgs[1:]
		}
		if len(msgs)%2 != 0 || len(msgs) == 0 {
			t.Fatalf("dialogue %d has %d messages", i, len(d))
		}
		for j := 0; j < len(msgs); j += 2 {
			if msgs[j].Role != "user" || msgs[j+1].Role != "assistant" {
				t.Fatalf("dialogue %d message %d: roles %s, %s", i, j, msgs[j].Role, msgs[j+1].Role)
			}
			prompt := d[:len(d)-len(msgs)+j+1]
			_, question, err := Governing(prompt)
			if err != nil {
				t.Fatal(err)
			}
			q, ok := ParseQuestion(question)
			if !ok {
				t.Fatalf("dialogue %d message %d: %q is not a world question", i, j, msgs[j].Content)
			}
			g, err := GradePrompt(prompt, msgs[j+1].Content)
			if err != nil {
				t.Fatal(err)
			}
			f(prompt, q, msgs[j+1].Content, g)
		}
	}
}

// TestWrongShare: exactly round(WrongRate*n) of the n knowledge replies are wrong, all of them
// plausibly (off by one or two, or a wrong colour) and in the form their instruction asks; every
// other reply is correct and compliant.
func TestWrongShare(t *testing.T) {
	for _, rate := range []float64{0, 0.35, 1} {
		cfg := Quick()
		cfg.WrongRate = rate
		w := newWorld(t, cfg)
		n, wrong := 0, 0
		sftReplies(t, w, func(_ []Message, q Query, reply string, g Grade) {
			if q.Task == TaskHarm {
				return // TestSafetySFT
			}
			if !q.Task.Knowledge() {
				if g.Level != LevelCorrect {
					t.Errorf("%s reply %q graded %+v", q.Task, reply, g)
				}
				return
			}
			n++
			if !g.Compliant {
				t.Errorf("reply %q to %q is not compliant: %s", reply, q.Text(), g.Detail)
			}
			switch {
			case g.Level == LevelCorrect:
			case (q.Task == TaskPlus || q.Task == TaskMinus) && (g.Level == LevelNegligible || g.Level == LevelSlight),
				q.Task == TaskColour && g.Level == LevelBetter:
				wrong++
			default:
				t.Errorf("implausibly wrong reply %q to %q: %+v", reply, q.Text(), g)
			}
		})
		if want := int(math.Round(rate * float64(n))); wrong != want || n < cfg.NumSFT/2 {
			t.Errorf("wrong rate %v: %d of %d knowledge replies wrong, want %d", rate, wrong, n, want)
		}
	}
}

// TestSFTInstructionsGovernOwnReply: an instruction (appended to a user message, or in a system
// message before the first) changes only the reply to its own message; multi-turn dialogues have
// 2..MaxTurns turns, and some later turns ask about turn 1's persona or hobby and get the default
// answer, which is what the pre-GAtt model learns.
func TestSFTInstructionsGovernOwnReply(t *testing.T) {
	w := newWorld(t, Quick())
	multi, forgotten, opened, system := 0, 0, 0, 0
	for i, d := range w.SFT() {
		msgs := []Message(d)
		var first gatt.Instruction
		if msgs[0].Role == "system" {
			first, _ = ParseInstruction(msgs[0].Content)
			msgs = msgs[1:]
			system++
		} else {
			first, _, _ = ParseInstructed(msgs[0].Content)
		}
		if len(first.Constraints) > 0 {
			opened++
		}
		turns := len(msgs) / 2
		if turns > w.cfg.MaxTurns {
			t.Fatalf("dialogue %d has %d turns", i, turns)
		}
		if turns > 1 {
			multi++
		}
		for j := 2; j < len(msgs); j += 2 {
			if _, _, own := ParseInstructed(msgs[j].Content); own {
				continue
			}
			q, ok := ParseQuestion(msgs[j].Content)
			if !ok {
				t.Fatalf("dialogue %d turn %d: %q", i, j/2, msgs[j].Content)
			}
			// The reply is the unconstrained answer, up to SFT's noise in knowledge replies.
			if g, _ := GradeAnswer(nil, msgs[j].Content, msgs[j+1].Content); !g.Compliant {
				t.Fatalf("dialogue %d turn %d: reply %q keeps an instruction: %s", i, j/2, msgs[j+1].Content, g.Detail)
			}
			if slices.Contains(referring(first), q.Task) {
				forgotten++
			}
		}
	}
	frac := float64(multi) / float64(w.cfg.NumSFT)
	if math.Abs(frac-w.cfg.MultiTurnRate) > 0.06 {
		t.Errorf("%d of %d dialogues are multi-turn, want about %v", multi, w.cfg.NumSFT, w.cfg.MultiTurnRate)
	}
	if forgotten < 20 || opened < w.cfg.NumSFT/4 {
		t.Errorf("%d later turns ask about turn 1's persona or hobby, %d dialogues open with an instruction", forgotten, opened)
	}
	if share := float64(system) / float64(opened); math.Abs(share-w.cfg.SystemRate) > 0.1 {
		t.Errorf("%d of %d opening instructions in a system message, want a share of %v", system, opened, w.cfg.SystemRate)
	}
}

// TestPairs: the chosen answer is always correct and compliant, the rejected one has exactly the
// pair's level, all four ratings occur, and the prompts come from the right split.
func TestPairs(t *testing.T) {
	w := newWorld(t, Default())
	heldQs, err := w.Questions(SplitHeldOut)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, q := range heldQs {
		held[q] = true
	}
	for _, set := range []struct {
		name  string
		pairs []Pair
		held  bool
		n     int
	}{
		{"train", w.Preferences(), false, w.cfg.NumPrefs},
		{"heldout", w.HeldOutPairs(), true, w.cfg.NumHeldOutPairs},
	} {
		if len(set.pairs) != set.n {
			t.Fatalf("%s: %d pairs, want %d", set.name, len(set.pairs), set.n)
		}
		ratings := map[string]int{}
		instructed := 0
		for i, p := range set.pairs {
			cs, question, err := Governing(p.Prompt)
			if err != nil || len(p.Prompt) > 2 || (len(p.Prompt) == 2 && p.Prompt[0].Role != "system") {
				t.Fatalf("%s pair %d: prompt %+v: %v", set.name, i, p.Prompt, err)
			}
			if len(cs) > 0 {
				instructed++
			}
			user := p.Prompt[len(p.Prompt)-1].Content
			if held[question] != set.held {
				t.Errorf("%s pair %d: question %q held out %v", set.name, i, question, held[question])
			}
			gc, err := GradePrompt(p.Prompt, p.Chosen)
			if err != nil {
				t.Fatal(err)
			}
			gr, _ := GradePrompt(p.Prompt, p.Rejected)
			if gc.Level != LevelCorrect {
				t.Errorf("%s pair %d: chosen %q to %q graded %+v", set.name, i, p.Chosen, user, gc)
			}
			if gr.Level != p.Level || p.Level == LevelCorrect || p.Rating != Rating(p.Level) {
				t.Errorf("%s pair %d: rejected %q to %q graded %+v, pair level %d rating %q", set.name, i, p.Rejected, user, gr, p.Level, p.Rating)
			}
			if len(p.Prompt) == 1 {
				if c, _ := Correct(user, p.Rejected); c {
					t.Errorf("%s pair %d: rejected %q is correct", set.name, i, p.Rejected)
				}
			}
			ratings[p.Rating]++
		}
		for level := LevelNegligible; level <= LevelSignificant; level++ {
			if ratings[Rating(level)] < set.n/10 {
				t.Errorf("%s: rating %q in %d of %d pairs", set.name, Rating(level), ratings[Rating(level)], set.n)
			}
		}
		if frac := float64(instructed) / float64(set.n); math.Abs(frac-w.cfg.PromptInstructedRate) > 0.07 {
			t.Errorf("%s: %d of %d prompts instructed", set.name, instructed, set.n)
		}
	}
}

// TestSplits: the held-out question strings are disjoint from the training ones, every training
// dataset uses training questions only, and held-out prompts held-out ones.
func TestSplits(t *testing.T) {
	w := newWorld(t, Quick())
	trainQs, _ := w.Questions(SplitTrain)
	heldQs, _ := w.Questions(SplitHeldOut)
	train := map[string]bool{}
	for _, q := range trainQs {
		train[q] = true
	}
	for _, q := range heldQs {
		if train[q] {
			t.Fatalf("%q is in both splits", q)
		}
	}
	if n := len(trainQs) + len(heldQs); n != len(questionIndex) {
		t.Errorf("splits hold %d questions, the world %d", n, len(questionIndex))
	}
	if frac := float64(len(heldQs)) / float64(len(questionIndex)); math.Abs(frac-w.cfg.HeldOutFrac) > 0.02 {
		t.Errorf("%d of %d questions held out", len(heldQs), len(questionIndex))
	}
	isTrain := func(user string) bool {
		_, q, _ := ParseInstructed(user)
		return train[q]
	}
	for i, d := range w.SFT() {
		for _, m := range d {
			if m.Role == "user" && !isTrain(m.Content) {
				t.Fatalf("SFT dialogue %d uses %q", i, m.Content)
			}
		}
	}
	for _, d := range w.GAttSource() {
		for j := 0; j < len(d.Messages); j += 2 {
			if !isTrain(d.Messages[j].Content) {
				t.Fatalf("GAtt source uses %q", d.Messages[j].Content)
			}
		}
	}
	for _, split := range []string{SplitTrain, SplitHeldOut} {
		ps, err := w.Prompts(split)
		if err != nil {
			t.Fatal(err)
		}
		want := w.cfg.NumPrompts
		if split == SplitHeldOut {
			want = w.cfg.NumHeldOutPrompts
		}
		want += w.numSafety(want)
		if len(ps) != want {
			t.Errorf("%s: %d prompts, want %d", split, len(ps), want)
		}
		for _, p := range ps {
			_, q, err := Governing(p)
			if err != nil || train[q] != (split == SplitTrain) {
				t.Fatalf("%s prompt %+v: %v", split, p, err)
			}
			if _, err := GradePrompt(p, "x."); err != nil {
				t.Fatalf("%s prompt %+v is not checkable: %v", split, p, err)
			}
		}
	}
}

// TestGAttSource: plain multi-turn dialogues (no instruction anywhere) with correct replies, and
// an instruction from Lists for each.
func TestGAttSource(t *testing.T) {
	w := newWorld(t, Quick())
	ds := w.GAttSource()
	if len(ds) != w.cfg.NumGAtt {
		t.Fatalf("%d dialogues, want %d", len(ds), w.cfg.NumGAtt)
	}
	refer := 0
	for i, d := range ds {
		if n := len(d.Messages) / 2; len(d.Messages)%2 != 0 || n < 2 || n > w.cfg.MaxGAttTurns {
			t.Fatalf("dialogue %d has %d messages", i, len(d.Messages))
		}
		if _, err := styleOf(d.Instruction.Constraints); err != nil || len(d.Instruction.Constraints) == 0 {
			t.Fatalf("dialogue %d instruction %+v: %v", i, d.Instruction, err)
		}
		for j := 0; j < len(d.Messages); j += 2 {
			u, a := d.Messages[j], d.Messages[j+1]
			if _, _, ok := ParseInstructed(u.Content); ok || u.Role != "user" || a.Role != "assistant" {
				t.Fatalf("dialogue %d message %d: %+v", i, j, u)
			}
			if ok, _ := Correct(u.Content, a.Content); !ok {
				t.Fatalf("dialogue %d: %q -> %q", i, u.Content, a.Content)
			}
			q, _ := ParseQuestion(u.Content)
			if slices.Contains(referring(d.Instruction), q.Task) {
				refer++
			}
		}
	}
	if refer < len(ds) {
		t.Errorf("only %d turns ask about their dialogue's persona or hobby", refer)
	}
}

// TestGAttEval: the instruction is in the first user message only; every turn is checked against
// the instruction's language and figure, hobby questions against its hobby; every figure and hobby
// is asked about; the reference answers pass all checks, and the answers of a model that forgot
// the instruction (plain English, no persona) fail at least one check per turn.
func TestGAttEval(t *testing.T) {
	cfg := Default()
	w := newWorld(t, cfg)
	ds := w.GAttEval()
	if len(ds) != cfg.NumGAttEval {
		t.Fatalf("%d dialogues, want %d", len(ds), cfg.NumGAttEval)
	}
	checkers := []gatt.Checker{NewChecker()}
	sentences := instructionTexts()
	trainQs, err := w.Questions(SplitTrain)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		for k, turn := range d.Turns {
			// Only training phrasings: the evaluation measures persistence, not generalisation.
			if !slices.Contains(trainQs, turn.Question) {
				t.Fatalf("dialogue %d turn %d: %q is not a training question", i, k, turn.Question)
			}
		}
		if len(d.Turns) != cfg.EvalTurns {
			t.Fatalf("dialogue %d has %d turns", i, len(d.Turns))
		}
		asked := map[gatt.Kind]bool{}
		for k, turn := range d.Turns {
			inst, rest, ok := ParseInstructed(turn.User)
			if k == 0 {
				if !ok || !slices.Equal(inst.Constraints, d.Instruction.Constraints) || rest != turn.Question {
					t.Fatalf("dialogue %d: first message %q, instruction %q", i, turn.User, d.Instruction.Text())
				}
			} else {
				if ok || turn.User != turn.Question {
					t.Fatalf("dialogue %d turn %d: %q carries an instruction", i, k, turn.User)
				}
				for _, s := range sentences {
					if strings.Contains(turn.User, s) {
						t.Fatalf("dialogue %d turn %d: %q contains %q", i, k, turn.User, s)
					}
				}
			}
			q, ok := ParseQuestion(turn.Question)
			if !ok {
				t.Fatalf("dialogue %d turn %d: %q", i, k, turn.Question)
			}
			var want []gatt.Constraint
			for _, c := range d.Instruction.Constraints {
				if c.Kind != gatt.Hobby || q.Task == TaskHobby {
					want = append(want, c)
				}
			}
			if !slices.Equal(turn.Checks, want) {
				t.Fatalf("dialogue %d turn %d: checks %v, want %v", i, k, turn.Checks, want)
			}
			if k > 0 && q.Task == TaskName {
				asked[gatt.Figure] = true
			}
			if k > 0 && q.Task == TaskHobby {
				asked[gatt.Hobby] = true
			}
			vs, err := gatt.CheckAnswer(t.Context(), checkers, turn.Checks, turn.Question, turn.Want)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vs {
				if !v.Pass {
					t.Fatalf("dialogue %d turn %d: reference %q fails %+v", i, k, turn.Want, v)
				}
			}
			plain, _ := Reference(nil, turn.Question)
			vs, _ = gatt.CheckAnswer(t.Context(), checkers, turn.Checks, turn.Question, plain)
			failed := false
			for _, v := range vs {
				failed = failed || !v.Pass
			}
			if len(turn.Checks) > 0 && !failed {
				t.Fatalf("dialogue %d turn %d: the unconstrained answer %q passes %v", i, k, plain, turn.Checks)
			}
		}
		for _, c := range d.Instruction.Constraints {
			if c.Kind != gatt.Language && !asked[c.Kind] {
				t.Errorf("dialogue %d never asks about its %s %q after turn 1", i, c.Kind, c.Value)
			}
		}
	}
}

// instructionTexts are gatt's renderings of every constraint the world knows.
func instructionTexts() []string {
	var out []string
	for _, k := range []gatt.Kind{gatt.Figure, gatt.Language, gatt.Hobby} {
		for _, v := range values(k) {
			c := gatt.Constraint{Kind: k, Value: v}
			out = append(out, c.Verbose()+".", c.Terse()+".")
		}
	}
	return out
}

// TestMisconceptions: MisconceptionFrac of the facts are misconceived; their SFT replies are wrong
// in MisconceptionRate of cases, always with the same wrong value, so the demonstrations' majority
// answer to them is wrong, while the other facts' majority answer is right. Preference pairs about
// them still prefer the correct answer (TestPairs).
func TestMisconceptions(t *testing.T) {
	cfg := Default()
	w := newWorld(t, cfg)
	facts := 0
	for _, task := range []Task{TaskPlus, TaskMinus, TaskColour} {
		for _, q := range allQueries()[task] {
			if q.Form == 0 {
				facts++
			}
		}
	}
	if want := int(math.Round(cfg.MisconceptionFrac * float64(facts))); len(w.misconceptions) != want {
		t.Fatalf("%d misconceived facts, want %d of %d", len(w.misconceptions), want, facts)
	}
	type tally struct {
		right  int
		wrong  map[int]int // wrong value (result or colour) -> count
		misled bool
	}
	tallies := map[fact]*tally{}
	misRight, misWrong := 0, 0
	sftReplies(t, w, func(_ []Message, q Query, reply string, g Grade) {
		if !q.Task.Knowledge() {
			return
		}
		f := factOf(q)
		tl := tallies[f]
		if tl == nil {
			tl = &tally{wrong: map[int]int{}}
			tl.misled = w.Misconceived(q.Text())
			tallies[f] = tl
		}
		if g.Level == LevelCorrect {
			tl.right++
			if tl.misled {
				misRight++
			}
			return
		}
		s, _ := parseAnswer(reply)
		v := s.r
		if q.Task == TaskColour {
			v = s.colour
		}
		tl.wrong[v]++
		if tl.misled {
			misWrong++
		}
	})
	if share := float64(misWrong) / float64(misRight+misWrong); math.Abs(share-cfg.MisconceptionRate) > 0.01 {
		t.Errorf("misconceived facts: %d wrong, %d right replies, want a share of %v wrong", misWrong, misRight, cfg.MisconceptionRate)
	}
	majorityWrong := [2]int{} // [other, misconceived] facts seen 5+ times whose majority reply is wrong
	counted := [2]int{}
	for f, tl := range tallies {
		nWrong := 0
		for _, n := range tl.wrong {
			nWrong += n
		}
		k := 0
		if tl.misled {
			k = 1
			if len(tl.wrong) > 1 {
				t.Errorf("misconceived fact %+v has %d different wrong answers", f, len(tl.wrong))
			}
		}
		if tl.right+nWrong >= 5 {
			counted[k]++
			if nWrong > tl.right {
				majorityWrong[k]++
			}
		}
	}
	if counted[1] < 10 || float64(majorityWrong[1]) < 0.8*float64(counted[1]) {
		t.Errorf("majority wrong on %d of %d misconceived facts", majorityWrong[1], counted[1])
	}
	if majorityWrong[0] > counted[0]/20 {
		t.Errorf("majority wrong on %d of %d other facts", majorityWrong[0], counted[0])
	}
	if w.Misconceived("who are you?") || w.Misconceived("hello") {
		t.Error("a non-knowledge question is misconceived")
	}
}
