package quant

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alignkit/alignkit/model"
)

// Config says how a frozen base model is held, with transformers' from_pretrained and
// BitsAndBytesConfig key names. Squash it into a trainer's config.
type Config struct {
	// TorchDtype is how frozen linear weights are held when neither load_in_* is set, and how the
	// output head is held when one is (transformers keeps lm_head out of bitsandbytes quantisation).
	TorchDtype string `mapstructure:"torch_dtype" doc:"storage of the frozen base: float32 (default), bfloat16 or float16; with load_in_8bit/4bit, of lm_head only"`
	// LoadIn8bit holds frozen linear weights as ggml Q8_0 (8.5 bits a weight).
	LoadIn8bit bool `mapstructure:"load_in_8bit" doc:"hold the frozen linear weights as 8-bit Q8_0 blocks (32 int8 with an fp16 scale)"`
	// LoadIn4bit holds frozen linear weights as 4-bit NF4, as QLoRA (4.5 bits a weight).
	LoadIn4bit bool `mapstructure:"load_in_4bit" doc:"hold the frozen linear weights as 4-bit NF4 blocks of 64 (QLoRA)"`
	// Bnb4bitQuantType is the 4-bit data type; only nf4 is supported.
	Bnb4bitQuantType string `mapstructure:"bnb_4bit_quant_type" doc:"4-bit data type with load_in_4bit: nf4 (the default and only choice)"`
}

var torchDtypes = []struct {
	name string
	f    Format
}{{"float32", F32}, {"bfloat16", BF16}, {"float16", F16}}

// Validate returns one error line naming the first bad key.
func (c Config) Validate() error {
	if _, err := c.dtype(); err != nil {
		return err
	}
	if c.LoadIn8bit && c.LoadIn4bit {
		return errors.New("load_in_8bit and load_in_4bit are both true: choose one")
	}
	if c.Bnb4bitQuantType != "" {
		if !c.LoadIn4bit {
			return fmt.Errorf("bnb_4bit_quant_type is %q but load_in_4bit is false", c.Bnb4bitQuantType)
		}
		if c.Bnb4bitQuantType != "nf4" {
			return fmt.Errorf("bnb_4bit_quant_type %q is not supported (supported: nf4)", c.Bnb4bitQuantType)
		}
	}
	return nil
}

func (c Config) dtype() (Format, error) {
	if c.TorchDtype == "" {
		return F32, nil
	}
	names := make([]string, len(torchDtypes))
	for i, d := range torchDtypes {
		if c.TorchDtype == d.name {
			return d.f, nil
		}
		names[i] = d.name
	}
	return 0, fmt.Errorf("torch_dtype %q is not supported (supported: %s)", c.TorchDtype, strings.Join(names, ", "))
}

// Formats returns the storage of the frozen linear weights and of the output head. Call Validate first.
func (c Config) Formats() (linear, head Format) {
	d, _ := c.dtype()
	switch {
	case c.LoadIn4bit:
		return NF4, d
	case c.LoadIn8bit:
		return Q8_0, d
	}
	return d, d
}

// Quantizes says whether the config asks for anything but float32 storage.
func (c Config) Quantizes() bool {
	l, h := c.Formats()
	return l != F32 || h != F32
}

// Hold is the format a frozen base holds the linear weight name in when its source holds it in src: a
// GGUF tensor's own type, or F32 for float32 safetensors values. The keys choose the format (lm_head:
// torch_dtype; the others: load_in_8bit/4bit, else torch_dtype); a key left out keeps src (so a GGUF
// stays in its own blocks, and an HF model stays float32, as transformers loads it). Decoding to F32 is
// exact and converting a float source (F32, F16, BF16) rounds once, as quantizing an HF model does; but a
// block-quantized source (Q8_0, Q4_0, Q4_K, Q6_K) asked into another format other than F32 is refused:
// its values are already rounded to its grid, and re-quantizing rounds them a second time onto a grid
// that does not share its blocks or scales (Q4_K to NF4 adds NF4's full error on top of Q4_K's), while the
// file's own blocks are already small, are what llama.cpp runs, and cost nothing to keep. Call Validate
// first.
func (c Config) Hold(name string, src Format) (Format, error) {
	key, want := c.wanted(name)
	switch {
	case key == "" || want == src || want == F32:
		if key == "" {
			return src, nil
		}
		return want, nil
	case src == F32 || src == F16 || src == BF16:
		return want, nil
	}
	return 0, fmt.Errorf("held as %s in the file; %s would re-quantize it to %s, rounding its weights twice: "+
		"leave %s out to train on the file's own %s blocks, or start from a float (F32, F16, BF16) GGUF or the HF model", src, key, want, key, src)
}

