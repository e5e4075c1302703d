package gatt

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestNewCheckerErrors(t *testing.T) {
	cases := []struct {
		name string
		d    Deps
		want string
	}{
		{"foo", Deps{}, `unknown checker "foo": want one of judge, keyword, language, reward`},
		{"judge", Deps{}, "checker judge needs a Judge: none configured"},
		{"reward", Deps{}, "checker reward needs a Scorer: none configured"},
		{"reward", Deps{Scorer: fixedScore(1), Threshold: math.NaN()}, "checker reward threshold NaN: want a finite number"},
	}
	for _, tc := range cases {
		if _, err := NewChecker(tc.name, tc.d); err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, n := range []string{"keyword", "language"} {
		c, err := NewChecker(n, Deps{})
		if err != nil || c.Name() != n {
			t.Errorf("%s: %v %v", n, c, err)
		}
	}
}

func TestKeywordChecker(t *testing.T) {
	kc, err := NewChecker("keyword", Deps{Aliases: DefaultAliases()})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		c      Constraint
		answer string
		pass   bool
	}{
		{Constraint{Hobby, "Tennis"}, "I love playing tennis on weekends.", true},
		{Constraint{Hobby, "Tennis"}, "TENNIS!", true},
		{Constraint{Hobby, "Tennis"}, "(tennis)", true},
		{Constraint{Hobby, "Tennis"}, "I bought a tennisball.", false}, // not on a word boundary
		{Constraint{Hobby, "Tennis"}, "I enjoy golf and chess.", false},
		{Constraint{Hobby, "Rock climbing"}, "Rock\n  climbing, of course.", true}, // any white space between words
		{Constraint{Hobby, "Rock climbing"}, "I go climbing every Sunday.", true},  // alias
		{Constraint{Hobby, "Rock climbing"}, "I like rocks.", false},
		{Constraint{Figure, "Napoleon"}, "I am Napoleon, Emperor of the French.", true},
		{Constraint{Figure, "Napoleon"}, "Je suis Napoléon.", true}, // alias with an accent
		{Constraint{Figure, "Napoleon"}, "Call me Napoleonic.", false},
		{Constraint{Figure, "Albert Einstein"}, "My name is Einstein.", true}, // alias
		{Constraint{Figure, "Albert Einstein"}, "My name is Albert.", false},
		{Constraint{Figure, "Leonardo da Vinci"}, "I am Leonardo.", true},
		{Constraint{Figure, "Joan of Arc"}, "I am Joan of Arc.", true},
		{Constraint{Figure, "Joan of Arc"}, "I am Joan.", false},
		{Constraint{Figure, "C++ Guru"}, "Ask the c++ guru.", true}, // regexp metacharacters are literal
	}
	for _, tc := range cases {
		v, err := kc.Check(context.Background(), tc.c, "What is your name?", tc.answer)
		if err != nil {
			t.Fatal(err)
		}
		if v.Pass != tc.pass || v.Checker != "keyword" || v.Constraint != tc.c {
			t.Errorf("%q in %q: %+v, want pass=%v", tc.c.Value, tc.answer, v, tc.pass)
		}
	}
	if _, err := kc.Check(context.Background(), Constraint{Language, "French"}, "", "x"); err == nil || err.Error() != "checker keyword cannot check a language constraint" {
		t.Errorf("error %v", err)
	}
	// Without aliases only the full value counts.
	plain := NewKeywordChecker(nil)
	if v, _ := plain.Check(context.Background(), Constraint{Figure, "Albert Einstein"}, "", "I am Einstein."); v.Pass {
		t.Error("alias used without aliases")
	}
}

