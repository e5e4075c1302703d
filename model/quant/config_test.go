package quant

import (
	"math"
	"testing"

	"github.com/alignkit/alignkit/model"
)

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		c      Config
		err    string
		linear Format
		head   Format
	}{
		{Config{}, "", F32, F32},
		{Config{TorchDtype: "float32"}, "", F32, F32},
		{Config{TorchDtype: "bfloat16"}, "", BF16, BF16},
		{Config{TorchDtype: "float16"}, "", F16, F16},
		{Config{LoadIn8bit: true}, "", Q8_0, F32},
		{Config{LoadIn4bit: true}, "", NF4, F32},
		{Config{LoadIn4bit: true, Bnb4bitQuantType: "nf4", TorchDtype: "bfloat16"}, "", NF4, BF16},
		{Config{LoadIn8bit: true, LoadIn4bit: true}, "load_in_8bit and load_in_4bit are both true: choose one", 0, 0},
		{Config{TorchDtype: "float64"}, `torch_dtype "float64" is not supported (supported: float32, bfloat16, float16)`, 0, 0},
		{Config{TorchDtype: "bf16"}, `torch_dtype "bf16" is not supported (supported: float32, bfloat16, float16)`, 0, 0},
		{Config{LoadIn4bit: true, Bnb4bitQuantType: "fp4"}, `bnb_4bit_quant_type "fp4" is not supported (supported: nf4)`, 0, 0},
		{Config{LoadIn8bit: true, Bnb4bitQuantType: "nf4"}, `bnb_4bit_quant_type is "nf4" but load_in_4bit is false`, 0, 0},
	}
	for _, c := range cases {
		err := c.c.Validate()
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%+v: error %v, want %q", c.c, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", c.c, err)
			continue
		}
		if l, h := c.c.Formats(); l != c.linear || h != c.head {
			t.Errorf("%+v: formats %s, %s; want %s, %s", c.c, l, h, c.linear, c.head)
		}
	}
}

// TestApply quantises a small untied model as load_in_4bit with torch_dtype bfloat16 would: linear weights
// NF4, lm_head BF16 (transformers keeps it out of bitsandbytes), embedding, norms and the names keep
// protects untouched in float32.
func TestApply(t *testing.T) {
	c := model.Config{
		VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 1, NumAttentionHeads: 4,
		NumKeyValueHeads: 2, HeadDim: 8, MaxPositionEmbeddings: 16, RMSNormEps: 1e-5, RopeTheta: 10000,
	}
	w := model.InitRandom(c, 1, 0.02)
	keep := func(name string) bool { return name == model.LayerKey(0, "mlp.down_proj.weight") }
	if err := (Config{LoadIn4bit: true, TorchDtype: "bfloat16"}).Apply(w, keep); err != nil {
		t.Fatal(err)
	}
	for name, tt := range w.Tensors {
		want := Format(-1) // float32 data, not frozen
		switch {
		case name == model.LMHeadKey:
			want = BF16
		case IsLinear(name, tt.Shape) && !keep(name):
			want = NF4
		}
		m, _ := tt.Frozen.(*Matrix)
		switch {
		case want < 0 && (tt.Frozen != nil || tt.Data == nil):
			t.Errorf("%s: frozen %v, want float32 data", name, tt.Frozen != nil)
		case want >= 0 && (m == nil || m.Format() != want || tt.Data != nil):
			t.Errorf("%s: frozen %v with %d float32 values, want %s storage only", name, m != nil, len(tt.Data), want)
		}
	}
	if err := w.Check("quantised"); err != nil {
		t.Fatal(err)
	}
	if err := (Config{LoadIn4bit: true, LoadIn8bit: true}).Apply(w, nil); err == nil {
		t.Error("conflicting flags were applied")
	}
}