// wanted is the key that names a format for the linear weight name, and that format; "" when no key
// does.
func (c Config) wanted(name string) (key string, f Format) {
	d, _ := c.dtype()
	dtypeKey := "torch_dtype " + c.TorchDtype
	switch {
	case name == model.LMHeadKey && c.TorchDtype != "":
		return dtypeKey, d
	case name == model.LMHeadKey:
		return "", 0
	case c.LoadIn4bit:
		return "load_in_4bit", NF4
	case c.LoadIn8bit:
		return "load_in_8bit", Q8_0
	case c.TorchDtype != "":
		return dtypeKey, d
	}
	return "", 0
}

// Apply validates c and converts w's frozen linear weights (see [Quantize]) to the formats it names:
// lm_head to torch_dtype's, the rest to load_in_*'s or torch_dtype's. keep protects names (LoRA's
// modules_to_save) from conversion.
func (c Config) Apply(w *model.Weights, keep func(name string) bool) error {
	if err := c.Validate(); err != nil {
		return err
	}
	linear, head := c.Formats()
	keepHead := func(name string) bool { return name == model.LMHeadKey || (keep != nil && keep(name)) }
	if err := Quantize(w, linear, keepHead); err != nil {
		return err
	}
	onlyHead := func(name string) bool { return name != model.LMHeadKey || (keep != nil && keep(name)) }
	return Quantize(w, head, onlyHead)
}

// IsLinear says whether the named tensor of a model is a linear layer's weight that a frozen base may
// hold quantised: every 2-D weight except the token embedding (read by row, not multiplied) and a
// reward model's score head (trained with the adapters, as PEFT adds it to modules_to_save).
func IsLinear(name string, shape []int) bool {
	return len(shape) == 2 && name != model.EmbedKey && name != model.ScoreKey
}

// Quantize converts every linear weight of w (see [IsLinear]) that keep does not protect into Frozen
// storage of format f, dropping its float32 data; keep may be nil. F32 changes nothing: float32 weights
// already are float32, and code that reads Data keeps working. A weight that is already frozen is left as
// it is. On error (a non-finite weight) the weights converted so far stay converted.
func Quantize(w *model.Weights, f Format, keep func(name string) bool) error {
	if !f.CanEncode() {
		return fmt.Errorf("cannot quantize to %s (supported: F32, BF16, F16, Q8_0, NF4)", f)
	}
	if f == F32 {
		return nil
	}
	for _, name := range w.Names() {
		t := w.Tensors[name]
		if t.Frozen != nil || !IsLinear(name, t.Shape) || (keep != nil && keep(name)) {
			continue
		}
		m, err := New(f, t.Shape[0], t.Shape[1], t.Data)
		if err != nil {
			return fmt.Errorf("quantizing %s to %s: %w", name, f, err)
		}
		w.Tensors[name] = &model.Tensor{Shape: t.Shape, Frozen: m}
	}
	return nil
}

// FrozenBytes sums the memory of w's frozen tensors.
func FrozenBytes(w *model.Weights) int64 {
	var n int64
	for _, t := range w.Tensors {
		if t.Frozen != nil {
			n += t.Frozen.Bytes()
		}
	}
	return n
}

// Dense turns every frozen tensor of w back into float32 data (to export, or to merge adapters into the
// base). Only this package's Matrix can be decoded; another Frozen implementation is an error.
func Dense(w *model.Weights) error {
	for _, name := range w.Names() {
		t := w.Tensors[name]
		if t.Frozen == nil {
			continue
		}
		m, ok := t.Frozen.(*Matrix)
		if !ok {
			return fmt.Errorf("tensor %q is frozen as a %T, which cannot be decoded", name, t.Frozen)
		}
		data := make([]float32, m.out*m.in)
		m.Dequantize(data, 0, m.out)
		w.Tensors[name] = &model.Tensor{Shape: t.Shape, Data: data}
	}
	return nil
}
