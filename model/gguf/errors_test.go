package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/hf"
)

// tinyGGUF is a small valid file: two metadata entries (a string, a string array) and two tensors, "a"
// F32 [32 2] (256 bytes at offset 0) and "b" Q8_0 [64] (68 bytes at offset 256).
func tinyGGUF(t *testing.T, extra ...kv) []byte {
	t.Helper()
	a := make([]float32, 64)
	b := make([]float32, 64)
	for i := range a {
		a[i], b[i] = float32(i), float32(-i)/8
	}
	kvs := append([]kv{{"general.architecture", "llama"}, {"t.arr", []string{"x", "yz"}}}, extra...)
	var buf bytes.Buffer
	err := encodeGGUF(&buf, kvs, []outTensor{
		{name: "a", dims: []uint64{32, 2}, typ: TypeF32, data: a},
		{name: "b", dims: []uint64{64}, typ: TypeQ8_0, data: b},
	}, defaultAlign)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// at returns the offset just after the first occurrence of marker in data.
func at(t *testing.T, data []byte, marker string) int {
	t.Helper()
	i := bytes.Index(data, []byte(marker))
	if i < 0 {
		t.Fatalf("marker %q not found", marker)
	}
	return i + len(marker)
}

func putU32(data []byte, off int, v uint32) []byte {
	out := bytes.Clone(data)
	binary.LittleEndian.PutUint32(out[off:], v)
	return out
}

func putU64(data []byte, off int, v uint64) []byte {
	out := bytes.Clone(data)
	binary.LittleEndian.PutUint64(out[off:], v)
	return out
}

func TestOpenRejectsBadInput(t *testing.T) {
	good := tinyGGUF(t)
	size := len(good)
	// Layout of good: magic 0, version 4, tensor count 8, metadata count 16; "general.architecture"
	// key ends at 52, its type at 52..56, its string length at 56; the "t.arr" array's element type
	// and count follow the key; tensor "b"'s info is name, n_dims, dims, type, offset.
	archType := at(t, good, "general.architecture")
	arrCount := at(t, good, "t.arr") + 8
	bInfo := at(t, good, "\x01\x00\x00\x00\x00\x00\x00\x00b") // name length 1, then "b"
	bDims := bInfo + 4
	bType := bDims + 8
	bOffset := bType + 4
	aInfo := at(t, good, "\x01\x00\x00\x00\x00\x00\x00\x00a")
	dataStart := size - 256 - 96 // "a" is 256 bytes, "b" 68 bytes padded to 96

	cases := []struct {
		name string
		data []byte
		want string // after "PATH: "
	}{
		{"empty", nil, "truncated GGUF: the 0-byte file ends inside the header"},
		{"bad magic", append([]byte("GGML"), good[4:]...), `not a GGUF file (starts with "GGML", want "GGUF")`},
		{"version 1", putU32(good, 4, 1), "GGUF version 1 is not supported (want 2 or 3)"},
		{"version 4", putU32(good, 4, 4), "GGUF version 4 is not supported (want 2 or 3)"},
		{"big-endian", putU32(good, 4, 3<<24), "big-endian GGUF (version 3) is not supported"},
		{"absurd tensor count", putU64(good, 8, 1<<40),
			fmt.Sprintf("corrupt or truncated GGUF: the header: tensor count 1099511627776 is impossible with %d bytes left in the %d-byte file", size-16, size)},
		{"absurd metadata count", putU64(good, 16, 1<<62),
			fmt.Sprintf("corrupt or truncated GGUF: the header: metadata count 4611686018427387904 is impossible with %d bytes left in the %d-byte file", size-24, size)},
		{"counts that cannot fit together", putU64(putU64(good, 8, uint64(size/24-1)), 16, uint64(size/13-2)),
			fmt.Sprintf("corrupt or truncated GGUF: %d tensors and %d metadata entries cannot fit in the %d-byte file", size/24-1, size/13-2, size)},
		{"absurd string length", putU64(good, archType+4, 1<<50),
			fmt.Sprintf(`corrupt or truncated GGUF: metadata key 1 of 2 ("general.architecture"): string (1125899906842624 bytes at offset %d) runs past the end of the %d-byte file`, archType+12, size)},
		{"absurd array length", putU64(good, arrCount, 1<<59),
			fmt.Sprintf(`corrupt or truncated GGUF: metadata key 2 of 2 ("t.arr"): array length 576460752303423488 is impossible with %d bytes left in the %d-byte file`, size-arrCount-8, size)},
		{"unknown value type", putU32(good, archType, 13), `corrupt GGUF: metadata key 1 of 2 ("general.architecture"): unknown value type 13`},
		{"unknown array element type", putU32(good, arrCount-4, 77), `corrupt GGUF: metadata key 2 of 2 ("t.arr"): unknown array element type 77`},
		{"too many dims", putU32(good, bInfo, 5), `corrupt GGUF: tensor info 2 of 2 ("b"): 5 dimensions (ggml allows at most 4)`},
		{"unknown ggml type", putU32(good, bType, 99), `corrupt GGUF: tensor info 2 of 2 ("b"): unknown ggml type 99`},
		{"row not whole blocks", putU64(good, bDims, 48), `corrupt GGUF: tensor info 2 of 2 ("b"): row length 48 is not a multiple of the Q8_0 block size 32`},
		{"overflowing dims", putU64(good, aInfo+4, 1<<62), `corrupt GGUF: tensor info 1 of 2 ("a"): dimensions [4611686018427387904 2] overflow`},
		{"misaligned offset", putU64(good, bOffset, 260), `corrupt GGUF: tensor "b" offset 260 is not a multiple of the alignment 32`},
		{"overlapping tensors", putU64(good, bOffset, 224), `corrupt GGUF: tensors "a" and "b" overlap`},
		{"offset past the end", putU64(good, bOffset, 1<<20),
			fmt.Sprintf(`truncated GGUF: tensor "b" needs bytes %d to %d but the file is %d bytes`, dataStart+1<<20, dataStart+1<<20+68, size)},
		{"truncated tensor data", good[:size-40],
			fmt.Sprintf(`truncated GGUF: tensor "b" needs bytes %d to %d but the file is %d bytes`, dataStart+256, dataStart+256+68, size-40)},
		{"truncated in a tensor info", good[:bType+2], fmt.Sprintf(`truncated GGUF: the %d-byte file ends inside tensor info 2 of 2 ("b")`, bType+2)},
		// Inside the array's second string "yz" ("x" took 8+1 bytes after the count, "yz" has its 8-byte
		// length and then 1 of its 2 bytes).
		{"truncated in metadata", good[:arrCount+8+9+8+1], fmt.Sprintf(`corrupt or truncated GGUF: metadata key 2 of 2 ("t.arr"): array string 1 (2 bytes at offset %d) runs past the end of the %d-byte file`, arrCount+8+9+8, arrCount+8+9+8+1)},
		{"truncated after the header", good[:24], "corrupt or truncated GGUF: the header: tensor count 2 is impossible with 8 bytes left in the 24-byte file"},
		{"duplicate key", bytes.Replace(good, []byte("t.arr"), []byte("t.arx"), 1), ""}, // control: a renamed key is fine
		{"bad alignment", tinyGGUF(t, kv{"general.alignment", uint32(48)}), "general.alignment = 48 must be a power-of-two uint32"},
		{"bool out of range", tinyGGUF(t, kv{"flag", true}), ""}, // control for the next case
		{"empty key", putU64(good, 24, 0), `corrupt GGUF: metadata key 1 of 2 (""): key is empty or not UTF-8`},
		{"key not UTF-8", bytes.Replace(good, []byte("t.arr"), []byte("t.\xffrr"), 1), `corrupt GGUF: metadata key 2 of 2 ("t.\xffrr"): key is empty or not UTF-8`},
		{"empty tensor name", putU64(good, bInfo-9, 0), `corrupt GGUF: tensor info 2 of 2 (""): a tensor name must be 1 to 63 bytes of UTF-8`},
		{"duplicate tensor", bytes.Replace(good, []byte("\x01\x00\x00\x00\x00\x00\x00\x00b"), []byte("\x01\x00\x00\x00\x00\x00\x00\x00a"), 1),
			`corrupt GGUF: tensor "a" appears twice`},
		// 2^61 * 2 = 2^62 elements fit in an int64, but 2^62 float32s are 2^64 bytes.
		{"byte size overflows", putU64(good, aInfo+4, 1<<61), `corrupt GGUF: tensor info 1 of 2 ("a"): byte size overflows`},
		{"arrays nested too deep", tinyGGUF(t, kv{"deep", nestArrays(maxArrayDepth + 1)}),
			fmt.Sprintf(`corrupt GGUF: metadata key 3 of 3 ("deep"): arrays nested more than %d deep`, maxArrayDepth)},
		{"arrays nested to the limit", tinyGGUF(t, kv{"deep", nestArrays(maxArrayDepth)}), ""}, // control
		// The header ends at bOffset+8; the data section starts at the next multiple of 32.
		{"truncated at the end of the header", good[:bOffset+8],
			fmt.Sprintf("truncated GGUF: the tensor data should start at byte %d but the file is %d bytes", dataStart, bOffset+8)},
	}
	flags := tinyGGUF(t, kv{"flags", []bool{true, false}})
	cases = append(cases, struct {
		name string
		data []byte
		want string
	}{"bool array element 2", func() []byte {
		d := bytes.Clone(flags)
		d[at(t, d, "flags")+4+4+8+1] = 2 // after the value type, element type and count: element 1
		return d
	}(), `corrupt GGUF: metadata key 3 of 3 ("flags"): bool element 1 is 2, neither 0 nor 1`})
	flagged := tinyGGUF(t, kv{"flag", true})
	cases = append(cases, struct {
		name string
		data []byte
		want string
	}{"bool value 2", func() []byte {
		d := bytes.Clone(flagged)
		d[at(t, d, "flag")+4] = 2
		return d
	}(), `corrupt GGUF: metadata key 3 of 3 ("flag"): bool value 2 is neither 0 nor 1`})
	dup := tinyGGUF(t, kv{"t.arx", "dup"})
	cases = append(cases, struct {
		name string
		data []byte
		want string
	}{"duplicate metadata key", bytes.Replace(dup, []byte("t.arx"), []byte("t.arr"), 1), `corrupt GGUF: metadata key "t.arr" appears twice`})

	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("case%d.gguf", i))
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path)
			if c.want == "" {
				if err != nil {
					t.Fatalf("control case failed: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Open succeeded, want %q", c.want)
			}
			if want := path + ": " + c.want; err.Error() != want {
				t.Fatalf("error\n got: %s\nwant: %s", err, want)
			}
		})
	}
}

