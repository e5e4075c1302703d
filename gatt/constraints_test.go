package gatt

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestInstructionRendering(t *testing.T) {
	cs := []Constraint{{Figure, "Napoleon"}, {Language, "French"}, {Hobby, "Tennis"}}
	in := NewInstruction(cs, false)
	if want := "Always act as Napoleon from now. Always speak in French. You enjoy Tennis."; in.Verbose != want || in.Text() != want {
		t.Errorf("verbose %q, text %q", in.Verbose, in.Text())
	}
	if want := "Figure: Napoleon. Language: French. Hobby: Tennis."; in.Terse != want {
		t.Errorf("terse %q", in.Terse)
	}
	in.UseTerse = true
	if in.Text() != in.Terse {
		t.Errorf("terse text %q", in.Text())
	}
	one := NewInstruction([]Constraint{{Language, "German"}}, true)
	if one.Text() != "Language: German." || one.Verbose != "Always speak in German." {
		t.Errorf("%+v", one)
	}
}

func TestSampleDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 0))
	lists := DefaultLists()
	terse := 0
	sizes := map[int]int{}
	kindsSeen := map[Kind]int{}
	const n = 1000
	for i := 0; i < n; i++ {
		in, err := Sample(rng, lists)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Constraints) < 1 || len(in.Constraints) > 3 {
			t.Fatalf("sample %d has %d constraints", i, len(in.Constraints))
		}
		sizes[len(in.Constraints)]++
		distinct := map[Kind]bool{}
		for _, c := range in.Constraints {
			if distinct[c.Kind] {
				t.Fatalf("sample %d repeats kind %s: %+v", i, c.Kind, in.Constraints)
			}
			distinct[c.Kind] = true
			kindsSeen[c.Kind]++
			vs, _ := lists.List(c.Kind)
			found := false
			for _, v := range vs {
				found = found || v == c.Value
			}
			if !found {
				t.Fatalf("sample %d: value %q not in the %s list", i, c.Value, c.Kind)
			}
			if !strings.Contains(in.Verbose, c.Verbose()+".") || !strings.Contains(in.Terse, c.Terse()+".") {
				t.Fatalf("sample %d: %q / %q miss %+v", i, in.Verbose, in.Terse, c)
			}
		}
		if in.UseTerse {
			terse++
		}
	}
	if terse < 450 || terse > 550 {
		t.Errorf("terse in %d of %d samples: want 45–55%%", terse, n)
	}
	// 1, 2 and 3 constraints are equally likely: each near 333.
	for k := 1; k <= 3; k++ {
		if sizes[k] < 280 || sizes[k] > 390 {
			t.Errorf("%d constraints in %d of %d samples", k, sizes[k], n)
		}
	}
	// Each kind appears in 2/3 of samples on average (E[size]/3 = 2/3): about 667.
	for _, k := range []Kind{Hobby, Language, Figure} {
		if kindsSeen[k] < 600 || kindsSeen[k] > 730 {
			t.Errorf("kind %s in %d samples", k, kindsSeen[k])
		}
	}
}

func TestSampleDeterministic(t *testing.T) {
	draw := func(seed uint64) []Instruction {
		rng := rand.New(rand.NewPCG(seed, 1))
		var out []Instruction
		for i := 0; i < 50; i++ {
			in, err := Sample(rng, DefaultLists())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, in)
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed gave different instructions")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds gave the same 50 instructions")
	}
}

func TestSampleKindsAndErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 20; i++ {
		in, err := SampleKinds(rng, Lists{Languages: []string{"Spanish"}}, []Kind{Language})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in.Constraints, []Constraint{{Language, "Spanish"}}) {
			t.Fatalf("%+v", in.Constraints)
		}
	}
	empty := DefaultLists()
	empty.Figures = nil
	blank := DefaultLists()
	blank.Hobbies = append(blank.Hobbies, "  ")
	cases := []struct {
		lists Lists
		ks    []Kind
		want  string
	}{
		{empty, []Kind{Hobby, Language, Figure}, "gatt figures list is empty: cannot sample a figure constraint"},
		{blank, []Kind{Hobby}, "gatt hobbies[24] is blank: want a value"},
		{DefaultLists(), nil, "gatt sample: no constraint kinds requested"},
		{DefaultLists(), []Kind{Hobby, Hobby}, `gatt sample: kind "hobby" requested twice`},
		{DefaultLists(), []Kind{"color"}, `constraint kind "color": want one of hobby, language, figure`},
	}
	for _, tc := range cases {
		if _, err := SampleKinds(rng, tc.lists, tc.ks); err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	// An empty list fails even when the draw would not have used it: the error must not be random.
	if _, err := Sample(rng, empty); err == nil {
		t.Error("Sample accepted an empty figures list")
	}
	if _, err := Sample(nil, DefaultLists()); err == nil || err.Error() != "gatt sample: rng is nil: want a seeded *rand.Rand" {
		t.Errorf("error %v", err)
	}
	// Without the empty list, restricting kinds works.
	if _, err := SampleKinds(rng, empty, []Kind{Hobby, Language}); err != nil {
		t.Error(err)
	}
}

