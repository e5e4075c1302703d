package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/model/ops"
)

// Tensor is a dense float32 array in row-major order with torch's shape convention: a linear layer's
// weight is [out, in].
//
// A frozen linear weight (a LoRA or QLoRA base, see package model/quant) lives in Frozen instead, in
// whatever storage it was loaded or quantised to, and Data is nil: the weight is only ever multiplied,
// never read element by element or trained.
type Tensor struct {
	Shape  []int
	Data   []float32
	Frozen ops.Frozen // non-nil: the weight lives here, Shape is its (out, in) and Data is nil
}

// NewTensor allocates a zeroed tensor.
func NewTensor(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, numel(shape))}
}

// Numel is the number of elements.
func (t *Tensor) Numel() int { return numel(t.Shape) }

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Weights are a model's parameters keyed by transformers' own tensor names, so that they map 1:1 onto
// HF checkpoints. Q and K projections are in HF's rotate-half layout.
type Weights struct {
	Config  Config
	Tensors map[string]*Tensor
}

// LayerKey names a per-layer tensor: LayerKey(3, "self_attn.q_proj.weight") is
// "model.layers.3.self_attn.q_proj.weight".
func LayerKey(layer int, suffix string) string {
	return fmt.Sprintf("model.layers.%d.%s", layer, suffix)
}

// ExpertKey names a Mixtral expert tensor: ExpertKey(0, 2, "w1") is
// "model.layers.0.block_sparse_moe.experts.2.w1.weight".
func ExpertKey(layer, expert int, w string) string {
	return fmt.Sprintf("model.layers.%d.block_sparse_moe.experts.%d.%s.weight", layer, expert, w)
}

// Tensor names outside the layers.
const (
	EmbedKey     = "model.embed_tokens.weight" // (V, D)
	FinalNormKey = "model.norm.weight"         // (D)
	LMHeadKey    = "lm_head.weight"            // (V, D); absent when tied
	ScoreKey     = "score.weight"              // (1, D); reward models only
)

// ExpectedShapes lists every tensor a model with this configuration has, with its shape.
func ExpectedShapes(c Config) map[string][]int {
	D, V := c.HiddenSize, c.VocabSize
	s := map[string][]int{
		EmbedKey:     {V, D},
		FinalNormKey: {D},
	}
	if c.IsRewardModel() {
		s[ScoreKey] = []int{1, D}
	} else if !c.TieWordEmbeddings {
		s[LMHeadKey] = []int{V, D}
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		for _, t := range c.LayerTensors(l) {
			s[t.HF] = t.Shape
		}
	}
	return s
}

// Check verifies that exactly the expected tensors are present with the expected shapes. source
// names the checkpoint in errors. Loaders check finiteness themselves while converting.
func (w *Weights) Check(source string) error {
	want := ExpectedShapes(w.Config)
	for _, name := range sortedKeys(want) {
		t, ok := w.Tensors[name]
		if !ok || t == nil {
			return fmt.Errorf("%s: tensor %q is missing", source, name)
		}
		if !slices.Equal(t.Shape, want[name]) {
			return fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", source, name, t.Shape, want[name])
		}
		if t.Frozen != nil {
			if o, i := t.Frozen.Shape(); len(t.Shape) != 2 || o != t.Shape[0] || i != t.Shape[1] || t.Data != nil {
				return fmt.Errorf("%s: frozen tensor %q is (%d, %d) with %d float32 values, its shape says %v", source, name, o, i, len(t.Data), t.Shape)
			}
			continue
		}
		if len(t.Data) != numel(t.Shape) {
			return fmt.Errorf("%s: tensor %q holds %d values for shape %v", source, name, len(t.Data), t.Shape)
		}
	}
	for _, name := range sortedKeys(w.Tensors) {
		if _, ok := want[name]; !ok {
			return fmt.Errorf("%s: unexpected tensor %q for this config", source, name)
		}
	}
	return nil
}

// CheckFinite rejects NaN and ±Inf, naming the first tensor and index that holds one: a checkpoint
// holding them is broken, training from it only propagates them, and an export would carry them on.
func (w *Weights) CheckFinite(source string) error {
	for _, name := range w.Names() {
		for i, v := range w.Tensors[name].Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%s: tensor %q holds %v at index %d", source, name, v, i)
			}
		}
	}
	return nil
}

// Get returns the named tensor or an error naming it.
func (w *Weights) Get(name string) (*Tensor, error) {
	t, ok := w.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("tensor %q is missing", name)
	}
	return t, nil
}

// Names returns the tensor names in sorted order, for deterministic iteration.
func (w *Weights) Names() []string { return sortedKeys(w.Tensors) }

// NumParams is the number of stored parameters: every tensor's elements, a tied head counted once
// (it is not stored apart from the embedding).
func (w *Weights) NumParams() int64 {
	var n int64
	for _, t := range w.Tensors {
		n += int64(t.Numel())
	}
	return n
}

// Clone deep-copies the weights (a DPO reference model, a checkpoint snapshot). Frozen storage is
// shared, not copied: nothing ever writes to it.
func (w *Weights) Clone() *Weights {
	out := &Weights{Config: w.Config, Tensors: make(map[string]*Tensor, len(w.Tensors))}
	for k, t := range w.Tensors {
		// A Frozen weight is never written, so the copy shares it.
		out.Tensors[k] = &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...), Frozen: t.Frozen}
	}
	return out
}

// InitRandom returns weights initialised as transformers does: normal(0, initializerRange) for
// matrices, ones for RMSNorm gains, zeros for biases. The same seed gives the same weights.
func InitRandom(c Config, seed uint64, initializerRange float64) *Weights {
	if initializerRange <= 0 {
		initializerRange = 0.02
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	shapes := ExpectedShapes(c)
	w := &Weights{Config: c, Tensors: make(map[string]*Tensor, len(shapes))}
	for _, name := range sortedKeys(shapes) {
		t := NewTensor(shapes[name]...)
		switch {
		case strings.HasSuffix(name, ".bias"):
			// zeros, as transformers' _init_weights leaves a Linear's bias
		case len(t.Shape) == 1:
			for i := range t.Data {
				t.Data[i] = 1
			}
		default:
			std := initializerRange
			if name == ScoreKey {
				std = 1 / math.Sqrt(float64(c.HiddenSize)+1)
			}
			for i := range t.Data {
				t.Data[i] = float32(rng.NormFloat64() * std)
			}
		}
		w.Tensors[name] = t
	}
	return w
}

// OutputHead is the (V, D) matrix that maps hidden states to logits: lm_head, or the token embedding
// when the two are tied.
func (w *Weights) OutputHead() *Tensor {
	if t, ok := w.Tensors[LMHeadKey]; ok {
		return t
	}
	return w.Tensors[EmbedKey]
}
