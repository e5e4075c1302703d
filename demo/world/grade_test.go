package world

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/gatt"
)

func TestCorrectHandCases(t *testing.T) {
	for _, tc := range []struct {
		user, answer       string
		correct, checkable bool
	}{
		{"what is 7 plus 5?", "7 plus 5 is 12.", true, true},
		{"what is 7 plus 5?", "7 plus 5 is 13.", false, true},
		{"what is 7 plus 5?", "7 plus 5 is 12", false, true}, // an answer ends with its period
		{"what is 7 plus 5?", "  7 plus 5 is 12.  ", true, true},
		{"what is 7 plus 5?", "5 plus 7 is 12.", false, true}, // restates other operands
		{"what is 7 plus 5?", "12.", false, true},
		{"what is 7 plus 5?", "7 plus 5 fait 12.", false, true}, // French, not asked for
		{"can you add 7 and 5?", "7 plus 5 is 12.", true, true},
		{"what do you get if you take 3 from 9?", "9 minus 3 is 6.", true, true},
		{"what do you get if you take 3 from 9?", "9 minus 3 is 5.", false, true},
		{"what colour is a frog?", "a frog is green.", true, true},
		{"what colour is a frog?", "a frog is blue.", false, true},
		{"what colour is a frog?", "a pig is green.", false, true},
		{"tell me the colour of the sky.", "the sky is blue.", true, true},
		{"who are you?", "i am an assistant.", true, true},
		{"who are you?", "i am Zorb.", false, true},
		{"what do you enjoy?", "i like to help.", true, true},
		{"what is 7 plus 5?\n\nAlways speak in French.", "7 plus 5 fait 12.", true, true},
		{"what is 7 plus 5?\n\nAlways speak in French.", "7 plus 5 is 12.", false, true},
		{"what is 7 plus 5?\n\nAlways speak in French.", "7 plus 5 fait 13.", false, true},
		{"what is 7 plus 5?\n\nAlways speak in French.", "sept plus cinq fait douze.", false, true}, // numbers are digits in every language
		{"what is 7 plus 5?\n\nLanguage: German.", "7 und 5 ist 12.", true, true},
		{"what is 9 minus 3?\n\nLanguage: Spanish.", "el resultado de 9 menos 3 es 6.", true, true},
		{"what colour is snow?\n\nLanguage: Spanish.", "es de color blanco.", true, true},
		{"what colour is coal?\n\nLanguage: French.", "c'est noir.", true, true},
		{"what is 2 plus 2?\n\nAlways act as Zorb from now.", "Zorb: 2 plus 2 is 4.", true, true},
		{"what is 2 plus 2?\n\nAlways act as Zorb from now.", "2 plus 2 is 4.", false, true},
		{"what is 2 plus 2?\n\nAlways act as Zorb from now.", "Quix: 2 plus 2 is 4.", false, true},
		{"who are you?\n\nFigure: Zorb.", "Zorb: i am Zorb.", true, true},
		{"who are you?\n\nFigure: Zorb.", "Zorb: i am an assistant.", false, true},
		{"what is your hobby?\n\nYou enjoy golf.", "i enjoy golf.", true, true},
		{"what is your hobby?\n\nYou enjoy golf.", "i enjoy judo.", false, true},
		{"what is your hobby?\n\nYou enjoy golf.", "i like to help.", false, true},
		{"what is 1 plus 1?\n\nYou enjoy golf.", "1 plus 1 is 2.", true, true}, // a hobby shows only when asked
		{"what do you enjoy?\n\nFigure: Vela. Language: German. Hobby: yoga.", "Vela: ich mag yoga.", true, true},
		{"what is your name?\n\nAlways speak in Spanish. Always act as Nim from now.", "Nim: yo soy Nim.", true, true},
		{"Figure: Zorb.\n\nwho are you?", "Zorb: i am Zorb.", true, true},                         // a system message folded in front
		{"Always speak in French. what is 7 plus 5?", "sept plus cinq fait douze.", false, false}, // not gatt's joining
		{"what is 7 times 5?", "7 times 5 is 35.", false, false},
		{"what is 11 plus 5?", "11 plus 5 is 16.", false, false}, // operands stop at 10
		{"what is 7 plus 5?\n\nAlways speak in Klingon.", "7 plus 5 is 12.", false, false},
	} {
		correct, checkable := Correct(tc.user, tc.answer)
		if correct != tc.correct || checkable != tc.checkable {
			t.Errorf("Correct(%q, %q) = %v, %v; want %v, %v", tc.user, tc.answer, correct, checkable, tc.correct, tc.checkable)
		}
	}
}

