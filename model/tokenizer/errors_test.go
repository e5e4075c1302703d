package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ollama/ollama/convert/sentencepiece"
	"google.golang.org/protobuf/proto"
)

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// tokenizerJSONWith is a minimal valid byte-level tokenizer.json with one part replaced.
func tokenizerJSONWith(model, preTokenizer string) []byte {
	if model == "" {
		model = `{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}`
	}
	if preTokenizer == "" {
		preTokenizer = `{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}`
	}
	return []byte(`{"added_tokens": [], "normalizer": null, "pre_tokenizer": ` + preTokenizer + `, "post_processor": null, "model": ` + model + `}`)
}

// TestLoadFileErrors: files that are not (supported) tokenizers give one line naming the file.
func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	unigram, err := proto.Marshal(&sentencepiece.ModelProto{
		Pieces:      []*sentencepiece.ModelProto_SentencePiece{{Piece: proto.String("<unk>"), Type: sentencepiece.ModelProto_SentencePiece_UNKNOWN.Enum()}},
		TrainerSpec: &sentencepiece.TrainerSpec{ModelType: sentencepiece.TrainerSpec_UNIGRAM.Enum()},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		want string // after "<path>: "
	}{
		{"random.bin", randomBytes(1, 4096), "not a tokenizer (neither a SentencePiece model nor a tokenizer.json)"},
		{"random2.bin", randomBytes(2, 100), "not a tokenizer (neither a SentencePiece model nor a tokenizer.json)"},
		{"empty.model", nil, "not a tokenizer (neither a SentencePiece model nor a tokenizer.json)"},
		{"text.txt", []byte("hello, I am a text file\n"), "not a tokenizer (neither a SentencePiece model nor a tokenizer.json)"},
		{"unigram.model", unigram, "model type UNIGRAM is not supported (only BPE)"},
		{"config.json", []byte(`{"architectures": ["LlamaForCausalLM"], "vocab_size": 32000}`), `not a tokenizer.json: no "model" object`},
		{"null-model.json", []byte(`{"model": null}`), `not a tokenizer.json: no "model" object`},
		{"truncated.json", []byte(`{"model": {"type": "BPE"`), "invalid JSON: unexpected end of JSON input"},
		{"wordpiece.json", tokenizerJSONWith(`{"type": "WordPiece", "vocab": {"a": 0}}`, ""), `model type "WordPiece" is not supported (only BPE)`},
		{"metaspace.json", tokenizerJSONWith("", `{"type": "Metaspace", "replacement": "▁"}`), `pre_tokenizer: type "Metaspace" is not supported (supported: ByteLevel, Split, Digits, Sequence)`},
		{"seq-metaspace.json", tokenizerJSONWith("", `{"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}, {"type": "Metaspace"}]}`), `pre_tokenizer: pretokenizers[1]: type "Metaspace" is not supported (supported: ByteLevel, Split, Digits, Sequence)`},
		{"lowercase.json", []byte(strings.Replace(string(tokenizerJSONWith("", "")), `"normalizer": null`, `"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}`, 1)), `normalizer: normalizers[1]: type "Lowercase" is not supported (supported: NFC, NFD, NFKC, NFKD, Sequence)`},
		{"bert-post.json", []byte(strings.Replace(string(tokenizerJSONWith("", "")), `"post_processor": null`, `"post_processor": {"type": "Nope"}`, 1)), `post_processor: type "Nope" is not supported (supported: ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing, Sequence)`},
		{"lookahead.json", tokenizerJSONWith("", `{"type": "Split", "pattern": {"Regex": "\\p{L}+(?=\\d)"}, "behavior": "Isolated", "invert": false}`), "pre_tokenizer: type Split: regex \"\\\\p{L}+(?=\\\\d)\": error parsing regexp: invalid or unsupported Perl syntax: `(?=` (supported: the GPT-2, Llama 3 and Qwen2 pre-tokenizer patterns, or any pattern in RE2 syntax, which has no lookaround)"},
		{"spm-style.json", tokenizerJSONWith(`{"type": "BPE", "byte_fallback": true, "vocab": {"a": 0}, "merges": []}`, "null"), "model: BPE without a ByteLevel pre-tokenizer (SentencePiece-style) is not supported; load its tokenizer.model"},
		{"bad-regex.json", tokenizerJSONWith("", `{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}`), "pre_tokenizer: type Split: regex \"(unclosed\": error parsing regexp: missing closing ): `(unclosed` (supported: the GPT-2, Llama 3 and Qwen2 pre-tokenizer patterns, or any pattern in RE2 syntax, which has no lookaround)"},
		{"removed.json", tokenizerJSONWith("", `{"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": false}`), `pre_tokenizer: type Split: behavior "Removed" (invert false) is not supported (only Isolated)`},
		{"bad-merge.json", tokenizerJSONWith(`{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}`, ""), `model: merge 0 "a b": a token or the merged token is not in the vocabulary`},
		{"dup-id.json", tokenizerJSONWith(`{"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}`, ""), `model: vocab id 0 given to both "a" and "b"`},
		{"empty-vocab.json", tokenizerJSONWith(`{"type": "BPE", "vocab": {}, "merges": []}`, ""), "model: empty vocab"},
	}
	for _, c := range cases {
		path := writeFile(t, filepath.Join(dir, c.name), c.data)
		_, err := LoadFile(path)
		if err == nil {
			t.Errorf("%s: loaded without error", c.name)
			continue
		}
		if got, want := err.Error(), path+": "+c.want; got != want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, want)
		}
	}
	missing := filepath.Join(dir, "missing.model")
	if _, err := LoadFile(missing); err == nil || err.Error() != "reading "+missing+": open "+missing+": no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
}

