package world

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/model/tokenizer"
)

func worldTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := NewTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// emittedTexts is every piece of text a Default world emits, plus the reference answers of every
// question in every language with and without a persona, and gatt's instruction sentences.
func emittedTexts(t *testing.T) []string {
	t.Helper()
	w := newWorld(t, Default())
	var out []string
	for _, d := range w.SFT() {
		for _, m := range d {
			out = append(out, m.Content)
		}
	}
	for _, p := range append(w.Preferences(), w.HeldOutPairs()...) {
		for _, m := range p.Prompt {
			out = append(out, m.Content)
		}
		out = append(out, p.Chosen, p.Rejected)
	}
	for _, split := range []string{SplitTrain, SplitHeldOut} {
		ps, _ := w.Prompts(split)
		for _, p := range ps {
			for _, m := range p {
				out = append(out, m.Content)
			}
		}
	}
	for _, d := range w.GAttSource() {
		out = append(out, d.Instruction.Text())
		for _, m := range d.Messages {
			out = append(out, m.Content)
		}
	}
	for _, d := range w.GAttEval() {
		for _, turn := range d.Turns {
			out = append(out, turn.User, turn.Want)
		}
	}
	for _, qs := range allQueries() {
		for _, q := range qs {
			for l := range numLangs {
				for _, fig := range []string{"", "Vela"} {
					out = append(out, style{figure: fig, lang: l, hobby: "karate"}.want(q).text())
				}
			}
		}
	}
	return append(out, instructionTexts()...)
}

// TestEverythingTokenizesWithoutFallback: every text the world emits encodes without a byte piece
// or <unk>, and with exactly one piece per word, per punctuation mark and per line break.
func TestEverythingTokenizesWithoutFallback(t *testing.T) {
	tok := worldTokenizer(t)
	_, _, types := tok.Pieces()
	texts := emittedTexts(t)
	for _, text := range texts {
		ids := tok.Encode(text, false)
		for _, id := range ids {
			if types[id] == tokenizer.TypeByte || id == tok.UNK() {
				t.Fatalf("%q encodes with byte fallback or <unk>: %v", text, ids)
			}
		}
		if n := len(tokens(text)) + strings.Count(text, "\n"); len(ids) != n {
			t.Fatalf("%q: %d pieces for %d words, marks and line breaks: %v", text, len(ids), n, ids)
		}
		if got := tok.Decode(ids); got != text {
			t.Fatalf("%q decodes as %q", text, got)
		}
	}
	if len(texts) < 10000 {
		t.Errorf("only %d texts checked", len(texts))
	}
}

// TestWordsAreSinglePieces: each word is the piece "▁"+word, whatever its prefixes.
func TestWordsAreSinglePieces(t *testing.T) {
	tok := worldTokenizer(t)
	words := Words()
	for _, w := range words {
		id, ok := tok.TokenID("▁" + w)
		if !ok {
			t.Fatalf("no piece for %q", w)
		}
		if got := tok.Encode(w, false); !slices.Equal(got, []int32{id}) {
			t.Fatalf("%q encodes as %v, want [%d]", w, got, id)
		}
	}
	// After a line break, line-initial words are single pieces too, without the "▁".
	nl, _ := tok.TokenID("\n")
	for _, w := range LineInitialWords() {
		id, ok := tok.TokenID(w)
		if !ok {
			t.Fatalf("no piece for line-initial %q", w)
		}
		// The dummy prefix makes "what?\n" "▁what", "?", "\n".
		if got := tok.Encode("what?\n"+w, false); len(got) != 4 || got[2] != nl || got[3] != id {
			t.Fatalf("%q after a line break encodes as %v, want [what ? %d %d]", w, got, nl, id)
		}
	}
	// A word outside the world still encodes, through its longest known prefix and characters.
	if ids := tok.Encode("zebra", false); len(ids) < 2 {
		t.Errorf("zebra encodes as %v", ids)
	}
	// About 170 words, from English, French, German and Spanish answers and gatt's instructions.
	if len(words) < 150 || len(words) > 200 {
		t.Errorf("%d words", len(words))
	}
}