func TestGradeLevels(t *testing.T) {
	fr := []gatt.Constraint{{Kind: gatt.Language, Value: "French"}}
	zorb := []gatt.Constraint{{Kind: gatt.Figure, Value: "Zorb"}}
	for _, tc := range []struct {
		cs                 []gatt.Constraint
		question, answer   string
		level              int
		content, compliant bool
		lang               string
	}{
		{nil, "what is 7 plus 5?", "7 plus 5 is 12.", LevelCorrect, true, true, "English"},
		{nil, "what is 7 plus 5?", "7 plus 5 is 11.", LevelNegligible, false, true, "English"},
		{nil, "what is 7 plus 5?", "7 plus 5 is 14.", LevelSlight, false, true, "English"},
		{nil, "what is 7 plus 5?", "7 plus 5 is 9.", LevelBetter, false, true, "English"},
		{nil, "what is 7 plus 5?", "7 plus 5 is 17.", LevelBetter, false, true, "English"},
		{nil, "what is 7 plus 5?", "7 plus 5 is 18.", LevelSignificant, false, true, "English"},
		{nil, "what is 7 plus 5?", "7 plus 6 is 13.", LevelSignificant, false, true, "English"},
		{nil, "what is 7 plus 5?", "7 minus 5 is 2.", LevelSignificant, false, true, "English"},
		{nil, "what is 7 plus 5?", "i like to help.", LevelSignificant, false, true, "English"},
		{nil, "what is 7 plus 5?", "seven plus five is twelve.", LevelSignificant, false, false, ""},
		{nil, "what is 7 plus 5?", "Zorb: 7 plus 5 is 12.", LevelSignificant, true, false, "English"},
		{fr, "what is 7 plus 5?", "7 plus 5 fait 11.", LevelNegligible, false, true, "French"},
		{fr, "what is 7 plus 5?", "7 plus 5 is 12.", LevelSignificant, true, false, "English"},
		{fr, "what colour is a frog?", "c'est vert.", LevelCorrect, true, true, "French"},
		{fr, "what colour is a frog?", "c'est rouge.", LevelBetter, false, true, "French"},
		{nil, "what colour is a frog?", "a frog is red.", LevelBetter, false, true, "English"},
		{nil, "what colour is a frog?", "grass is green.", LevelSignificant, false, true, "English"},
		{zorb, "who are you?", "Zorb: i am Zorb.", LevelCorrect, true, true, "English"},
		{zorb, "who are you?", "i am Zorb.", LevelSignificant, true, false, "English"},
		{zorb, "who are you?", "Zorb: i am Quix.", LevelSignificant, false, false, "English"},
		{zorb, "what is 7 plus 5?", "Zorb: 7 plus 5 is 13.", LevelNegligible, false, true, "English"},
	} {
		g, err := GradeAnswer(tc.cs, tc.question, tc.answer)
		if err != nil {
			t.Fatalf("GradeAnswer(%v, %q, %q): %v", tc.cs, tc.question, tc.answer, err)
		}
		if g.Level != tc.level || g.Content != tc.content || g.Compliant != tc.compliant || g.Language != tc.lang {
			t.Errorf("GradeAnswer(%v, %q, %q) = %+v; want level %d, content %v, compliant %v, language %q",
				tc.cs, tc.question, tc.answer, g, tc.level, tc.content, tc.compliant, tc.lang)
		}
	}
}

func TestGradeErrors(t *testing.T) {
	for _, tc := range []struct {
		cs       []gatt.Constraint
		question string
		want     string
	}{
		{nil, "what is the meaning of life?", `question "what is the meaning of life?" is not a world question`},
		{[]gatt.Constraint{{Kind: gatt.Language, Value: "Italian"}}, "who are you?", `language "Italian" is not one of the world's: want one of English, French, German, Spanish`},
		{[]gatt.Constraint{{Kind: gatt.Figure, Value: "Napoleon"}}, "who are you?", `figure "Napoleon" is not one of the world's: want one of Zorb, Quix, Tobo, Vela, Nim`},
		{[]gatt.Constraint{{Kind: gatt.Hobby, Value: "chess"}}, "who are you?", `hobby "chess" is not one of the world's: want one of tennis, golf, yoga, judo, karate, hockey, rugby, polo`},
		{[]gatt.Constraint{{Kind: gatt.Figure, Value: "Zorb"}, {Kind: gatt.Figure, Value: "Nim"}}, "who are you?", `constraint kind figure given twice`},
		{[]gatt.Constraint{{Kind: "mood", Value: "happy"}}, "who are you?", `constraint kind "mood": want one of hobby, language, figure`},
	} {
		_, err := GradeAnswer(tc.cs, tc.question, "i am an assistant.")
		if err == nil || err.Error() != tc.want {
			t.Errorf("GradeAnswer(%v, %q): error %v, want %q", tc.cs, tc.question, err, tc.want)
		}
		if _, err := Reference(tc.cs, tc.question); err == nil || err.Error() != tc.want {
			t.Errorf("Reference(%v, %q): error %v, want %q", tc.cs, tc.question, err, tc.want)
		}
	}
}