// TestLoadDirErrors: directory-level problems name the directory or the offending file.
func TestLoadDirErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := Load(empty); err == nil || err.Error() != empty+": no tokenizer.model or tokenizer.json" {
		t.Errorf("empty dir: %v", err)
	}

	garbage := t.TempDir()
	spPath := writeFile(t, filepath.Join(garbage, "tokenizer.model"), randomBytes(3, 512))
	if _, err := Load(garbage); err == nil || err.Error() != spPath+": not a tokenizer (neither a SentencePiece model nor a tokenizer.json)" {
		t.Errorf("garbage tokenizer.model: %v", err)
	}
	// A tokenizer.model that is no SentencePiece model (Llama 3 ships a tiktoken file by that
	// name) yields to tokenizer.json.
	llama3Fixture(t, garbage, true, true)
	if tk, err := Load(garbage); err != nil || tk.Kind() != "gpt2" {
		t.Errorf("tokenizer.json beside a non-SentencePiece tokenizer.model: %v", err)
	}

	for _, c := range []struct {
		config string
		want   string // after "<dir>/tokenizer_config.json: "
	}{
		{`{"eos_token": "<nope>"}`, `eos_token "<nope>" is not in the vocabulary`},
		{`{"bos_token": 7}`, `bos_token: want a string, null or an object with "content"`},
		{`{"add_bos_token": "yes"}`, "add_bos_token: want true or false"},
		{`{"chat_template": 5}`, "chat_template: want a string or a list of {name, template}"},
		{`{"added_tokens_decoder": {"x": {"content": "<a>"}}}`, `added_tokens_decoder: key "x" is not a token id`},
		{`{"added_tokens_decoder": {"-3": {"content": "<a>"}}}`, `added token "<a>": negative id -3`},
		{`{"additional_special_tokens": ["<|nope|>"]}`, `additional special token "<|nope|>" is not in the vocabulary`},
		{`{"bos_token": "<s>",`, "invalid JSON: unexpected end of JSON input"},
	} {
		dir := t.TempDir()
		llama3Fixture(t, dir, true, true)
		cfg := writeFile(t, filepath.Join(dir, "tokenizer_config.json"), []byte(c.config))
		if _, err := Load(dir); err == nil || err.Error() != cfg+": "+c.want {
			t.Errorf("config %s:\n got %v\nwant %s", c.config, err, cfg+": "+c.want)
		}
	}

	// Errors found while indexing the model name tokenizer.json too.
	badMerge := t.TempDir()
	tj := writeFile(t, filepath.Join(badMerge, "tokenizer.json"), tokenizerJSONWith(`{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}`, ""))
	if _, err := Load(badMerge); err == nil || err.Error() != tj+`: model: merge 0 "a b": a token or the merged token is not in the vocabulary` {
		t.Errorf("bad merge in a directory: %v", err)
	}
	farID := t.TempDir()
	tj = writeFile(t, filepath.Join(farID, "tokenizer.json"), tokenizerJSONWith(`{"type": "BPE", "vocab": {"a": 0, "b": 2000000000}, "merges": []}`, ""))
	if _, err := Load(farID); err == nil || err.Error() != tj+": model: vocab id 2000000000 leaves 1999999999 ids unassigned (2 tokens); at most 65536 may be" {
		t.Errorf("far vocab id: %v", err)
	}
	tj = writeFile(t, filepath.Join(farID, "tokenizer.json"), []byte(strings.Replace(string(tokenizerJSONWith("", "")), `"added_tokens": []`, `"added_tokens": [{"id": 2147483647, "content": "<x>", "special": true}]`, 1)))
	if _, err := Load(farID); err == nil || err.Error() != tj+`: added_tokens[0]: added token "<x>": id 2147483647 lies 2147483644 ids past the end of the vocabulary (3 tokens); at most 65536 may` {
		t.Errorf("far added id: %v", err)
	}

	dir := t.TempDir()
	llama3Fixture(t, dir, true, true)
	gen := writeFile(t, filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": [297, 100000]}`))
	if _, err := Load(dir); err == nil || err.Error() != gen+": eos_token_id 100000 out of range [0, 299)" {
		t.Errorf("generation_config: %v", err)
	}
}