// nestArrays returns an array of arrays depth levels deep (counting the outermost) around a []int32.
func nestArrays(depth int) any {
	var v any = []int32{1}
	for i := 1; i < depth; i++ {
		v = []any{v}
	}
	return v
}

// TestReadTensorTypes decodes the tiny file's F32 and Q8_0 tensors and refuses types it cannot decode.
func TestReadTensorTypes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := os.WriteFile(path, tinyGGUF(t), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.ReadTensor("a")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a.Shape) != "[2 32]" || a.Data[33] != 33 {
		t.Errorf("a: shape %v, a[33] = %v; want [2 32] (torch order) and 33", a.Shape, a.Data[33])
	}
	b, err := f.ReadTensor("b")
	if err != nil {
		t.Fatal(err)
	}
	// Block 0 of b is -j/8 for j < 32: amax 31/8, d = 31/8/127; -1/8 quantises to round(-127/31) = -4.
	if want := -4 * hf.F16ToF32(f32ToF16(31.0/8/127)); b.Data[1] != want {
		t.Errorf("b[1] = %v, want %v", b.Data[1], want)
	}
	if _, err := f.ReadTensor("c"); err == nil || err.Error() != path+`: no tensor "c"` {
		t.Errorf("missing tensor: %v", err)
	}
	// The same bytes with "b" relabelled I8 (64 one-byte elements fit in its 68 bytes): a type the parser
	// knows and size-checks but that ReadTensor does not decode.
	i8 := bytes.Clone(tinyGGUF(t))
	off := at(t, i8, "\x01\x00\x00\x00\x00\x00\x00\x00b") + 4 + 8
	binary.LittleEndian.PutUint32(i8[off:], 24)
	if err := os.WriteFile(path, i8, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadTensor("b"); err == nil || err.Error() != path+`: tensor "b": type I8 cannot be read (alignkit reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)` {
		t.Errorf("I8 tensor: %v", err)
	}
}