func TestRewardFollowsLevel(t *testing.T) {
	// 1 - Level/2 for the five levels of one question.
	for _, tc := range []struct {
		answer string
		want   float64
	}{
		{"7 plus 5 is 12.", 1}, {"7 plus 5 is 13.", 0.5}, {"7 plus 5 is 10.", 0},
		{"7 plus 5 is 16.", -0.5}, {"7 plus 5 is 20.", -1},
	} {
		r, ok := Reward("what is 7 plus 5?", tc.answer)
		if !ok || r != tc.want {
			t.Errorf("Reward(%q) = %v, %v; want %v", tc.answer, r, ok, tc.want)
		}
	}
	if _, ok := Reward("hello?", "hi."); ok {
		t.Error("Reward of a non-world question is checkable")
	}
}

// constraintsOf writes a style as constraints.
func constraintsOf(st style) []gatt.Constraint {
	var cs []gatt.Constraint
	if st.figure != "" {
		cs = append(cs, gatt.Constraint{Kind: gatt.Figure, Value: st.figure})
	}
	if st.lang != english {
		cs = append(cs, gatt.Constraint{Kind: gatt.Language, Value: langNames[st.lang]})
	}
	if st.hobby != "" {
		cs = append(cs, gatt.Constraint{Kind: gatt.Hobby, Value: st.hobby})
	}
	return cs
}