// TestWriterErrors: WriteSentencePieceModel refuses what could not be loaded back, writes
// nothing then, and names the file.
func TestWriterErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokenizer.model")
	good := demoPieces(true)
	withPiece := func(i int, p Piece) []Piece {
		out := append([]Piece(nil), good...)
		out[i] = p
		return out
	}
	cases := []struct {
		name   string
		pieces []Piece
		opts   SPOptions
		want   string // after "writing <path>: "
	}{
		{"no unk", good[1:], SPOptions{ByteFallback: true}, `no unknown piece "<unk>"`},
		{"unk not unknown", withPiece(0, Piece{"<unk>", 0, TypeControl}), SPOptions{ByteFallback: true}, "trainer_spec unk_id 0 is not a piece of type UNKNOWN"},
		{"empty text", withPiece(280, Piece{"", 0, TypeNormal}), SPOptions{ByteFallback: true}, "piece 280: empty text"},
		{"duplicate", withPiece(280, Piece{"▁t", 0, TypeNormal}), SPOptions{ByteFallback: true}, `piece 280 "▁t": duplicate of piece 259`},
		{"bad type", withPiece(280, Piece{"zz", 0, 9}), SPOptions{ByteFallback: true}, `piece 280 "zz": type 9 out of range 1..6`},
		{"bad byte piece", withPiece(280, Piece{"<0xZZ>", 0, TypeByte}), SPOptions{ByteFallback: true}, `piece 280 "<0xZZ>": byte piece not of the form <0xHH>`},
		{"missing byte", withPiece(3, Piece{"q", 0, TypeNormal}), SPOptions{ByteFallback: true}, "byte_fallback needs byte piece <0x00> of type BYTE"},
		{"bytes without fallback", good, SPOptions{}, "256 byte pieces but byte_fallback is false"},
		{"custom unk", good, SPOptions{ByteFallback: true, UnkPiece: "[UNK]"}, `no unknown piece "[UNK]"`},
	}
	for _, c := range cases {
		err := WriteSentencePieceModel(path, c.pieces, c.opts)
		if err == nil || err.Error() != "writing "+path+": "+c.want {
			t.Errorf("%s:\n got %v\nwant writing %s: %s", c.name, err, path, c.want)
		}
		if _, err := NewSentencePiece(c.pieces, c.opts); err == nil || err.Error() != "sentencepiece pieces: "+c.want {
			t.Errorf("NewSentencePiece %s: %v", c.name, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left %d files behind", len(entries))
	}
	if err := WriteSentencePieceModel(filepath.Join(dir, "no", "such", "dir", "tokenizer.model"), good, SPOptions{ByteFallback: true}); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