// TestReadTensorAfterTruncation: Open checks every tensor against the file's size, but the file can shrink
// before ReadTensor; the short read is then reported as a truncated GGUF, not a bare EOF.
func TestReadTensorAfterTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	good := tinyGGUF(t)
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(len(good)-40)); err != nil { // inside "b", the last tensor
		t.Fatal(err)
	}
	if _, err := f.ReadTensor("a"); err != nil {
		t.Errorf("tensor a is still whole: %v", err)
	}
	if _, err := f.ReadTensor("b"); err == nil || err.Error() != path+`: truncated GGUF: tensor "b" runs past the end of the file` {
		t.Errorf("error %v, want the truncation of tensor b", err)
	}
}

// TestMetadataRoundTrip writes every metadata type, arrays of every element type and an array of arrays,
// and reads them back as the same Go values.
func TestMetadataRoundTrip(t *testing.T) {
	kvs := []kv{
		{"u8", uint8(200)}, {"i8", int8(-5)}, {"u16", uint16(60000)}, {"i16", int16(-30000)},
		{"u32", uint32(4e9)}, {"i32", int32(-2e9)}, {"u64", uint64(1) << 63}, {"i64", int64(-1) << 62},
		{"f32", float32(1e-5)}, {"f64", 1e-300}, {"bool", true}, {"str", "héllo"}, {"empty", ""},
		{"a.u8", []uint8{1, 2}}, {"a.i8", []int8{-1}}, {"a.u16", []uint16{7}}, {"a.i16", []int16{-7}},
		{"a.u32", []uint32{9, 10}}, {"a.i32", []int32{-9}}, {"a.u64", []uint64{11}}, {"a.i64", []int64{-11}},
		{"a.f32", []float32{0.5}}, {"a.f64", []float64{0.25}}, {"a.bool", []bool{true, false}},
		{"a.str", []string{"", "x"}}, {"a.none", []string{}},
		{"a.nested", []any{[]int32{1, 2}, []string{"p"}, []any{[]bool{true}}}},
	}
	var buf bytes.Buffer
	if err := encodeGGUF(&buf, kvs, nil, defaultAlign); err != nil {
		t.Fatal(err)
	}
	f, err := parse(bytes.NewReader(buf.Bytes()), uint64(buf.Len()), "meta.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.KVOrder) != len(kvs) {
		t.Fatalf("read %d keys, wrote %d", len(f.KVOrder), len(kvs))
	}
	for i, m := range kvs {
		if f.KVOrder[i] != m.key {
			t.Errorf("key %d is %q, want %q", i, f.KVOrder[i], m.key)
		}
		if got := f.KV[m.key]; fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", m.val, m.val) {
			t.Errorf("%s: read %T %v, wrote %T %v", m.key, got, got, m.val, m.val)
		}
	}
	if x, _, _ := f.Float("f32"); x != 1e-5 {
		t.Errorf("Float(f32) = %v, want 1e-5 (shortest float32 decimal)", x)
	}
	var bad bytes.Buffer
	if err := encodeGGUF(&bad, []kv{{"x", []any{int32(1)}}}, nil, defaultAlign); err == nil || err.Error() != "metadata x: element 0 of an array of arrays is a int32" {
		t.Errorf("scalar inside an array of arrays: %v", err)
	}
}