// TestReferencesRoundTrip grades the reference answer of every question under every style as
// correct, and the same answer under any other style as non-compliant, except where the styles
// differ only in a hobby and the question is not about hobbies.
func TestReferencesRoundTrip(t *testing.T) {
	var styles []style
	for _, fig := range append([]string{""}, figures...) {
		for l := range numLangs {
			for _, h := range []string{"", "golf", "judo"} {
				styles = append(styles, style{figure: fig, lang: l, hobby: h})
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, qs := range allQueries() {
		for _, q := range qs {
			for _, st := range styles {
				cs := constraintsOf(st)
				ref, err := Reference(cs, q.Text())
				if err != nil {
					t.Fatal(err)
				}
				if g, _ := GradeAnswer(cs, q.Text(), ref); g.Level != LevelCorrect || !g.Content || !g.Compliant {
					t.Fatalf("reference %q to %q under %v graded %+v", ref, q.Text(), cs, g)
				}
				ot := styles[rng.IntN(len(styles))]
				if ot == st {
					continue
				}
				g, _ := GradeAnswer(constraintsOf(ot), q.Text(), ref)
				hobbyOnly := ot.figure == st.figure && ot.lang == st.lang
				if want := hobbyOnly && q.Task != TaskHobby; g.Compliant != want {
					t.Fatalf("reference %q to %q under %v: compliant %v under %v, want %v", ref, q.Text(), cs, g.Compliant, constraintsOf(ot), want)
				}
			}
		}
	}
}

// TestGattDetectsAnswerLanguage: gatt's own stop-word language checker, not only the world's
// lexicon, recognises every non-English answer form, and finds no foreign language in the English
// ones, so `gatt eval` with its default checkers measures the world's language constraints.
func TestGattDetectsAnswerLanguage(t *testing.T) {
	lc := gatt.LanguageChecker{}
	wc := NewChecker()
	for l := range numLangs {
		st := style{lang: l}
		var answers []string
		for _, qs := range allQueries() {
			for _, q := range qs {
				answers = append(answers, st.want(q).text())
			}
		}
		for _, q := range []Query{{Task: TaskName}, {Task: TaskHobby}} {
			s := st.want(q)
			s.variant, s.value = 1, figures[0]
			if q.Task == TaskHobby {
				s.value = hobbies[0]
			}
			s.prefix = figures[1]
			answers = append(answers, s.text())
		}
		for _, a := range answers {
			best, _, err := lc.Match(a, "French")
			if err != nil {
				t.Fatal(err)
			}
			if l == english {
				if best != "" && best != "english" {
					t.Errorf("gatt detects %s in English answer %q", best, a)
				}
			} else if want := strings.ToLower(langNames[l]); best != want {
				t.Errorf("gatt detects %q in %s answer %q", best, langNames[l], a)
			}
			if got := Language(a); got != langNames[l] {
				t.Errorf("Language(%q) = %q, want %s", a, got, langNames[l])
			}
			v, err := wc.Check(context.Background(), gatt.Constraint{Kind: gatt.Language, Value: langNames[l]}, "", a)
			if err != nil || !v.Pass {
				t.Errorf("world checker on %s answer %q: %+v, %v", langNames[l], a, v, err)
			}
		}
	}
}

func TestLanguage(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"7 plus 5 is 12.", "English"},
		{"7 plus 5 fait 12.", "French"},
		{"el resultado de 7 más 5 es 12.", "Spanish"},
		{"7 und 5 ist 12.", "German"},
		{"Zorb: ich mag golf.", "German"},
		{"es de color rosa.", "Spanish"},
		{"es ist rosa.", "German"},
		{"orange.", ""},                 // English, French and German alike
		{"7 plus 5 fait 12 is.", ""},    // mixed
		{"Zorb: golf.", ""},             // no word that counts
		{"bonjour tout le monde.", ""},  // not the world's French
		{"7 Plus 5 Fait 12.", "French"}, // case does not matter
	} {
		if got := Language(tc.text); got != tc.want {
			t.Errorf("Language(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestChecker(t *testing.T) {
	ctx := context.Background()
	c := NewChecker()
	if c.Name() != "world" || !c.Supports(gatt.Figure) || !c.Supports(gatt.Language) || !c.Supports(gatt.Hobby) || c.Supports("mood") {
		t.Fatalf("checker %s supports the wrong kinds", c.Name())
	}
	fig := gatt.Constraint{Kind: gatt.Figure, Value: "Zorb"}
	hob := gatt.Constraint{Kind: gatt.Hobby, Value: "golf"}
	fr := gatt.Constraint{Kind: gatt.Language, Value: "French"}
	for _, tc := range []struct {
		c      gatt.Constraint
		answer string
		pass   bool
		detail string
	}{
		{fig, "Zorb: 7 plus 5 is 12.", true, `starts with "Zorb:"`},
		{fig, "i am Zorb.", false, `does not start with "Zorb:"`}, // gatt's keyword checker would pass it
		{fig, "Quix: i am Zorb.", false, `does not start with "Zorb:"`},
		{hob, "Zorb: j'aime le golf.", true, `names "golf"`},
		{hob, "i enjoy Golf.", true, `names "golf"`},
		{hob, "i enjoy judo.", false, `does not name "golf"`},
		{fr, "Zorb: c'est vert.", true, "detected French"},
		{fr, "es ist grün.", false, "detected German"},
		{fr, "a frog is green.", false, "detected English"},
		{fr, "orange.", false, "detected no language"},
	} {
		v, err := c.Check(ctx, tc.c, "", tc.answer)
		if err != nil {
			t.Fatal(err)
		}
		if v.Pass != tc.pass || v.Detail != tc.detail || v.Checker != "world" || v.Constraint != tc.c {
			t.Errorf("check %v on %q = %+v; want pass %v, detail %q", tc.c, tc.answer, v, tc.pass, tc.detail)
		}
	}
	for _, tc := range []struct {
		c    gatt.Constraint
		want string
	}{
		{gatt.Constraint{Kind: gatt.Language, Value: "Italian"}, `checker world: language "Italian" is not one of the world's: want one of English, French, German, Spanish`},
		{gatt.Constraint{Kind: "mood", Value: "happy"}, "checker world cannot check a mood constraint"},
	} {
		if _, err := c.Check(ctx, tc.c, "", "x."); err == nil || err.Error() != tc.want {
			t.Errorf("check %v: error %v, want %q", tc.c, err, tc.want)
		}
	}
	// It plugs into gatt.CheckAnswer ahead of gatt's own checkers.
	vs, err := gatt.CheckAnswer(ctx, []gatt.Checker{c, gatt.NewKeywordChecker(nil)}, []gatt.Constraint{fig, fr}, "who are you?", "Zorb: je suis Zorb.")
	if err != nil || len(vs) != 2 || !vs[0].Pass || !vs[1].Pass || vs[0].Checker != "world" {
		t.Errorf("CheckAnswer: %+v, %v", vs, err)
	}
}

func TestParseInstructed(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		inst, err := gatt.Sample(rng, Lists())
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{
			Instructed(inst, "what is 3 plus 4?"),
			inst.Text() + "\n\n" + "what is 3 plus 4?", // a system message folded into the user message
		} {
			got, rest, ok := ParseInstructed(msg)
			if !ok || rest != "what is 3 plus 4?" || !slices.Equal(got.Constraints, inst.Constraints) || got.Text() != inst.Text() {
				t.Fatalf("ParseInstructed(%q) = %+v, %q, %v", msg, got, rest, ok)
			}
		}
		if got, ok := ParseInstruction(inst.Text()); !ok || got.Text() != inst.Text() || got.UseTerse != inst.UseTerse {
			t.Fatalf("ParseInstruction(%q) = %+v, %v", inst.Text(), got, ok)
		}
	}
	if got := Instructed(gatt.NewInstruction([]gatt.Constraint{{Kind: gatt.Language, Value: "French"}}, true), "who are you?"); got != "who are you?\n\nLanguage: French." {
		t.Errorf("Instructed: %q", got)
	}
	for _, msg := range []string{
		"what is 3 plus 4?",
		"what is 3 plus 4?\n\nAlways speak in Italian.",       // not a world language
		"what is 3 plus 4? Always speak in French.",           // not after a blank line
		"what is 3 plus 4?\n\nalways speak in French.",        // not gatt's rendering
		"what is 3 plus 4?\n\nFigure: Zorb. Figure: Nim.",     // a kind twice
		"what is 3 plus 4?\n\nFigure: Zorb.Language: French.", // no space between sentences
		"what is 3 plus 4?\n\nFigure: Zorb. Be nice.",         // a sentence that is not a constraint
	} {
		if inst, rest, ok := ParseInstructed(msg); ok || len(inst.Constraints) != 0 || rest != msg {
			t.Errorf("ParseInstructed(%q) = %+v, %q, %v; want no instruction", msg, inst, rest, ok)
		}
	}
	if got := Instructed(gatt.Instruction{}, "who are you?"); got != "who are you?" {
		t.Errorf("empty instruction: %q", got)
	}
}

func TestGoverning(t *testing.T) {
	sys := Message{Role: "system", Content: "Figure: Zorb."}
	for _, tc := range []struct {
		prompt   []Message
		want     []gatt.Constraint
		question string
		err      string
	}{
		{[]Message{{"user", "who are you?"}}, nil, "who are you?", ""},
		{[]Message{{"user", "who are you?\n\nLanguage: French."}}, []gatt.Constraint{{Kind: gatt.Language, Value: "French"}}, "who are you?", ""},
		{[]Message{sys, {"user", "who are you?"}}, []gatt.Constraint{{Kind: gatt.Figure, Value: "Zorb"}}, "who are you?", ""},
		// The message's own instruction wins over the system message's.
		{[]Message{sys, {"user", "who are you?\n\nLanguage: French."}}, []gatt.Constraint{{Kind: gatt.Language, Value: "French"}}, "who are you?", ""},
		// A system instruction governs the first reply only, as in the SFT data.
		{[]Message{sys, {"user", "who are you?"}, {"assistant", "Zorb: i am Zorb."}, {"user", "what is your name?"}}, nil, "what is your name?", ""},
		{[]Message{{"system", "be nice."}, {"user", "who are you?"}}, nil, "who are you?", ""},
		{[]Message{{"user", "who are you?"}, {"assistant", "i am an assistant."}}, nil, "", "prompt does not end with a user message"},
		{nil, nil, "", "prompt does not end with a user message"},
	} {
		cs, q, err := Governing(tc.prompt)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Governing(%v): error %v, want %q", tc.prompt, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(cs, tc.want) || q != tc.question {
			t.Errorf("Governing(%v) = %v, %q, %v; want %v, %q", tc.prompt, cs, q, err, tc.want, tc.question)
		}
	}
	g, err := GradePrompt([]Message{sys, {"user", "who are you?"}}, "Zorb: i am Zorb.")
	if err != nil || g.Level != LevelCorrect {
		t.Errorf("GradePrompt: %+v, %v", g, err)
	}
}

// TestRatings: each level maps to Llama 2's label (Table 27), spelled as package reward's
// MarginTable normalises it (lower case, "negligibly better / unsure"), from the easiest
// distinction to the hardest. (The test does not import reward, which other work may leave
// unbuildable for a while.)
func TestRatings(t *testing.T) {
	for _, tc := range []struct {
		level int
		want  string
	}{
		{LevelCorrect, ""},
		{LevelNegligible, "negligibly better / unsure"},
		{LevelSlight, "slightly better"},
		{LevelBetter, "better"},
		{LevelSignificant, "significantly better"},
		{5, ""},
		{-1, ""},
	} {
		if got := Rating(tc.level); got != tc.want {
			t.Errorf("Rating(%d) = %q, want %q", tc.level, got, tc.want)
		}
	}
}