func TestListsExtend(t *testing.T) {
	base := Lists{Hobbies: []string{"Tennis"}, Languages: []string{"French"}}
	got := base.Extend(Lists{Hobbies: []string{"tennis ", "Chess"}, Figures: []string{"Cleopatra"}})
	want := Lists{Hobbies: []string{"Tennis", "Chess"}, Languages: []string{"French"}, Figures: []string{"Cleopatra"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if len(base.Hobbies) != 1 {
		t.Error("Extend modified its receiver")
	}
}

// Every default language must be identifiable, or its constraint could never pass.
func TestDefaultLanguagesAreDetectable(t *testing.T) {
	for _, l := range DefaultLists().Languages {
		if _, _, err := (LanguageChecker{}).Match("", l); err != nil {
			t.Error(err)
		}
	}
}

func TestQuestions(t *testing.T) {
	inst := NewInstruction([]Constraint{{Figure, "Napoleon"}, {Language, "French"}, {Hobby, "Tennis"}}, false)
	qs, err := Questions(inst, 9, rand.New(rand.NewPCG(3, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 9 {
		t.Fatalf("%d questions", len(qs))
	}
	counts := map[string]int{}
	for i, q := range qs {
		// The language applies to every answer.
		if len(q.Checks) == 0 || q.Checks[0] != (Constraint{Language, "French"}) {
			t.Errorf("question %d %q: checks %+v lack the language", i, q.Text, q.Checks)
		}
		kind := "general"
		if len(q.Checks) == 2 {
			kind = string(q.Checks[1].Kind)
		}
		counts[kind]++
		bank := map[string][]string{"hobby": hobbyQuestions, "figure": figureQuestions, "general": generalQuestions}[kind]
		if !slices.Contains(bank, q.Text) {
			t.Errorf("question %d %q is not a %s question", i, q.Text, kind)
		}
	}
	// Three slots (hobby, figure, general) cycled over 9 turns: three each.
	if counts["hobby"] != 3 || counts["figure"] != 3 || counts["general"] != 3 {
		t.Errorf("counts %v", counts)
	}
	// "What is your name?" and "What is your favorite hobby?" are in the banks referred to.
	if !slices.Contains(figureQuestions, "What is your name?") || !slices.Contains(hobbyQuestions, "What is your favorite hobby?") {
		t.Error("banks lack Llama 2's questions")
	}

	again, _ := Questions(inst, 9, rand.New(rand.NewPCG(3, 3)))
	if !reflect.DeepEqual(qs, again) {
		t.Error("same seed gave different questions")
	}

	langOnly := NewInstruction([]Constraint{{Language, "German"}}, true)
	qs, err = Questions(langOnly, 3, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if !slices.Contains(generalQuestions, q.Text) || len(q.Checks) != 1 {
			t.Errorf("%+v", q)
		}
	}
	if qs[0].Text == qs[1].Text || qs[1].Text == qs[2].Text || qs[0].Text == qs[2].Text {
		t.Errorf("repeated questions before the bank ran out: %+v", qs)
	}

	for _, tc := range []struct {
		inst  Instruction
		turns int
		want  string
	}{
		{inst, 0, "gatt questions: turns 0: want at least 1"},
		{Instruction{}, 2, "gatt questions: the instruction has no constraints"},
		{NewInstruction([]Constraint{{"mood", "happy"}}, false), 1, `gatt questions: constraint kind "mood": want one of hobby, language, figure`},
	} {
		if _, err := Questions(tc.inst, tc.turns, rand.New(rand.NewPCG(1, 1))); err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
