package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/model/quant"
)

// storiesGGUF writes stories260K (the HF directory) as a GGUF of dtype with the project's writer, as
// `alignkit export --format gguf --dtype` does, and returns its path.
func storiesGGUF(t *testing.T, dtype string) string {
	t.Helper()
	m, err := Open(filepath.Join(sharedDir(t), "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stories260K-"+dtype+".gguf")
	if err := gguf.Write(path, m.Weights, GGUFTokenizer(m.Tok), gguf.WriteOptions{Dtype: dtype}); err != nil {
		t.Fatal(err)
	}
	return path
}

// ggufNames maps a model's HF tensor names to its GGUF's (the architecture table the loader reads).
func ggufNames(c model.Config) map[string]string {
	names := map[string]string{model.EmbedKey: "token_embd.weight", model.FinalNormKey: "output_norm.weight", model.LMHeadKey: "output.weight"}
	for l := 0; l < c.NumHiddenLayers; l++ {
		for _, lt := range c.LayerTensors(l) {
			names[lt.HF] = lt.GGUF
		}
	}
	return names
}

// fileFormats is the storage format of each HF-named tensor of the GGUF at path.
func fileFormats(t *testing.T, path string, c model.Config) map[string]quant.Format {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]quant.Format{}
	for hfName, gg := range ggufNames(c) {
		ti, ok := f.Tensor(gg)
		if !ok {
			continue
		}
		qf, err := quant.ParseFormat(ti.Type.String())
		if err != nil {
			t.Fatal(err)
		}
		out[hfName] = qf
	}
	return out
}

// TestOpenFrozenGGUF opens stories260K written as F16, Q8_0 and Q4_0 GGUFs as a frozen base: every
// linear weight is a quant.Matrix in the file's own format (Q8_0 and Q4_0 blocks, F16 for the 172-wide
// down projections that no 32-value block divides) with no float32 values; the embedding and norms are
// float32. The frozen base's logits through the training graph equal those of the same file expanded
// to float32 by Open within float32 summation order: both dequantize the same blocks to the same
// values, the frozen product a tile at a time, so only the order of float32 sums differs (measured
// below 1e-5, about 5 units in the last place of logits up to 19, spaced 1.9e-6; the bound is 2e-5).
func TestOpenFrozenGGUF(t *testing.T) {
	tokens := []int32{1, 403, 407, 261, 378, 11, 300, 57, 92, 480, 3, 200}
	for _, c := range []struct {
		dtype string
		file  quant.Format // the format of the 64-wide matrices
	}{{"f16", quant.F16}, {"q8_0", quant.Q8_0}, {"q4_0", quant.Q4_0}} {
		t.Run(c.dtype, func(t *testing.T) {
			path := storiesGGUF(t, c.dtype)
			frozen, err := OpenFrozen(context.Background(), path, FrozenBase{})
			if err != nil {
				t.Fatal(err)
			}
			dense, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			formats := fileFormats(t, path, frozen.Weights.Config)
			held := map[quant.Format]int{}
			for _, name := range frozen.Weights.Names() {
				tn := frozen.Weights.Tensors[name]
				if !quant.IsLinear(name, tn.Shape) {
					if tn.Frozen != nil || len(tn.Data) != tn.Numel() {
						t.Fatalf("%s: not a linear weight, but held as %T with %d float32 values", name, tn.Frozen, len(tn.Data))
					}
					continue
				}
				m, ok := tn.Frozen.(*quant.Matrix)
				if !ok || tn.Data != nil {
					t.Fatalf("%s: held as %T with %d float32 values, want the file's blocks", name, tn.Frozen, len(tn.Data))
				}
				if m.Format() != formats[name] {
					t.Fatalf("%s: held as %s, the file has %s", name, m.Format(), formats[name])
				}
				held[m.Format()]++
			}
			// stories260K: 5 layers of q, k, v, o, gate, up (64 wide) and down (172 wide).
			want := map[quant.Format]int{c.file: 30, quant.F16: 5}
			if c.file == quant.F16 {
				want = map[quant.Format]int{quant.F16: 35}
			}
			if len(held) != len(want) || held[c.file] != want[c.file] || held[quant.F16] != want[quant.F16] {
				t.Fatalf("linear weights by format %v, want %v", held, want)
			}
			got, err := model.Forward(frozen.Weights, tokens)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := model.Forward(dense.Weights, tokens)
			if err != nil {
				t.Fatal(err)
			}
			var worst, largest float64
			for i := range ref {
				for j := range ref[i] {
					worst = max(worst, math.Abs(float64(got[i][j]-ref[i][j])))
					largest = max(largest, math.Abs(float64(ref[i][j])))
				}
			}
			t.Logf("%s: frozen base %d bytes; max |Δ logit| vs the float32 expansion %.3g (max |logit| %.3g)", c.dtype, quant.FrozenBytes(frozen.Weights), worst, largest)
			if worst > 2e-5 {
				t.Errorf("frozen logits differ from the float32 expansion's by %g", worst)
			}
		})
	}
}