func TestPiecesLayout(t *testing.T) {
	ps := Pieces()
	if ps[0].Text != "<unk>" || ps[0].Type != tokenizer.TypeUnknown || ps[1].Text != "<s>" || ps[1].Type != tokenizer.TypeControl ||
		ps[2].Text != "</s>" || ps[2].Type != tokenizer.TypeControl {
		t.Errorf("specials %+v", ps[:3])
	}
	for b := range 256 {
		if p := ps[3+b]; p.Type != tokenizer.TypeByte || p.Text != fmt.Sprintf("<0x%02X>", b) || p.Score != 0 {
			t.Errorf("piece %d: %+v", 3+b, p)
		}
	}
	// Normal pieces: scores strictly decrease, a merged piece comes after the piece it extends.
	seen := map[string]bool{}
	for i := 259; i < len(ps); i++ {
		p := ps[i]
		if p.Type != tokenizer.TypeNormal || (i > 259 && p.Score >= ps[i-1].Score) {
			t.Fatalf("piece %d: %+v after %+v", i, p, ps[i-1])
		}
		r := []rune(p.Text)
		if len(r) > 2 && !seen[string(r[:len(r)-1])] {
			t.Fatalf("piece %q comes before its prefix", p.Text)
		}
		seen[p.Text] = true
	}
	// The vocabulary the demo's models embed: 259 specials and bytes plus about 740 pieces.
	if len(ps) > 1100 {
		t.Errorf("%d pieces", len(ps))
	}
	t.Logf("%d pieces, %d words", len(ps), len(Words()))
}

// TestRenderedChatTokenizes renders dialogues with the llama-2 template, as the pipeline does, and
// checks the ids: no byte fallback, whole [INST] pieces, BOS and EOS per turn, and the longest
// GAtt evaluation dialogue inside ModelMaxLength.
func TestRenderedChatTokenizes(t *testing.T) {
	tok := worldTokenizer(t)
	_, _, types := tok.Pieces()
	tmpl, err := chat.Resolve(ChatTemplate, "", BOSPiece, EOSPiece)
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := tok.TokenID("▁[INST]")
	endInst, _ := tok.TokenID("▁[/INST]")
	w := newWorld(t, Default())
	dialogues := append([]Dialogue(nil), w.SFT()[:300]...)
	longest := 0
	for _, d := range w.GAttEval() {
		var msgs Dialogue
		for _, turn := range d.Turns {
			msgs = append(msgs, Message{"user", turn.User}, Message{"assistant", turn.Want})
		}
		dialogues = append(dialogues, msgs)
	}
	for i, d := range dialogues {
		msgs := make([]chat.Message, len(d))
		for j, m := range d {
			msgs[j] = chat.Message(m)
		}
		segs, err := tmpl.RenderSegments(msgs, false)
		if err != nil {
			t.Fatal(err)
		}
		spans := make([]tokenizer.Span, len(segs))
		for j, s := range segs {
			spans[j] = tokenizer.Span{Text: s.Text, Special: s.Message < 0}
		}
		ids := tok.EncodeSpans(spans, false)
		counts := map[int32]int{}
		for _, id := range ids {
			if types[id] == tokenizer.TypeByte || id == tok.UNK() {
				t.Fatalf("dialogue %d encodes with byte fallback: %v", i, ids)
			}
			counts[id]++
		}
		turns := len(d) / 2
		if counts[tok.BOS()] != turns || counts[tok.EOS()] != turns || counts[inst] != turns || counts[endInst] != turns {
			t.Fatalf("dialogue %d (%d turns): %d BOS, %d EOS, %d [INST], %d [/INST]", i, turns,
				counts[tok.BOS()], counts[tok.EOS()], counts[inst], counts[endInst])
		}
		longest = max(longest, len(ids))
	}
	if longest > ModelMaxLength {
		t.Errorf("longest dialogue is %d tokens, ModelMaxLength %d", longest, ModelMaxLength)
	}
	t.Logf("longest rendered dialogue: %d tokens", longest)
}