// Hand-written answers, several per language, each from a plausible assistant reply.
var languageSamples = map[string][]string{
	"english": {
		"My favorite hobby is tennis. I play it with my friends every weekend, and it keeps me fit.",
		"I am Napoleon, and I will tell you about the battles that I have won.",
		"You should drink more water and go to bed at the same time every night.",
	},
	"french": {
		"Je suis Napoléon, empereur des Français. C'est un honneur de vous parler.",
		"Mon passe-temps préféré est le tennis : j'y joue avec mes amis tous les week-ends.",
		"Le ciel est bleu parce que la lumière du soleil est diffusée par l'air.",
	},
	"german": {
		"Ich bin Napoleon, und ich spreche gern über meine Feldzüge.",
		"Mein liebstes Hobby ist Tennis. Ich spiele es jedes Wochenende mit meinen Freunden.",
		"Der Himmel ist blau, weil das Sonnenlicht in der Luft gestreut wird.",
	},
	"spanish": {
		"Soy Napoleón y me gusta hablar de mis batallas con los soldados.",
		"Mi pasatiempo favorito es el tenis. Lo juego con mis amigos todos los fines de semana.",
		"El cielo es azul porque la luz del sol se dispersa en el aire.",
	},
	"italian": {
		"Sono Napoleone e mi piace parlare delle mie battaglie con i soldati.",
		"Il mio hobby preferito è il tennis. Ci gioco con gli amici ogni fine settimana.",
		"Il cielo è blu perché la luce del sole viene diffusa dall'aria.",
	},
}

func TestDetect(t *testing.T) {
	for lang, texts := range languageSamples {
		for _, text := range texts {
			d := Detect(text)
			if d.Language != lang {
				t.Errorf("%q: detected %q (hits %v), want %s", text, d.Language, d.Hits, lang)
			}
		}
	}
	for _, text := range []string{"", "12345 !!!", "Xyzzy plugh."} {
		if d := Detect(text); d.Language != "" {
			t.Errorf("%q: detected %q, want none", text, d.Language)
		}
	}
	// "la" is a stop word of French, Spanish and Italian alike: a tie names no language.
	if d := Detect("la"); d.Language != "" || d.Hits["french"] != 1 || d.Hits["spanish"] != 1 || d.Hits["italian"] != 1 {
		t.Errorf("tie: %+v", d)
	}
}

func TestLanguageChecker(t *testing.T) {
	lc, _ := NewChecker("language", Deps{})
	ctx := context.Background()
	for lang, texts := range languageSamples {
		want := strings.ToUpper(lang[:1]) + lang[1:] // "French", as the lists spell it
		for _, text := range texts {
			v, err := lc.Check(ctx, Constraint{Language, want}, "Tell me about yourself.", text)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Pass || v.Detail != "detected "+lang {
				t.Errorf("%s on %q: %+v", want, text, v)
			}
			// Negative: the same answer fails every other language.
			for other := range languageSamples {
				if other == lang {
					continue
				}
				v, err := lc.Check(ctx, Constraint{Language, other}, "", text)
				if err != nil {
					t.Fatal(err)
				}
				if v.Pass {
					t.Errorf("%s passed on %s text %q", other, lang, text)
				}
			}
		}
	}
	best, ok, err := LanguageChecker{}.Match("Hola, ¿cómo estás? Yo estoy muy bien, gracias.", " SPANISH ")
	if err != nil || !ok || best != "spanish" {
		t.Errorf("Match = %q %v %v", best, ok, err)
	}
	if v, _ := lc.Check(ctx, Constraint{Language, "French"}, "", "!!!"); v.Pass || v.Detail != "detected no language" {
		t.Errorf("%+v", v)
	}
	if _, err := lc.Check(ctx, Constraint{Language, "Klingon"}, "", "x"); err == nil || err.Error() != `language "Klingon" has no stop-word list: want one of english, french, german, italian, spanish` {
		t.Errorf("error %v", err)
	}
	if _, err := lc.Check(ctx, Constraint{Hobby, "Tennis"}, "", "x"); err == nil || err.Error() != "checker language cannot check a hobby constraint" {
		t.Errorf("error %v", err)
	}
}

// recordingJudge says yes when the answer quoted in the question contains its word.
type recordingJudge struct {
	word  string
	asked []string
	err   error
}

func (j *recordingJudge) Ask(_ context.Context, q string) (bool, error) {
	j.asked = append(j.asked, q)
	if j.err != nil {
		return false, j.err
	}
	return strings.Contains(q, "answered: \""+j.word), nil
}

type fixedScore float64