// rewriteStories copies llama.cpp's stories260K GGUF with metadata edited by kvEdit and tensors
// dropped/added, for LoadWeights error tests.
func rewriteStories(t *testing.T, kvEdit func(map[string]any), drop string, add *outTensor) string {
	t.Helper()
	src, err := Open(filepath.Join(storiesDir(t), "stories260K-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]any{}
	for k, v := range src.KV {
		meta[k] = v
	}
	kvEdit(meta)
	var kvs []kv
	for _, k := range src.KVOrder {
		if v, ok := meta[k]; ok {
			kvs = append(kvs, kv{k, v})
			delete(meta, k)
		}
	}
	for k, v := range meta {
		kvs = append(kvs, kv{k, v})
	}
	var tensors []outTensor
	for _, ti := range src.Tensors {
		if ti.Name == drop {
			continue
		}
		tn, err := src.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, outTensor{name: ti.Name, dims: ti.Dims, typ: ti.Type, data: tn.Data})
	}
	if add != nil {
		tensors = append(tensors, *add)
	}
	path := filepath.Join(t.TempDir(), "edited.gguf")
	if err := writeFile(path, kvs, tensors, defaultAlign); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadWeightsRejects(t *testing.T) {
	none := func(map[string]any) {}
	cases := []struct {
		name string
		edit func(map[string]any)
		drop string
		add  *outTensor
		want string // after "PATH: "
	}{
		{"other architecture", func(m map[string]any) { m["general.architecture"] = "gemma" }, "", nil,
			`architecture "gemma" is not supported (alignkit loads llama, qwen2, qwen3, qwen3moe GGUFs)`},
		{"missing block count", func(m map[string]any) { delete(m, "llama.block_count") }, "", nil,
			"metadata key llama.block_count is missing"},
		{"block count of the wrong type", func(m map[string]any) { m["llama.block_count"] = "five" }, "", nil,
			"llama.block_count: is a string, want an integer"},
		{"partial rotary", func(m map[string]any) { m["llama.rope.dimension_count"] = uint32(4) }, "", nil,
			"llama.rope.dimension_count 4 rotates part of the 8-wide heads, which alignkit's RoPE does not support"},
		{"rope scaling", func(m map[string]any) { m["llama.rope.scaling.type"] = "yarn" }, "", nil,
			`llama.rope.scaling.type "yarn" is not supported by alignkit's model (supported: none, or Llama 3's rope_freqs.weight)`},
		{"missing tensor", none, "blk.4.ffn_up.weight", nil, "tensor blk.4.ffn_up.weight is missing"},
		{"unknown tensor", none, "", &outTensor{name: "blk.0.attn_q_norm.weight", dims: []uint64{8}, typ: TypeF32, data: make([]float32, 8)},
			"tensor blk.0.attn_q_norm.weight is not part of a llama model alignkit can load"},
		{"rope_freqs of zeros", none, "", &outTensor{name: "rope_freqs.weight", dims: []uint64{4}, typ: TypeF32, data: make([]float32, 4)},
			"rope_scaling.factor = 0: want a finite number >= 1"},
		{"rope_freqs off the llama3 rule", none, "", &outTensor{name: "rope_freqs.weight", dims: []uint64{4}, typ: TypeF32, data: []float32{1, 2, 3, 8}},
			"rope_freqs.weight[1] = 2, but llama3 rope scaling with factor 8, low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192 gives 1"},
		{"wrong shape", func(m map[string]any) { m["llama.feed_forward_length"] = uint32(171) }, "", nil,
			"tensor blk.0.ffn_gate.weight has shape [172 64], the metadata implies [171 64]"},
		{"zero heads", func(m map[string]any) { m["llama.attention.head_count"] = uint32(0) }, "", nil,
			"llama.attention.head_count is 0"},
		{"context length out of range", func(m map[string]any) { m["llama.context_length"] = uint64(1) << 32 }, "", nil,
			"llama.context_length = 4294967296 is out of range"},
		{"value length differs", func(m map[string]any) { m["llama.attention.value_length"] = uint32(4) }, "", nil,
			"value_length 4 differs from key_length 8, which alignkit's attention does not support"},
		{"missing rms epsilon", func(m map[string]any) { delete(m, "llama.attention.layer_norm_rms_epsilon") }, "", nil,
			"metadata key llama.attention.layer_norm_rms_epsilon is missing"},
		{"rms epsilon of the wrong type", func(m map[string]any) { m["llama.attention.layer_norm_rms_epsilon"] = "small" }, "", nil,
			"llama.attention.layer_norm_rms_epsilon is a string, want a float"},
		{"missing token embedding", none, "token_embd.weight", nil, "tensor token_embd.weight is missing"},
		{"token id outside the vocabulary", func(m map[string]any) { m["tokenizer.ggml.eos_token_id"] = uint32(512) }, "", nil,
			"tokenizer.ggml.eos_token_id 512 is outside the vocabulary (512 tokens)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := rewriteStories(t, c.edit, c.drop, c.add)
			_, _, err := LoadWeights(path)
			if err == nil || err.Error() != path+": "+c.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, path+": "+c.want)
			}
		})
	}
}