// TestBadInput: every refusal is one line naming what is wrong.
func TestBadInput(t *testing.T) {
	w := &model.Weights{Tensors: map[string]*model.Tensor{
		"model.layers.0.self_attn.q_proj.weight": {Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, float32(math.NaN()), 6}},
	}}
	cases := []struct {
		err  error
		want string
	}{
		{Quantize(w, Q8_0, nil), `quantizing model.layers.0.self_attn.q_proj.weight to Q8_0: value at (1, 1) is NaN: only finite weights can be stored`},
		{Quantize(w, Q4_K, nil), `cannot quantize to Q4_K (supported: F32, BF16, F16, Q8_0, NF4)`},
		{func() error { _, err := New(Q6_K, 1, 256, make([]float32, 256)); return err }(), `cannot encode Q6_K (encodable: F32, BF16, F16, Q8_0, NF4)`},
		{func() error { _, err := New(NF4, 2, 64, make([]float32, 64)); return err }(), `64 values for a matrix of shape (2, 64)`},
		{func() error { _, err := FromBlocks(Q4_K, 2, 256, make([]byte, 144)); return err }(), `Q4_K matrix of shape (2, 256) needs 288 bytes, got 144`},
		{func() error { _, err := FromBlocks(Q8_0, 2, 48, make([]byte, 136)); return err }(), `Q8_0 matrix of shape (2, 48): rows of 48 values are not whole blocks of 32`},
		{func() error { _, err := ParseFormat("q5_k"); return err }(), `unknown storage format "q5_k" (supported: f32, bf16, f16, q8_0, q4_0, q4_k, q6_k, nf4)`},
		{Q8_0.Decode(make([]float32, 32), make([]byte, 33)), `Q8_0: 33 bytes do not encode 32 values`},
	}
	for _, c := range cases {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("error %v, want %s", c.err, c.want)
		}
	}
	if err := Quantize(w, F32, nil); err != nil || w.Tensors["model.layers.0.self_attn.q_proj.weight"].Frozen != nil {
		t.Errorf("F32 quantisation: %v; it must leave float32 weights as they are", err)
	}
	if w.Tensors["model.layers.0.self_attn.q_proj.weight"].Frozen != nil {
		t.Error("a refused weight was replaced")
	}
}

// TestHold: the format each storage key gives a linear weight whose source has a format. A key left
// out keeps the source; F32 and the source's own format are always allowed; float sources convert; a
// block-quantized source asked into another format is refused.
func TestHold(t *testing.T) {
	q := model.LayerKey(0, "self_attn.q_proj.weight")
	refuse := func(src, key, want string) string {
		return "held as " + src + " in the file; " + key + " would re-quantize it to " + want + ", rounding its weights twice: leave " + key +
			" out to train on the file's own " + src + " blocks, or start from a float (F32, F16, BF16) GGUF or the HF model"
	}
	cases := []struct {
		c    Config
		name string
		src  Format
		want Format
		err  string
	}{
		{Config{}, q, Q4_K, Q4_K, ""},
		{Config{}, model.LMHeadKey, Q6_K, Q6_K, ""},
		{Config{}, q, F32, F32, ""},
		{Config{LoadIn4bit: true}, q, F32, NF4, ""},
		{Config{LoadIn4bit: true}, q, F16, NF4, ""},
		{Config{LoadIn4bit: true}, q, BF16, NF4, ""},
		{Config{LoadIn4bit: true}, model.LMHeadKey, Q6_K, Q6_K, ""}, // the head follows torch_dtype only
		{Config{LoadIn4bit: true, TorchDtype: "bfloat16"}, model.LMHeadKey, F32, BF16, ""},
		{Config{LoadIn8bit: true}, q, Q8_0, Q8_0, ""},
		{Config{TorchDtype: "float32"}, q, Q4_K, F32, ""},
		{Config{TorchDtype: "float16"}, q, BF16, F16, ""},
		{Config{LoadIn4bit: true}, q, Q4_K, 0, refuse("Q4_K", "load_in_4bit", "NF4")},
		{Config{LoadIn8bit: true}, q, Q4_0, 0, refuse("Q4_0", "load_in_8bit", "Q8_0")},
		{Config{TorchDtype: "bfloat16"}, model.LMHeadKey, Q6_K, 0, refuse("Q6_K", "torch_dtype bfloat16", "BF16")},
	}
	for _, c := range cases {
		got, err := c.c.Hold(c.name, c.src)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%+v %s from %s: error %v\nwant %s", c.c, c.name, c.src, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v %s from %s: %s, %v; want %s", c.c, c.name, c.src, got, err, c.want)
		}
	}
}