func (s fixedScore) Score(context.Context, string, string) (float64, error) { return float64(s), nil }

type promptScorer struct{ prompts []string }

func (p *promptScorer) Score(_ context.Context, prompt, answer string) (float64, error) {
	p.prompts = append(p.prompts, prompt)
	return float64(len(answer)), nil
}

func TestJudgeChecker(t *testing.T) {
	j := &recordingJudge{word: "Oui"}
	c, err := NewChecker("judge", Deps{Judge: j})
	if err != nil {
		t.Fatal(err)
	}
	con := Constraint{Language, "French"}
	yes, err := c.Check(context.Background(), con, "Do you like cheese?", "Oui, beaucoup.")
	if err != nil || !yes.Pass || yes.Detail != "judge said yes" {
		t.Errorf("%+v %v", yes, err)
	}
	no, err := c.Check(context.Background(), con, "Do you like cheese?", "Yes, a lot.")
	if err != nil || no.Pass {
		t.Errorf("%+v %v", no, err)
	}
	want := "At the start of the conversation the assistant was told: \"Always speak in French\".\n" +
		"Later the user asked: \"Do you like cheese?\"\nThe assistant answered: \"Oui, beaucoup.\"\n" +
		"Does the answer respect the instruction? Answer yes or no."
	if j.asked[0] != want {
		t.Errorf("judge asked %q, want %q", j.asked[0], want)
	}
	j.err = errors.New("timeout")
	if _, err := c.Check(context.Background(), con, "q", "a"); err == nil || err.Error() != `judge on language constraint "French": timeout` {
		t.Errorf("error %v", err)
	}
}

func TestRewardChecker(t *testing.T) {
	s := &promptScorer{}
	c, err := NewChecker("reward", Deps{Scorer: s, Threshold: 5})
	if err != nil {
		t.Fatal(err)
	}
	con := Constraint{Figure, "Napoleon"}
	// The fake scores an answer by its length in bytes: "Je suis Napoléon" is 17 (é takes two).
	v, err := c.Check(context.Background(), con, "Who are you?", "Je suis Napoléon")
	if err != nil || !v.Pass || v.Detail != "score 17, threshold 5" {
		t.Errorf("%+v %v", v, err)
	}
	v, err = c.Check(context.Background(), con, "Who are you?", "Me")
	if err != nil || v.Pass {
		t.Errorf("%+v %v", v, err)
	}
	// At the threshold passes.
	v, _ = c.Check(context.Background(), con, "Who are you?", "Hello")
	if !v.Pass {
		t.Errorf("score equal to threshold failed: %+v", v)
	}
	if s.prompts[0] != "Always act as Napoleon from now.\n\nWho are you?" {
		t.Errorf("prompt %q", s.prompts[0])
	}
	nan, _ := NewChecker("reward", Deps{Scorer: fixedScore(math.NaN())})
	if _, err := nan.Check(context.Background(), con, "q", "a"); err == nil || err.Error() != `reward on figure constraint "Napoleon": score is NaN` {
		t.Errorf("error %v", err)
	}
}

func TestCheckAnswer(t *testing.T) {
	kw, _ := NewChecker("keyword", Deps{})
	lang, _ := NewChecker("language", Deps{})
	cs := []Constraint{{Figure, "Napoleon"}, {Language, "French"}}
	vs, err := CheckAnswer(context.Background(), []Checker{kw, lang}, cs, "Qui êtes-vous ?", "Je suis Napoleon, et je suis très fier de la France.")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || !vs[0].Pass || vs[0].Checker != "keyword" || !vs[1].Pass || vs[1].Checker != "language" {
		t.Errorf("%+v", vs)
	}
	vs, _ = CheckAnswer(context.Background(), []Checker{kw, lang}, cs, "Who are you?", "I am Napoleon and I am proud of it.")
	if !vs[0].Pass || vs[1].Pass {
		t.Errorf("English answer: %+v", vs)
	}
	if _, err := CheckAnswer(context.Background(), []Checker{kw}, cs, "", ""); err == nil || err.Error() != `no checker supports language constraint "French"` {
		t.Errorf("error %v", err)
	}
}