// TestOpenFrozenConversions: the storage keys on a GGUF base. A float file (F16) converts to what
// load_in_4bit asks (NF4 blocks identical to quantizing its float32 load with quant.Config.Apply);
// torch_dtype float32 decodes a quantized file exactly; Keep leaves named weights float32; and
// load_in_4bit or torch_dtype bfloat16 on a Q8_0 file is refused in one line, since re-quantizing
// already rounded weights rounds them twice.
func TestOpenFrozenConversions(t *testing.T) {
	f16 := storiesGGUF(t, "f16")
	q8 := storiesGGUF(t, "q8_0")
	q := "model.layers.0.self_attn.q_proj.weight"

	nf4, err := OpenFrozen(context.Background(), f16, FrozenBase{Quant: quant.Config{LoadIn4bit: true}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Open(f16)
	if err != nil {
		t.Fatal(err)
	}
	if err := (quant.Config{LoadIn4bit: true}).Apply(ref.Weights, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range ref.Weights.Names() {
		a, b := nf4.Weights.Tensors[name], ref.Weights.Tensors[name]
		if b.Frozen == nil {
			continue
		}
		am, ok := a.Frozen.(*quant.Matrix)
		if !ok || am.Format() != quant.NF4 || !bytes.Equal(am.Raw(), b.Frozen.(*quant.Matrix).Raw()) {
			t.Fatalf("%s: load_in_4bit over an F16 GGUF differs from quantizing its float32 load", name)
		}
	}

	exact, err := OpenFrozen(context.Background(), q8, FrozenBase{Quant: quant.Config{TorchDtype: "float32"}, Keep: nil})
	if err != nil {
		t.Fatal(err)
	}
	dense, err := Open(q8)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range dense.Weights.Names() {
		a, b := exact.Weights.Tensors[name], dense.Weights.Tensors[name]
		if a.Frozen != nil || !bitsEqual(a.Data, b.Data) {
			t.Fatalf("%s: torch_dtype float32 over a Q8_0 GGUF is not its exact float32 decoding", name)
		}
	}

	kept, err := OpenFrozen(context.Background(), q8, FrozenBase{Keep: func(name string) bool { return name == q }})
	if err != nil {
		t.Fatal(err)
	}
	if tn := kept.Weights.Tensors[q]; tn.Frozen != nil || !bitsEqual(tn.Data, dense.Weights.Tensors[q].Data) {
		t.Fatalf("%s: Keep should hold it as its float32 values", q)
	}
	if _, ok := kept.Weights.Tensors["model.layers.0.self_attn.k_proj.weight"].Frozen.(*quant.Matrix); !ok {
		t.Fatal("Keep froze nothing else")
	}

	for _, c := range []struct {
		q    quant.Config
		want string
	}{
		{quant.Config{LoadIn4bit: true}, q8 + `: tensor "blk.0.attn_q.weight": held as Q8_0 in the file; load_in_4bit would re-quantize it to NF4, rounding its weights twice: leave load_in_4bit out to train on the file's own Q8_0 blocks, or start from a float (F32, F16, BF16) GGUF or the HF model`},
		{quant.Config{TorchDtype: "bfloat16"}, q8 + `: tensor "blk.0.attn_q.weight": held as Q8_0 in the file; torch_dtype bfloat16 would re-quantize it to BF16, rounding its weights twice: leave torch_dtype bfloat16 out to train on the file's own Q8_0 blocks, or start from a float (F32, F16, BF16) GGUF or the HF model`},
		{quant.Config{LoadIn4bit: true, LoadIn8bit: true}, "load_in_8bit and load_in_4bit are both true: choose one"},
	} {
		if _, err := OpenFrozen(context.Background(), q8, FrozenBase{Quant: c.q}); err == nil || err.Error() != c.want {
			t.Errorf("%+v:\n got %v\nwant %s", c.q, err, c.want)
		}
	}
	// load_in_8bit asks for Q8_0, which the file already holds: its blocks are kept.
	same, err := OpenFrozen(context.Background(), q8, FrozenBase{Quant: quant.Config{LoadIn8bit: true}})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := same.Weights.Tensors[q].Frozen.(*quant.Matrix); !ok || m.Format() != quant.Q8_0 {
		t.Fatalf("load_in_8bit over a Q8_0 GGUF: %s held as %T", q, same.Weights.Tensors[q].Frozen)
	}
}

// TestOpenFrozenUnsupportedType relabels blk.0.attn_q.weight of an F16 stories260K (64×64, 8192 bytes)
// as Q5_0, which the parser size-checks but alignkit cannot compute with: a frozen base is refused in
// one line naming the tensor, its type and the types that can be read.
func TestOpenFrozenUnsupportedType(t *testing.T) {
	path := storiesGGUF(t, "f16")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := "blk.0.attn_q.weight"
	off := bytes.Index(raw, []byte(name)) + len(name) + 4 + 2*8 // n_dims, then two dims
	if got := binary.LittleEndian.Uint32(raw[off:]); got != 1 {
		t.Fatalf("type field reads %d, want 1 (F16)", got)
	}
	binary.LittleEndian.PutUint32(raw[off:], 6) // GGML_TYPE_Q5_0
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	want := path + `: tensor "blk.0.attn_q.weight": type Q5_0 cannot be read (alignkit reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)`
	if _, err := OpenFrozen(context.Background(), path, FrozenBase{}); err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
}

// TestOpenFrozenHFMemory writes a random Llama of 28.3M parameters (113 MB as float32) as bf16
// safetensors and opens it with load_in_4bit. Each linear weight is converted to NF4 right after it is
// read, through one reused float32 buffer, so everything Open allocates (runtime TotalAlloc, which
// counts freed garbage too) is the NF4 base, the float32 embedding and norms, and about one tensor of
// scratch: measured about a fifth of the float32 size, where reading the model as float32 and then
// quantizing it allocates all 113 MB and more.
func TestOpenFrozenHFMemory(t *testing.T) {
	cfg := model.Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 512, HiddenSize: 768, IntermediateSize: 2048, NumHiddenLayers: 4,
		NumAttentionHeads: 12, NumKeyValueHeads: 12, HeadDim: 64, RMSNormEps: 1e-5, RopeTheta: 10000,
		MaxPositionEmbeddings: 256, BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
	dir := t.TempDir()
	var f32Bytes, largest int64
	func() {
		w := model.InitRandom(cfg, 7, 0.02)
		for _, tn := range w.Tensors {
			n := 4 * int64(tn.Numel())
			f32Bytes += n
			largest = max(largest, n)
		}
		if err := hf.Save(dir, w, hf.SaveOptions{Dtype: "bf16"}); err != nil {
			t.Fatal(err)
		}
	}()
	stories := filepath.Join(sharedDir(t), "models", "stories260K")
	if err := hf.CopyTokenizerFiles(stories, dir); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := OpenFrozen(context.Background(), dir, FrozenBase{Quant: quant.Config{LoadIn4bit: true}})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := int64(after.TotalAlloc - before.TotalAlloc)
	var dense int64
	for _, name := range m.Weights.Names() {
		tn := m.Weights.Tensors[name]
		switch {
		case name == model.LMHeadKey:
			// transformers keeps the head out of bitsandbytes: float32 without a torch_dtype.
			if tn.Frozen != nil {
				t.Fatalf("%s: held as %T, want float32", name, tn.Frozen)
			}
		case quant.IsLinear(name, tn.Shape):
			if mx, ok := tn.Frozen.(*quant.Matrix); !ok || mx.Format() != quant.NF4 {
				t.Fatalf("%s: held as %T, want NF4", name, tn.Frozen)
			}
		}
		dense += 4 * int64(len(tn.Data))
	}
	frozen := quant.FrozenBytes(m.Weights)
	t.Logf("float32 model %d MB; Open allocated %.1f MB: NF4 base %.1f MB, float32 tensors %.1f MB, largest tensor %.1f MB as float32",
		f32Bytes>>20, float64(alloc)/(1<<20), float64(frozen)/(1<<20), float64(dense)/(1<<20), float64(largest)/(1<<20))
	// The base as held, one float32 tensor of scratch, and 4 MB for the tokenizer, read buffers and
	// the maps.
	if limit := frozen + dense + largest + 4<<20; alloc > limit {
		t.Errorf("Open allocated %d bytes, more than the frozen base (%d), its float32 tensors (%d) and one tensor of scratch (%d)", alloc, frozen, dense, largest)
	}
	if alloc > f32Bytes/4 {
		t.Errorf("Open allocated %d bytes, not well below the float32 model's %d", alloc, f32Bytes)
	}
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestOpenAdapterFrozen opens a PEFT adapter over a Q8_0 GGUF held as its blocks: the adapter is
// checked against the base's shapes as over a float32 base, and merging it into the quantized base
// is refused in one line (OpenAdapter's float32 base merges).
func TestOpenAdapterFrozen(t *testing.T) {
	path := storiesGGUF(t, "q8_0")
	dense, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := saveAdapter(t, dense)
	ad := dense.Adapter
	m, err := OpenAdapterFrozen(context.Background(), path, dir, FrozenBase{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Adapter.Layers) != len(ad.Layers) {
		t.Fatalf("%d adapted weights, saved %d", len(m.Adapter.Layers), len(ad.Layers))
	}
	want := "lora: merge: model.layers.0.mlp.down_proj.weight is held as *quant.Matrix (quantized); merging needs a float32 base (load the base unquantized, or serve the adapter unmerged)"
	if _, err := Merged(m); err == nil || err.Error() != want {
		t.Errorf("merging into the Q8_0 base:\n got %v\nwant %s", err, want)
	}
	fl, err := OpenAdapter(context.Background(), path, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Merged(fl); err != nil {
		t.Errorf("merging into the float32 expansion: %v", err)
	}
}

// TestOpenFrozenF32GGUF: llama.cpp's own F32 conversion of stories260K opened as a frozen base holds
// its float32 matrices as float32 values, exactly Open's, since F32 blocks are the values themselves
// (as quant.Quantize leaves float32 alone).
func TestOpenFrozenF32GGUF(t *testing.T) {
	path := filepath.Join(sharedDir(t), "models", "stories260K", "stories260K-f32.gguf")
	frozen, err := OpenFrozen(context.Background(), path, FrozenBase{})
	if err != nil {
		t.Fatal(err)
	}
	dense, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range dense.Weights.Names() {
		if a, b := frozen.Weights.Tensors[name], dense.Weights.Tensors[name]; a.Frozen != nil || !bitsEqual(a.Data, b.Data) {
			t.Fatalf("%s: held as %T, want Open's float32 values", name, a.Frozen)
		}
	}
}

// TestOpenInference: what generation, serving and scoring open keeps a quantized GGUF in the file's
// own blocks (a Q4_0 stories260K's linear weights, Q4_0 where 32-value blocks divide their rows and
// F16 for the 172-wide down projections, take 23% of their float32 bytes), opens
// an HF directory exactly as Open does, and runs an adapter unmerged over either.
func TestOpenInference(t *testing.T) {
	ctx := context.Background()
	hfDir := filepath.Join(sharedDir(t), "models", "stories260K")
	q4 := storiesGGUF(t, "q4_0")
	dense, err := Open(q4)
	if err != nil {
		t.Fatal(err)
	}
	adDir := saveAdapter(t, dense)
	var linear int64 // float32 bytes of the linear weights
	for _, name := range dense.Weights.Names() {
		if tn := dense.Weights.Tensors[name]; quant.IsLinear(name, tn.Shape) {
			linear += int64(tn.Numel()) * 4
		}
	}
	for _, c := range []struct {
		name, path, adapter string
		frozen              bool
	}{
		{"q4_0 gguf", q4, "", true},
		{"q4_0 gguf with adapter", q4, adDir, true},
		{"hf directory", hfDir, "", false},
		{"hf directory with adapter", hfDir, adDir, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := OpenInference(ctx, c.path, c.adapter)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Adapter != nil; got != (c.adapter != "") {
				t.Fatalf("adapter attached: %v, want %v", got, c.adapter != "")
			}
			held := quant.FrozenBytes(m.Weights)
			if !c.frozen {
				ref, err := Open(c.path)
				if err != nil {
					t.Fatal(err)
				}
				for _, name := range ref.Weights.Names() {
					if a, b := m.Weights.Tensors[name], ref.Weights.Tensors[name]; a.Frozen != nil || !bitsEqual(a.Data, b.Data) {
						t.Fatalf("%s: held as %T, want Open's float32 values", name, a.Frozen)
					}
				}
				return
			}
			if held == 0 || held*4 > linear {
				t.Fatalf("linear weights held in %d bytes, want the file's blocks (under a quarter of %d float32 bytes)", held, linear)
			}
		})
	}
}

// saveAdapter gives m a rank-4 all-linear LoRA adapter (seed 2) and saves it as a PEFT adapter
// directory, whose path it returns.
func saveAdapter(t *testing.T, m *Model) string {
	t.Helper()
	r := 4
	ad, err := lora.New(lora.Config{LoraR: &r, LoraTargetModules: "all-linear"}, m.Weights, 2)
	if err != nil {
		t.Fatal(err)
	}
	m.Adapter = ad
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := SaveAdapter(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}