// TestWriteTokenizer: the written directory loads back as the in-memory tokenizer, with Llama
// 2-Chat's specials and the llama-2 chat template.
func TestWriteTokenizer(t *testing.T) {
	dir := t.TempDir()
	if err := WriteTokenizer(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	mem := worldTokenizer(t)
	lp, ls, lt := loaded.Pieces()
	mp, ms, mt := mem.Pieces()
	if !slices.Equal(lp, mp) || !slices.Equal(ls, ms) || !slices.Equal(lt, mt) {
		t.Error("loaded pieces differ from the in-memory tokenizer's")
	}
	src, _ := chat.BuiltinSource(ChatTemplate)
	if loaded.BOS() != 1 || loaded.EOS() != 2 || loaded.UNK() != 0 || !loaded.AddBOS() || loaded.AddEOS() ||
		loaded.ChatTemplate() != src || !loaded.AddSpacePrefix() || loaded.RemoveExtraWhitespaces() {
		t.Errorf("loaded: bos %d eos %d unk %d add_bos %v add_eos %v template %v",
			loaded.BOS(), loaded.EOS(), loaded.UNK(), loaded.AddBOS(), loaded.AddEOS(), loaded.ChatTemplate() == src)
	}
	text := "Figure: Zorb. Language: German. what is 7 plus 5?"
	if a, b := loaded.Encode(text, true), mem.Encode(text, true); !slices.Equal(a, b) || a[0] != 1 {
		t.Errorf("loaded encodes %v, in-memory %v", a, b)
	}
	// Rewriting gives the same bytes.
	first, _ := os.ReadFile(filepath.Join(dir, "tokenizer.model"))
	cfg, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err := WriteTokenizer(dir); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "tokenizer.model"))
	cfg2, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if !bytes.Equal(first, again) || !bytes.Equal(cfg, cfg2) || len(first) == 0 {
		t.Error("WriteTokenizer is not deterministic")
	}
}

// TestSentencePieceReference encodes the world's texts with Google's sentencepiece (Debian's
// python3-sentencepiece) from the written tokenizer.model and compares ids with package tokenizer's.
func TestSentencePieceReference(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import sentencepiece").Run(); err != nil {
		t.Skipf("needs %s with the sentencepiece module (apt-get install python3-sentencepiece): %v", python, err)
	}
	dir := t.TempDir()
	if err := WriteTokenizer(dir); err != nil {
		t.Fatal(err)
	}
	texts := emittedTexts(t)
	// Every 7th text keeps the run short while covering every kind of text.
	var sample []string
	for i := 0; i < len(texts); i += 7 {
		sample = append(sample, texts[i])
	}
	sample = append(sample, "[INST] who are you? [/INST] i am an assistant. ", "zebra", "Ça va?",
		"[INST] <<SYS>>\nFigure: Zorb.\n<</SYS>>\n\nwho are you? [/INST] Zorb: i am Zorb. ")
	in, err := json.Marshal(sample)
	if err != nil {
		t.Fatal(err)
	}
	script := `import json, sys, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
print(json.dumps([sp.encode(s) for s in json.load(sys.stdin)]))`
	cmd := exec.Command(python, "-c", script, filepath.Join(dir, "tokenizer.model"))
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sentencepiece: %v", err)
	}
	var want [][]int32
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	tok := worldTokenizer(t)
	for i, s := range sample {
		if got := tok.Encode(s, false); !slices.Equal(got, want[i]) {
			t.Errorf("%q: tokenizer %v, sentencepiece %v", s, got, want[i])
		}
	}
}
