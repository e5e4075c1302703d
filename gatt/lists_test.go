package gatt

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/data/chat"
)

func TestParseList(t *testing.T) {
	cases := []struct {
		name, reply string
		want        []string
	}{
		{"numbered", "Sure! Here are some hobbies:\n\n1. Gardening\n2. **Rock climbing** - a thrilling sport\n3) Chess.\n10. Knitting: making clothes\n\nEnjoy!",
			[]string{"Gardening", "Rock climbing", "Chess", "Knitting"}},
		{"bullets", "- French\n* Spanish (Castilian)\n• German\n- french", []string{"French", "Spanish", "German"}},
		{"comma line", "Napoleon, Cleopatra, Albert Einstein, and Marie Curie.", []string{"Napoleon", "Cleopatra", "Albert Einstein", "Marie Curie"}},
		{"apostrophe kept", "1. Joan of Arc\n2. Georgia O'Keeffe", []string{"Joan of Arc", "Georgia O'Keeffe"}},
		{"long items dropped", "1. Painting\n2. Spending the whole afternoon walking around the lake with friends", []string{"Painting"}},
		{"prose", "Once upon a time, there was a little girl named Lily.", nil},
		{"empty", "", nil},
	}
	for _, tc := range cases {
		if got := ParseList(tc.reply); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestGenerateLists(t *testing.T) {
	replies := map[string]string{
		"hobbies":   "1. Tennis\n2. Chess\n3. Chess\n4. Golf",
		"languages": "1. French\n2. Japanese",
		"public":    "- Napoleon\n- Ada Lovelace",
	}
	gen := &scriptGen{reply: func(ms []chat.Message, _ int) string {
		for k, v := range replies {
			if strings.Contains(ms[0].Content, k) {
				return v
			}
		}
		return ""
	}}
	l, err := GenerateLists(context.Background(), gen, ListGenConfig{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := Lists{Hobbies: []string{"Tennis", "Chess"}, Languages: []string{"French", "Japanese"}, Figures: []string{"Napoleon", "Ada Lovelace"}}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("lists %+v, want %+v", l, want)
	}
	if p := gen.prompts[0][0].Content; p != "List 2 different hobbies that a person can enjoy. Write one hobby per line, as a numbered list, with only its name." {
		t.Errorf("prompt %q", p)
	}
	if u := UncheckableLanguages(l); !reflect.DeepEqual(u, []string{"Japanese"}) {
		t.Errorf("uncheckable %q", u)
	}
	// The YAML is a config fragment that loads back into a synth config.
	path := filepath.Join(t.TempDir(), "lists.yaml")
	if err := WriteListsYAML(path, l); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultSynthConfig()
	if err := conf.Load(path, []string{"dataset_name=d.jsonl", "output_dir=o", "model_name_or_path=m"}, &cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Constraints, l) {
		t.Errorf("loaded back %+v", cfg.Constraints)
	}
	// A model that writes no list is an error quoting it.
	story := &scriptGen{reply: func([]chat.Message, int) string { return "Once upon a time, there was a girl." }}
	if _, err := GenerateLists(context.Background(), story, ListGenConfig{}); err == nil ||
		err.Error() != `gatt lists: the model proposed no hobbies: its reply "Once upon a time, there was a girl." holds no list item` {
		t.Errorf("no list: %v", err)
	}
	os.Remove(path)
}

func TestGenJudge(t *testing.T) {
	cases := []struct {
		reply   string
		want    bool
		wantErr string
	}{
		{"Yes.", true, ""},
		{"  no, it does not", false, ""},
		{"**YES** the answer is in French", true, ""},
		{"Maybe", false, `judge reply "Maybe": want yes or no`},
		{"", false, `judge reply "": want yes or no`},
	}
	for _, tc := range cases {
		gen := &scriptGen{reply: func([]chat.Message, int) string { return tc.reply }}
		got, err := GenJudge{Gen: gen}.Ask(context.Background(), "Is it French?")
		if errText(err) != tc.wantErr || got != tc.want {
			t.Errorf("%q: %v %v", tc.reply, got, err)
		}
		if len(gen.prompts) != 1 || !reflect.DeepEqual(gen.prompts[0], msgs("user", "Is it French?")) {
			t.Errorf("judge prompt %q", gen.prompts)
		}
	}
	// Through the judge checker, end to end with the question JudgeQuestion builds.
	gen := &scriptGen{reply: func(ms []chat.Message, _ int) string {
		if strings.Contains(ms[0].Content, "Je suis") {
			return "yes"
		}
		return "no"
	}}
	c, _ := NewChecker(CheckJudge, Deps{Judge: GenJudge{Gen: gen}})
	for answer, want := range map[string]bool{"Je suis Napoléon.": true, "I am Napoleon.": false} {
		v, err := c.Check(context.Background(), Constraint{Language, "French"}, "Who are you?", answer)
		if err != nil || v.Pass != want {
			t.Errorf("%q: %+v %v", answer, v, err)
		}
	}
}