func TestWriteRejects(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.gguf")
	good := randomWeights(t, gqaConfig(), 3, 0.02)
	tok := syntheticTokenizer(gqaConfig().VocabSize)

	reward := gqaConfig()
	reward.Architectures, reward.NumLabels = []string{"LlamaForSequenceClassification"}, 1
	missing := good.Clone()
	delete(missing.Tensors, model.LayerKey(1, "mlp.up_proj.weight"))
	tooMany := syntheticTokenizer(gqaConfig().VocabSize + 1)
	dupTok := syntheticTokenizer(gqaConfig().VocabSize)
	dupTok.Tokens[300-30] = dupTok.Tokens[10]
	badID := syntheticTokenizer(gqaConfig().VocabSize)
	badID.EOS = 280
	gpt2Merges := syntheticTokenizer(gqaConfig().VocabSize)
	gpt2Merges.Merges = []string{"a b"}

	cases := []struct {
		name  string
		w     *model.Weights
		tok   *TokenizerInfo
		dtype string
		want  string
	}{
		{"reward model", randomWeights(t, reward, 1, 0.02), tok, "f16",
			"reward models cannot be exported to GGUF: llama.cpp's llama architecture has no score head"},
		{"unknown dtype", good, tok, "q4_k", `unknown dtype "q4_k" (valid: f32, f16, q8_0, q4_0)`},
		{"upper-case dtype", good, tok, "F16", `unknown dtype "F16" (valid: f32, f16, q8_0, q4_0)`},
		{"no tokenizer", good, nil, "f32", "a tokenizer is required: llama.cpp cannot run a GGUF without one"},
		{"missing tensor", missing, tok, "f32", `weights to export: tensor "model.layers.1.mlp.up_proj.weight" is missing`},
		{"tokenizer larger than the vocabulary", good, tooMany, "f32", "tokenizer has 281 tokens but the model's vocab_size is 280"},
		{"duplicate token", good, dupTok, "f32", `tokenizer tokens 10 and 270 are both "<0x07>"`},
		{"special id outside the vocabulary", good, badID, "f32", "tokenizer.ggml.eos_token_id 280 is outside the vocabulary (280 tokens; -1 means none)"},
		{"merges for SentencePiece", good, gpt2Merges, "f32", `tokenizer model "llama" has no merges, got 1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Write(path, c.w, c.tok, WriteOptions{Dtype: c.dtype})
			if want := "writing " + path + ": " + c.want; err == nil || err.Error() != want {
				t.Fatalf("error\n got: %v\nwant: %s", err, want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("a failed Write left %s behind (stat: %v)", path, err)
			}
		})
	}
}

// TestWriteIsAtomic: a write that fails half-way leaves the previous file untouched and no temporary file;
// a successful one replaces it.
func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(path, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The tensor list is streamed after the metadata; an unencodable tensor fails mid-file.
	err := writeFile(path, []kv{{"general.architecture", "llama"}}, []outTensor{{name: "x", dims: []uint64{3}, typ: TypeQ8_0, data: make([]float32, 3)}}, defaultAlign)
	if err == nil {
		t.Fatal("writing a 3-value Q8_0 tensor succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "previous" {
		t.Fatalf("failed write changed the target to %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("failed write left %d files in the directory, want only the target", len(entries))
	}
	w := randomWeights(t, gqaConfig(), 1, 0.02)
	if err := Write(path, w, syntheticTokenizer(280), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err != nil {
		t.Fatalf("replaced file: %v", err)
	}
	if entries, _ = os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("successful write left %d files", len(entries))
	}
}

// TestTruncatedStories260K cuts llama.cpp's file inside its tensor data and inside its header: each is one
// error naming the file, the first tensor that no longer fits, or the header entry that was cut.
func TestTruncatedStories260K(t *testing.T) {
	src := filepath.Join(storiesDir(t), "stories260K-f32.gguf")
	full, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	// blk.2.attn_q.weight is 64*64*4 bytes at data offset 494848; cut the file in its middle.
	q, _ := ref.Tensor("blk.2.attn_q.weight")
	cut := int(ref.DataOffset + q.Offset + 8000)
	dir := t.TempDir()
	for _, c := range []struct {
		n    int
		want string
	}{
		{cut, fmt.Sprintf(`truncated GGUF: tensor "blk.2.attn_q.weight" needs bytes %d to %d but the file is %d bytes`,
			ref.DataOffset+q.Offset, ref.DataOffset+q.Offset+16384, cut)},
		// A 2000-byte cut leaves the 512 token strings (8 bytes each at least) no room.
		{2000, fmt.Sprintf(`corrupt or truncated GGUF: metadata key 16 of 25 ("tokenizer.ggml.tokens"): array length 512 is impossible with %d bytes left in the 2000-byte file`,
			2000-(bytes.Index(full, []byte("tokenizer.ggml.tokens"))+len("tokenizer.ggml.tokens")+4+4+8))},
	} {
		path := filepath.Join(dir, fmt.Sprintf("cut%d.gguf", c.n))
		if err := os.WriteFile(path, full[:c.n], 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadWeights(path)
		if want := path + ": " + c.want; err == nil || err.Error() != want {
			t.Errorf("error\n got: %v\nwant: %s", err, want)
		}
	}
}
