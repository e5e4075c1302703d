package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

func loadShared(t *testing.T, rel string) *Tokenizer {
	t.Helper()
	path := filepath.Join(sharedtest.Dir(t), rel)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("reference file absent: %s", path)
	}
	var tk *Tokenizer
	var err error
	if fi, _ := os.Stat(path); fi.IsDir() {
		tk, err = Load(path)
	} else {
		tk, err = LoadFile(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestLlama2Vectors checks llama.cpp's 46 tokenizer test strings for the Llama 2 vocabulary,
// encoded without BOS and without special-token parsing (llama-spm.out, which Python
// sentencepiece reproduces too).
func TestLlama2Vectors(t *testing.T) {
	dir := filepath.Join(sharedtest.Dir(t), "tokenizers", "llama2")
	inp, err := os.ReadFile(filepath.Join(dir, "llama-spm.inp"))
	if err != nil {
		t.Skipf("reference file absent: %v", err)
	}
	out, err := os.ReadFile(filepath.Join(dir, "llama-spm.out"))
	if err != nil {
		t.Skipf("reference file absent: %v", err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	texts := strings.Split(strings.TrimSuffix(string(inp), sep), sep)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(texts) != 46 || len(lines) != 46 {
		t.Fatalf("got %d strings and %d id lines, want 46 of each", len(texts), len(lines))
	}
	tk, err := LoadFile(filepath.Join(dir, "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		var want []int32
		for _, f := range strings.Fields(lines[i]) {
			id, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("llama-spm.out line %d: %v", i+1, err)
			}
			want = append(want, int32(id))
		}
		got := tk.Encode(text, false)
		if !slices.Equal(got, want) {
			t.Errorf("string %d %q:\n got %v\nwant %v", i, text, got, want)
		}
		// Llama 2 keeps every space (remove_extra_whitespaces=false), so decoding is exact.
		if dec := tk.Decode(got); dec != text {
			t.Errorf("string %d: decode = %q, want %q", i, dec, text)
		}
	}
}

// TestStories260K checks stories260K (add_dummy_prefix, remove_extra_whitespaces, byte fallback)
// against Python sentencepiece 0.1.97's encode/decode of the same tokenizer.model. Decode strips
// one leading space, as Hugging Face and llama.cpp do; sentencepiece itself strips every leading
// "▁" it meets before the first visible text (seen only on the "▁already" row, where it returns
// "already").
func TestStories260K(t *testing.T) {
	tk := loadShared(t, "models/stories260K")
	if got := tk.Encode("Once upon a time", true); !slices.Equal(got, []int32{1, 403, 407, 261, 378}) {
		t.Fatalf("Once upon a time with BOS = %v, want [1 403 407 261 378]", got)
	}
	cases := []struct {
		text string
		ids  []int32
		dec  string // "" with ids: same as text
	}{
		{"Once upon a time", []int32{403, 407, 261, 378}, ""},
		{"  a  b  ", []int32{261, 268}, "a b"},
		{"a\tb\n c", []int32{261, 12, 430, 13, 280}, ""},
		{"</s> <s>x", []int32{410, 504, 492, 419, 505, 410, 504, 419, 505, 444}, ""},
		{"<0x41>", []int32{410, 504, 477, 444, 484, 475, 505}, ""},
		{"héllo 😀 日本", []int32{270, 485, 306, 414, 410, 243, 162, 155, 131, 410, 233, 154, 168, 233, 159, 175}, ""},
		{"", nil, ""},
		{"   ", nil, ""},
		{"Hello, world!", []int32{346, 306, 414, 432, 263, 304, 341, 443}, ""},
		{" leading", []int32{278, 411, 380, 299}, "leading"},
		{"trailing ", []int32{259, 420, 412, 290, 299}, "trailing"},
		{"x  y   z", []int32{410, 444, 348, 410, 451}, "x y z"},
		{"🦙🦙 llama", []int32{410, 243, 162, 169, 156, 243, 162, 169, 156, 278, 421, 314, 412}, ""},
		{"Ünïcödé Ωμέγα", []int32{410, 198, 159, 416, 198, 178, 429, 198, 185, 418, 485, 410, 209, 172, 209, 191, 209, 176, 209, 182, 209, 180}, ""},
		{"new\nline\n\n", []int32{404, 424, 13, 421, 271, 411, 13, 13}, ""},
		{"<unk>", []int32{410, 504, 379, 433, 505}, ""},
		{"▁already", []int32{410, 261, 421, 276, 380, 422}, " already"},
		{"a\x00b", []int32{261, 3, 430}, ""},
		{"It's 3.14159 o'clock", []int32{359, 413, 439, 419, 410, 472, 426, 475, 484, 475, 480, 483, 334, 439, 429, 421, 414, 340}, ""},
		{"\u200b zero width", []int32{410, 229, 131, 142, 410, 451, 285, 414, 263, 292, 413, 415}, ""},
		{"   multiple   spaces   ", []int32{284, 425, 421, 413, 417, 427, 305, 262, 427, 412, 331, 419}, "multiple spaces"},
		// Invalid UTF-8 is U+FFFD (bytes EF BF BD) to SentencePiece's normalizer.
		{"a\xffb", []int32{261, 242, 194, 192, 430}, "a\uFFFDb"},
	}
	for _, c := range cases {
		got := tk.Encode(c.text, false)
		if !slices.Equal(got, c.ids) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.ids)
		}
		want := c.dec
		if want == "" && c.ids != nil {
			want = c.text
		}
		if dec := tk.Decode(append([]int32{1}, append(got, 2)...)); dec != want {
			t.Errorf("Decode(BOS+Encode(%q)+EOS) = %q, want %q", c.text, dec, want)
		}
	}
}

// TestTypedSpecialsStayText: typed "<s>", "</s>", "<unk>" are never ids 1, 2, 0 in Encode or in a
// Special=false span; in a Special span they are. The Llama 2 ids come from Python sentencepiece.
func TestTypedSpecialsStayText(t *testing.T) {
	for _, rel := range []string{"models/stories260K", "tokenizers/llama2/tokenizer.model"} {
		tk := loadShared(t, rel)
		for _, text := range []string{"</s>", "<s>", "<unk>", "a</s>b<s>c<unk>", " </s> ", "<s><s></s>"} {
			for _, ids := range [][]int32{tk.Encode(text, false), tk.EncodeSpans([]Span{{Text: text}}, false)} {
				for _, id := range ids {
					if id == 0 || id == 1 || id == 2 {
						t.Errorf("%s: %q encoded to %v, which holds control id %d", rel, text, ids, id)
					}
				}
			}
		}
		got := tk.EncodeSpans([]Span{{Text: "<s>x</s><unk>", Special: true}}, false)
		x := tk.Encode("x", false)
		want := append(append([]int32{1}, x...), 2, 0)
		if !slices.Equal(got, want) {
			t.Errorf("%s: special span = %v, want %v", rel, got, want)
		}
	}
	tk := loadShared(t, "tokenizers/llama2/tokenizer.model")
	if got, want := tk.Encode("What is </s> and <s>?", false), []int32{1724, 338, 1533, 29879, 29958, 322, 529, 29879, 29958, 29973}; !slices.Equal(got, want) {
		t.Errorf("llama2 typed specials = %v, want %v", got, want)
	}
}

// TestEncodeSpansLlama2Chat: a Llama 2 chat turn. Each run of text after a special token gets its
// own dummy prefix, as in Meta's reference (which encodes "[INST] ... [/INST]" separately with
// BOS) and llama.cpp; the ids are Python sentencepiece's encode of the text run, after BOS.
func TestEncodeSpansLlama2Chat(t *testing.T) {
	tk := loadShared(t, "tokenizers/llama2/tokenizer.model")
	spans := []Span{
		{Text: "<s>[INST] <<SYS>>\n", Special: true},
		{Text: "Be brief."},
		{Text: "\n<</SYS>>\n\n", Special: true},
		{Text: "Hi there"},
		{Text: " [/INST]", Special: true},
	}
	want := []int32{1, 518, 25580, 29962, 3532, 14816, 29903, 6778, 13, 3629, 11473, 29889, 13, 29966, 829, 14816, 29903, 6778, 13, 13, 18567, 727, 518, 29914, 25580, 29962}
	if got := tk.EncodeSpans(spans, false); !slices.Equal(got, want) {
		t.Errorf("EncodeSpans =\n %v\nwant\n %v", got, want)
	}
	// The same with BOS added by id instead of typed in the template.
	spans[0].Text = "[INST] <<SYS>>\n"
	if got := tk.EncodeSpans(spans, true); !slices.Equal(got, want) {
		t.Errorf("EncodeSpans(addBOS) =\n %v\nwant\n %v", got, want)
	}
	// An assistant answer closed by EOS: the text before </s> is its own run.
	got := tk.EncodeSpans([]Span{{Text: " Hello! "}, {Text: "</s>", Special: true}}, false)
	if want := []int32{29871, 15043, 29991, 29871, 2}; !slices.Equal(got, want) {
		t.Errorf("answer+EOS = %v, want %v", got, want)
	}
}

// TestEncodeSpansEqualsEncode: without special tokens, any split into spans encodes as the
// concatenation does, because ordinary text is joined across span boundaries.
func TestEncodeSpansEqualsEncode(t *testing.T) {
	for _, rel := range []string{"models/stories260K", "tokenizers/llama2/tokenizer.model"} {
		tk := loadShared(t, rel)
		for _, spans := range [][]Span{
			{{Text: "Once upon"}, {Text: " a time"}},
			{{Text: "Hel", Special: true}, {Text: "lo wor"}, {Text: "ld!", Special: true}},
			{{Text: "  spaced  "}, {Text: "  out  ", Special: true}, {Text: ""}},
			{{Text: "日"}, {Text: "本 🦙", Special: true}},
			{{Text: "<"}, {Text: "/s>", Special: true}}, // a special token split over spans is text
			{{Text: ""}},
			nil,
		} {
			var all strings.Builder
			for _, s := range spans {
				all.WriteString(s.Text)
			}
			for _, bos := range []bool{false, true} {
				got, want := tk.EncodeSpans(spans, bos), tk.Encode(all.String(), bos)
				if !slices.Equal(got, want) {
					t.Errorf("%s: EncodeSpans(%+v, %v) = %v, Encode = %v", rel, spans, bos, got, want)
				}
			}
		}
	}
}

// TestStoriesDirectory: Load of the HF directory takes ids and flags from tokenizer_config.json
// and the pieces, scores and types match the llama.cpp GGUF of the same model (whose metadata
// llama.cpp's own converter wrote: tokens [<unk> <s> </s> <0x00> ...], token_type
// [2 3 3 6 ...], piece 259 "▁t" score -0, 260 "he" score -1, add_space_prefix and
// remove_extra_whitespaces true).
func TestStoriesDirectory(t *testing.T) {
	tk := loadShared(t, "models/stories260K")
	if tk.Kind() != "llama" || tk.VocabSize() != 512 || tk.BOS() != 1 || tk.EOS() != 2 || tk.UNK() != 0 {
		t.Errorf("kind %q vocab %d bos %d eos %d unk %d, want llama 512 1 2 0", tk.Kind(), tk.VocabSize(), tk.BOS(), tk.EOS(), tk.UNK())
	}
	if pad, ok := tk.PAD(); ok {
		t.Errorf("PAD = %d, want none (pad_token null)", pad)
	}
	if !tk.AddBOS() || tk.AddEOS() {
		t.Errorf("AddBOS %v AddEOS %v, want true false", tk.AddBOS(), tk.AddEOS())
	}
	if !slices.Equal(tk.EOSIDs(), []int32{2}) {
		t.Errorf("EOSIDs = %v, want [2]", tk.EOSIDs())
	}
	if tk.ChatTemplate() != "" || tk.Merges() != nil {
		t.Errorf("chat template %q merges %d, want none", tk.ChatTemplate(), len(tk.Merges()))
	}
	if !tk.AddSpacePrefix() || !tk.RemoveExtraWhitespaces() || tk.GGUFPre() != "default" {
		t.Errorf("add_space_prefix %v remove_extra_whitespaces %v pre %q", tk.AddSpacePrefix(), tk.RemoveExtraWhitespaces(), tk.GGUFPre())
	}
	var names []string
	for _, f := range tk.Files() {
		names = append(names, filepath.Base(f))
	}
	if want := []string{"tokenizer.model", "special_tokens_map.json", "tokenizer_config.json"}; !slices.Equal(names, want) {
		t.Errorf("Files = %v, want %v", names, want)
	}
	toks, scores, types := tk.Pieces()
	if !slices.Equal(toks[:4], []string{"<unk>", "<s>", "</s>", "<0x00>"}) || toks[259] != "▁t" || toks[260] != "he" {
		t.Errorf("pieces %q ... %q %q", toks[:4], toks[259], toks[260])
	}
	if !slices.Equal(types[:4], []int32{2, 3, 3, 6}) || types[258] != 6 || types[259] != 1 {
		t.Errorf("types %v ... %d %d", types[:4], types[258], types[259])
	}
	if scores[0] != 0 || scores[259] != 0 || scores[260] != -1 || scores[261] != -2 {
		t.Errorf("scores %v %v %v %v", scores[0], scores[259], scores[260], scores[261])
	}
	for id, want := range map[int32]bool{0: false, 1: true, 2: true, 3: false, 300: false, -1: false, 512: false} {
		if tk.IsControl(id) != want {
			t.Errorf("IsControl(%d) = %v", id, !want)
		}
	}
}

// TestDecodeToken: streaming pieces. "😀" is byte pieces F0 9F 98 80 (ids 243 162 155 131 = 3 +
// byte value); each is one raw byte, and together they are the emoji.
func TestDecodeToken(t *testing.T) {
	tk := loadShared(t, "models/stories260K")
	var stream strings.Builder
	for _, id := range tk.Encode("Hi 😀", true) {
		stream.WriteString(tk.DecodeToken(id))
	}
	if got := stream.String(); got != " Hi 😀" {
		t.Errorf("streamed %q, want %q (dummy prefix kept, BOS empty)", got, " Hi 😀")
	}
	for _, c := range []struct {
		id   int32
		want string
	}{{1, ""}, {2, ""}, {0, "<unk>"}, {243, "\xf0"}, {13, "\n"}, {259, " t"}, {260, "he"}, {-1, ""}, {512, ""}} {
		if got := tk.DecodeToken(c.id); got != c.want {
			t.Errorf("DecodeToken(%d) = %q, want %q", c.id, got, c.want)
		}
	}
}

// TestConcurrentUse: one Tokenizer used from many goroutines gives the same ids (run with -race
// to check for data races).
func TestConcurrentUse(t *testing.T) {
	tk := loadShared(t, "tokenizers/llama2/tokenizer.model")
	texts := []string{"Hello world", " this is 🦙.cpp", "Führer", "нещо на Бълг", "<s> typed </s>"}
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i] = tk.Encode(s, true)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				k := (g + i) % len(texts)
				if got := tk.Encode(texts[k], true); !slices.Equal(got, want[k]) {
					errs <- texts[k]
					return
				}
				if tk.Decode(want[k]) != texts[k] {
					errs <- "decode " + texts[k]
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent mismatch on %q", e)
	}
}

// TestLlama2WithConfig: a Llama 2 directory whose tokenizer_config.json adds a special <pad>
// (32000) and a non-special <|tool|> (32001) past the SentencePiece vocabulary, and asks for EOS.
// Added tokens split all text and each run of text between them gets its own dummy prefix, as in
// Hugging Face's legacy Llama tokenizer and llama.cpp: "a<|tool|>b" is sp("a") + 32001 + sp("b")
// = [263 32001 289] (Python sentencepiece ids of "a" and "b").
func TestLlama2WithConfig(t *testing.T) {
	src := filepath.Join(sharedtest.Dir(t), "tokenizers", "llama2", "tokenizer.model")
	dir := t.TempDir()
	if err := os.Symlink(src, filepath.Join(dir, "tokenizer.model")); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(dir, "tokenizer_config.json"), map[string]any{
		"add_bos_token": true,
		"add_eos_token": true,
		"added_tokens_decoder": map[string]any{
			"0":     map[string]any{"content": "<unk>", "special": true},
			"1":     map[string]any{"content": "<s>", "special": true},
			"2":     map[string]any{"content": "</s>", "special": true},
			"32000": map[string]any{"content": "<pad>", "special": true},
			"32001": map[string]any{"content": "<|tool|>", "special": false},
		},
		"bos_token":     map[string]any{"__type": "AddedToken", "content": "<s>"},
		"eos_token":     "</s>",
		"pad_token":     "<pad>",
		"unk_token":     "<unk>",
		"chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
	})
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pad, hasPad := tk.PAD()
	if tk.VocabSize() != 32002 || !hasPad || pad != 32000 || !tk.AddBOS() || !tk.AddEOS() || tk.EOS() != 2 {
		t.Errorf("vocab %d pad %d %v addBOS %v addEOS %v eos %d", tk.VocabSize(), pad, hasPad, tk.AddBOS(), tk.AddEOS(), tk.EOS())
	}
	if !strings.HasPrefix(tk.ChatTemplate(), "{% for m in messages %}") {
		t.Errorf("ChatTemplate = %q", tk.ChatTemplate())
	}
	toks, scores, types := tk.Pieces()
	// As llama.cpp's converter: added tokens past the model are appended with score -1000, type
	// CONTROL (3) when special, USER_DEFINED (4) otherwise; the model's own pieces are untouched.
	if toks[32000] != "<pad>" || types[32000] != 3 || scores[32000] != -1000 || toks[32001] != "<|tool|>" || types[32001] != 4 {
		t.Errorf("added pieces %q %d %v, %q %d", toks[32000], types[32000], scores[32000], toks[32001], types[32001])
	}
	if !slices.Equal(types[:3], []int32{2, 3, 3}) || scores[1] != 0 {
		t.Errorf("model pieces changed: types %v", types[:3])
	}
	for _, c := range []struct {
		text string
		want []int32
	}{
		{"a<|tool|>b", []int32{263, 32001, 289}},
		{"<pad>", []int32{529, 8305, 29958}}, // plain text: "▁<", "pad", ">"
	} {
		if got := tk.Encode(c.text, false); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	if got := tk.EncodeSpans([]Span{{Text: "Hi<pad>", Special: true}}, true); !slices.Equal(got, []int32{1, 6324, 32000}) {
		t.Errorf("special <pad> = %v, want [1 6324 32000]", got)
	}
	if got := tk.Decode([]int32{1, 263, 32001, 289, 32000, 2}); got != "a<|tool|> b" {
		t.Errorf("Decode = %q, want %q", got, "a<|tool|> b")
	}
}
