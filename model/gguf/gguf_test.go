package gguf

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model"
)

// rawTensor returns a tensor's encoded bytes straight from the file.
func rawTensor(t *testing.T, f *File, name string) []byte {
	t.Helper()
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("%s: no tensor %s", f.Path, name)
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, ti.Bytes())
	if _, err := fh.ReadAt(b, int64(f.DataOffset+ti.Offset)); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStories260KMatchesLlamaCppConverter writes the HF stories260K as an F32 GGUF and compares it with
// stories260K-f32.gguf, which llama.cpp's convert_hf_to_gguf.py made from the same checkpoint: every tensor
// must have the same name, ggml dims, type and bytes (so the Q/K permutation and dim order are llama.cpp's),
// and the metadata must agree key by key, apart from the listed intentional differences.
func TestStories260KMatchesLlamaCppConverter(t *testing.T) {
	w := loadStories(t)
	out := filepath.Join(t.TempDir(), "stories.gguf")
	if err := Write(out, w, storiesTokenizer(t), WriteOptions{Name: "stories260K", Dtype: "f32"}); err != nil {
		t.Fatal(err)
	}
	ref, err := Open(filepath.Join(storiesDir(t), "stories260K-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}

	if len(got.Tensors) != len(ref.Tensors) {
		t.Fatalf("wrote %d tensors, llama.cpp's file has %d", len(got.Tensors), len(ref.Tensors))
	}
	for i, rt := range ref.Tensors {
		gt := got.Tensors[i] // same order as convert_hf_to_gguf.py, too
		if gt.Name != rt.Name || !reflect.DeepEqual(gt.Dims, rt.Dims) || gt.Type != rt.Type {
			t.Fatalf("tensor %d: wrote %s %v %s, llama.cpp has %s %v %s", i, gt.Name, gt.Dims, gt.Type, rt.Name, rt.Dims, rt.Type)
		}
		if !bytes.Equal(rawTensor(t, got, gt.Name), rawTensor(t, ref, rt.Name)) {
			t.Errorf("tensor %s: bytes differ from llama.cpp's", rt.Name)
		}
	}

	// Intentional differences: general.alignment is written explicitly (32, llama.cpp's default, which
	// the converter leaves implicit), and tokenizer.ggml.pre is left to the integrator (the converter
	// wrote "default", which is also what llama.cpp assumes when the key is absent).
	onlyOurs := map[string]any{"general.alignment": uint32(32)}
	onlyTheirs := map[string]any{"tokenizer.ggml.pre": "default"}
	for _, k := range ref.KVOrder {
		rv := ref.KV[k]
		gv, ok := got.KV[k]
		if want, skip := onlyTheirs[k]; skip {
			if ok || !reflect.DeepEqual(rv, want) {
				t.Errorf("%s: ours %v (present %v), llama.cpp %v: not the listed difference", k, gv, ok, rv)
			}
			continue
		}
		if !ok {
			t.Errorf("metadata %s (= %v) is missing", k, rv)
			continue
		}
		if !reflect.DeepEqual(gv, rv) {
			t.Errorf("metadata %s: wrote %#v, llama.cpp has %#v", k, gv, rv)
		}
	}
	for _, k := range got.KVOrder {
		if _, ok := ref.KV[k]; ok {
			continue
		}
		if want, listed := onlyOurs[k]; !listed || !reflect.DeepEqual(got.KV[k], want) {
			t.Errorf("metadata %s = %#v is not in llama.cpp's file and not a listed difference", k, got.KV[k])
		}
	}
}

// TestLoadLlamaCppStories260K reads llama.cpp's own GGUF back into HF form: the tensors must equal
// model.safetensors bit for bit (so the inverse permutation is exact), the configuration must equal
// config.json's, and the tokenizer must be the SentencePiece model's.
func TestLoadLlamaCppStories260K(t *testing.T) {
	want := loadStories(t)
	w, tok, err := LoadWeights(filepath.Join(storiesDir(t), "stories260K-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	requireSameWeights(t, w, want)
	if !reflect.DeepEqual(w.Config, want.Config) {
		t.Errorf("config from GGUF:\n%+v\nconfig.json:\n%+v", w.Config, want.Config)
	}
	wantTok := storiesTokenizer(t)
	wantTok.Pre = "default"
	if !reflect.DeepEqual(tok, wantTok) {
		t.Errorf("tokenizer from GGUF differs from tokenizer.model: got %+v", tok)
	}
}

// TestRoundTripStories260K: HF -> GGUF f32 -> LoadWeights gives back the same tensors, config and tokenizer.
func TestRoundTripStories260K(t *testing.T) {
	want := loadStories(t)
	tok := storiesTokenizer(t)
	tok.ChatTemplate = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
	out := filepath.Join(t.TempDir(), "rt.gguf")
	if err := Write(out, want, tok, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	w, gotTok, err := LoadWeights(out)
	if err != nil {
		t.Fatal(err)
	}
	requireSameWeights(t, w, want)
	if !reflect.DeepEqual(w.Config, want.Config) {
		t.Errorf("config:\n%+v\nwant:\n%+v", w.Config, want.Config)
	}
	if !reflect.DeepEqual(gotTok, tok) {
		t.Errorf("tokenizer did not round-trip: %+v", gotTok)
	}
	f, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if name, _, _ := f.String("general.name"); name != "rt" {
		t.Errorf("default general.name = %q, want the file stem \"rt\"", name)
	}
}

// TestRoundTripRandom covers the shapes stories260K lacks: Mixtral experts (stacked 3-D tensors and the
// F32 router), head_dim != D/H, an untied lm_head, a Mistral sliding window, and the vocabulary padding.
func TestRoundTripRandom(t *testing.T) {
	mistral := gqaConfig()
	mistral.Architectures, mistral.ModelType, mistral.SlidingWindow = []string{"MistralForCausalLM"}, "mistral", 8
	mistral.TieWordEmbeddings = false
	cases := []struct {
		name string
		cfg  model.Config
		want map[string]string // tensor -> type/dims expected in the file
	}{
		{"mixtral", mixtralConfig(), map[string]string{
			"blk.1.ffn_gate_exps.weight": "F32 [64 96 4]", "blk.1.ffn_down_exps.weight": "F32 [96 64 4]",
			"blk.1.ffn_up_exps.weight": "F32 [64 96 4]", "blk.0.ffn_gate_inp.weight": "F32 [64 4]",
			"output.weight": "F32 [64 300]", "blk.0.attn_k.weight": "F32 [64 32]",
		}},
		{"gqa-headdim", gqaConfig(), map[string]string{"blk.2.attn_q.weight": "F32 [48 96]", "blk.2.attn_output.weight": "F32 [96 48]"}},
		{"mistral-window", mistral, map[string]string{"output.weight": "F32 [48 280]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := randomWeights(t, tc.cfg, 11, 0.2)
			tok := syntheticTokenizer(tc.cfg.VocabSize - 5) // padded with 5 [PADn] pieces on write
			out := filepath.Join(t.TempDir(), "m.gguf")
			if err := Write(out, want, tok, WriteOptions{Dtype: "f32"}); err != nil {
				t.Fatal(err)
			}
			f, err := Open(out)
			if err != nil {
				t.Fatal(err)
			}
			for name, desc := range tc.want {
				ti, ok := f.Tensor(name)
				if got := fmt.Sprintf("%s %v", ti.Type, ti.Dims); !ok || got != desc {
					t.Errorf("%s: got %s (present %v), want %s", name, got, ok, desc)
				}
			}
			w, gotTok, err := LoadWeights(out)
			if err != nil {
				t.Fatal(err)
			}
			requireSameWeights(t, w, want)
			wantCfg := want.Config
			if wantCfg.IsMoE() {
				wantCfg.RouterAuxLossCoef = 0.001 // not in GGUF: transformers' default comes back
			}
			if !reflect.DeepEqual(w.Config, wantCfg) {
				t.Errorf("config:\n%+v\nwant:\n%+v", w.Config, wantCfg)
			}
			if n := len(gotTok.Tokens); n != tc.cfg.VocabSize || gotTok.Tokens[n-1] != fmt.Sprintf("[PAD%d]", n-1) || gotTok.Types[n-1] != TokenUnused || gotTok.Scores[n-1] != -1000 {
				t.Errorf("padded vocabulary ends %q type %d score %v, want [PAD%d] unused -1000", gotTok.Tokens[n-1], gotTok.Types[n-1], gotTok.Scores[n-1], n-1)
			}
		})
	}
}

// TestLoadPerExpertMixtral reads the older Mixtral GGUF layout, one 2-D tensor per expert
// (blk.N.ffn_gate.E.weight, ...), which llama.cpp still loads, into the same HF weights.
func TestLoadPerExpertMixtral(t *testing.T) {
	want := randomWeights(t, mixtralConfig(), 8, 0.2)
	tok := syntheticTokenizer(want.Config.VocabSize)
	kvs := modelKV(want.Config, "old", fileTypeAllF32)
	tkv, err := tokenizerKV(tok, want.Config.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	var tensors []outTensor
	for _, ot := range modelTensors(want) {
		base, isExps := strings.CutSuffix(ot.name, "_exps.weight")
		if !isExps {
			tensors = append(tensors, ot)
			continue
		}
		per := ot.dims[0] * ot.dims[1]
		for e := uint64(0); e < ot.dims[2]; e++ {
			tensors = append(tensors, outTensor{name: fmt.Sprintf("%s.%d.weight", base, e), dims: ot.dims[:2], data: ot.data[e*per : (e+1)*per]})
		}
	}
	for i := range tensors {
		tensors[i].typ = TypeF32
	}
	path := filepath.Join(t.TempDir(), "old.gguf")
	if err := writeFile(path, append(kvs, tkv...), tensors, defaultAlign); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensor("blk.1.ffn_down.3.weight"); !ok {
		t.Fatal("test file lacks per-expert tensors")
	}
	got, _, err := LoadWeights(path)
	if err != nil {
		t.Fatal(err)
	}
	requireSameWeights(t, got, want)
}
