package tokenizer

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// demoPieces is a small SentencePiece BPE vocabulary as a demo would train it: <unk>, <s>, </s>,
// optionally the 256 byte pieces, then merged pieces with descending scores.
func demoPieces(withBytes bool) []Piece {
	pieces := []Piece{{"<unk>", 0, TypeUnknown}, {"<s>", 0, TypeControl}, {"</s>", 0, TypeControl}}
	if withBytes {
		for b := range 256 {
			pieces = append(pieces, Piece{bytePieceName(byte(b)), 0, TypeByte})
		}
	}
	merged := []string{"▁t", "he", "▁the", "▁a", "in", "▁w", "or", "▁wor", "ld", "▁world", "▁s", "ing", "▁sing", "▁▁", "é"}
	for i, m := range merged {
		pieces = append(pieces, Piece{m, -float32(i), TypeNormal})
	}
	// Single characters, each a piece, as SentencePiece's BPE trainer lists them after merges.
	for i, c := range strings.Split("▁ t h e a i n w o r l d s g H , ! .", " ") {
		pieces = append(pieces, Piece{c, -float32(100 + i), TypeNormal})
	}
	return pieces
}

var demoTexts = []string{"the world", "Hello, world!", "singing the  thé", "  a  b ", "日本 x 🦙", "", "</s>x<s>", "<0x41>"}

// demoCases are the ids Python sentencepiece 0.1.97 (Debian python3-sentencepiece) gives,
// SentencePieceProcessor(model_file=path).encode(text), on the files WriteSentencePieceModel
// writes from demoPieces with the named options. Without byte fallback each run of unknown
// characters is one <unk> (0): "日本" is one, ">x<" is one.
var demoCases = []struct {
	name         string
	byteFallback bool
	opts         SPOptions
	want         [][]int32 // by demoTexts
}{
	{"byte-fallback", true, SPOptions{ByteFallback: true, AddDummyPrefix: true, RemoveExtraWhitespaces: true}, [][]int32{
		{261, 268},
		{274, 288, 277, 284, 284, 282, 289, 268, 290},
		{271, 270, 261, 259, 276, 273},
		{262, 274, 101},
		{274, 233, 154, 168, 233, 159, 175, 274, 123, 274, 243, 162, 169, 156},
		nil,
		{274, 63, 50, 286, 65, 123, 63, 286, 65},
		{274, 63, 51, 123, 55, 52, 65}, // a byte piece's name is text: "<", "0", "x", "4", "1", ">"
	}},
	{"unk", false, SPOptions{AddDummyPrefix: true, RemoveExtraWhitespaces: true}, [][]int32{
		{5, 12},
		{18, 32, 21, 28, 28, 26, 33, 12, 34},
		{15, 14, 5, 3, 20, 17},
		{6, 18, 0},
		{18, 0, 18, 0, 18, 0},
		nil,
		{18, 0, 30, 0, 30, 0},
		{18, 0},
	}},
	{"raw", true, SPOptions{ByteFallback: true}, [][]int32{
		{275, 260, 268},
		{288, 277, 284, 284, 282, 289, 268, 290},
		{286, 270, 270, 261, 274, 259, 276, 273},
		{274, 262, 272, 101, 274},
		{233, 154, 168, 233, 159, 175, 274, 123, 274, 243, 162, 169, 156},
		nil,
		{63, 50, 286, 65, 123, 63, 286, 65},
		{63, 51, 123, 55, 52, 65}, // without the dummy prefix the whole input is "<0x41>"
	}},
}

// TestDemoModel: the written tokenizer.model loads back to the same ids as NewSentencePiece, and
// both equal Python sentencepiece's on the same file. Where Debian's python3-sentencepiece is
// installed the file is also checked live.
func TestDemoModel(t *testing.T) {
	for _, c := range demoCases {
		pieces := demoPieces(c.byteFallback)
		path := filepath.Join(t.TempDir(), "tokenizer.model")
		if err := WriteSentencePieceModel(path, pieces, c.opts); err != nil {
			t.Fatal(err)
		}
		loaded, err := LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		built, err := NewSentencePiece(pieces, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		for i, text := range demoTexts {
			for name, tk := range map[string]*Tokenizer{"loaded": loaded, "built": built} {
				if got := tk.Encode(text, false); !slices.Equal(got, c.want[i]) {
					t.Errorf("%s %s: Encode(%q) = %v, want %v", c.name, name, text, got, c.want[i])
				}
			}
		}
		if c.byteFallback {
			// Byte fallback loses nothing; the normalizer's whitespace rules are all that changes.
			for _, text := range demoTexts {
				want := text
				if c.opts.RemoveExtraWhitespaces {
					want = strings.Join(strings.FieldsFunc(text, func(r rune) bool { return r == ' ' }), " ")
				}
				if got := loaded.Decode(loaded.Encode(text, true)); got != want {
					t.Errorf("%s: round trip of %q = %q, want %q", c.name, text, got, want)
				}
			}
		}
		checkWithPythonSentencePiece(t, path, c.want)
	}
}

// checkWithPythonSentencePiece encodes demoTexts with Python sentencepiece when it is installed.
func checkWithPythonSentencePiece(t *testing.T, path string, want [][]int32) {
	t.Helper()
	const script = `import json, sys, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
print(json.dumps([sp.encode(s) for s in json.loads(sys.stdin.read())]))`
	if err := exec.Command("/usr/bin/python3", "-c", "import sentencepiece").Run(); err != nil {
		t.Log("python3-sentencepiece not installed; live cross-check skipped")
		return
	}
	in, _ := json.Marshal(demoTexts)
	cmd := exec.Command("/usr/bin/python3", "-c", script, path)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python sentencepiece on %s: %v", path, err)
	}
	var got [][]int32
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) && !(len(got[i]) == 0 && len(want[i]) == 0) {
			t.Errorf("python sentencepiece on %q = %v, table says %v", demoTexts[i], got[i], want[i])
		}
	}
}

// demoOptions are the options the demo tokenizer ships with.
func demoOptions(byteFallback bool) SPOptions {
	return SPOptions{ByteFallback: byteFallback, AddDummyPrefix: true, RemoveExtraWhitespaces: true}
}

func TestWriteSentencePieceModelRoundTrip(t *testing.T) {
	tk := loadShared(t, "models/stories260K/tokenizer.model")
	toks, scores, types := tk.Pieces()
	pieces := make([]Piece, len(toks))
	for i := range toks {
		pieces[i] = Piece{toks[i], scores[i], types[i]}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tokenizer.model")
	if err := WriteSentencePieceModel(path, pieces, demoOptions(true)); err != nil {
		t.Fatal(err)
	}
	back, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t2, s2, ty2 := back.Pieces()
	if !slices.Equal(toks, t2) || !slices.Equal(scores, s2) || !slices.Equal(types, ty2) {
		t.Error("pieces, scores or types changed in the round trip")
	}
	if back.BOS() != 1 || back.EOS() != 2 || back.UNK() != 0 || !back.AddSpacePrefix() || !back.RemoveExtraWhitespaces() {
		t.Errorf("bos %d eos %d unk %d prefix %v rmws %v", back.BOS(), back.EOS(), back.UNK(), back.AddSpacePrefix(), back.RemoveExtraWhitespaces())
	}
	for _, s := range []string{"Once upon a time", "  a  b  ", "héllo 😀 日本", "</s> <s>x", "It's 3.14159 o'clock"} {
		if got, want := back.Encode(s, true), tk.Encode(s, true); !slices.Equal(got, want) {
			t.Errorf("%q: written model gives %v, original %v", s, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after the write, want only tokenizer.model", len(entries))
	}
}
