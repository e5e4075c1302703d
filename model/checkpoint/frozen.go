package checkpoint

import (
	"context"
	"fmt"
	"os"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/hub"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/model/quant"
)

// FrozenBase says how OpenFrozen holds the base of a LoRA / QLoRA run, whose linear weights are
// only multiplied, never trained.
type FrozenBase struct {
	// Quant is the storage the config asks for (torch_dtype, load_in_8bit, load_in_4bit); see
	// quant.Config.Hold for what each key does to a GGUF's own blocks. The zero value keeps a GGUF's
	// linear weights in the file's blocks and an HF model's as float32.
	Quant quant.Config
	// Keep names linear weights to hold as float32 values anyway (LoRA's lora_modules_to_save, which
	// the adapter copies and trains in full); nil keeps none.
	Keep func(name string) bool
}

// OpenFrozen reads a model as OpenContext does (stopping between tensors when ctx ends), holding its linear weights (quant.IsLinear) frozen as fb says,
// so that the base is never whole in memory as float32:
//   - a GGUF's linear weights stay in the file's own blocks (quant.Matrix over the bytes read, no
//     float32 copy), or are converted one tensor at a time when a key asks for another format;
//   - an HF directory's are converted right after each is read, through one float32 scratch buffer,
//     so the peak is the largest tensor in float32 plus the frozen base.
//
// The token embedding (read by row), the norms and biases (1-D) and the weights fb.Keep names stay
// float32, as the training graph reads their values. Full fine-tuning uses Open instead: it trains
// every weight, so it needs them all in float32.
func OpenFrozen(ctx context.Context, path string, fb FrozenBase) (*Model, error) {
	if err := fb.Quant.Validate(); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil && hub.IsName(path) {
		resolved, err := hub.Model(path)
		if err != nil {
			return nil, fmt.Errorf("opening model: %w", err)
		}
		m, err := OpenFrozen(ctx, resolved, fb)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m.Source = path
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening model: %w", err)
	}
	if st.IsDir() && lora.IsAdapterDir(path) {
		return openAdapterDir(path, func(base string) (*Model, error) { return OpenFrozen(ctx, base, fb) })
	}
	keep := func(name string) bool { return fb.Keep != nil && fb.Keep(name) }
	if !st.IsDir() {
		hold := func(name string, file quant.Format) (quant.Format, error) {
			if keep(name) {
				return quant.F32, nil
			}
			return fb.Quant.Hold(name, file)
		}
		w, info, err := gguf.LoadWeightsContext(ctx, path, gguf.LoadOptions{Frozen: true, Hold: hold})
		if err != nil {
			return nil, err
		}
		return withGGUFTokenizer(path, w, info)
	}
	freeze := func(name string, shape []int) func([]float32) (*model.Tensor, error) {
		if !quant.IsLinear(name, shape) || keep(name) {
			return nil
		}
		f, err := fb.Quant.Hold(name, quant.F32) // a float source: never refused
		if err != nil || f == quant.F32 {
			return nil
		}
		return func(data []float32) (*model.Tensor, error) {
			m, err := quant.New(f, shape[0], shape[1], data)
			if err != nil {
				return nil, fmt.Errorf("quantizing to %s: %w", f, err)
			}
			return &model.Tensor{Shape: shape, Frozen: m}, nil
		}
	}
	w, err := hf.LoadWith(ctx, path, hf.LoadOptions{Freeze: freeze})
	if err != nil {
		return nil, err
	}
	return withHFTokenizer(path, w)
}

// OpenAdapterFrozen is OpenAdapter over a base opened by OpenFrozen: the adapter runs (and trains)
// unmerged over the frozen base. Merging needs OpenAdapter's float32 base.
func OpenAdapterFrozen(ctx context.Context, base, adapterDir string, fb FrozenBase) (*Model, error) {
	m, err := OpenFrozen(ctx, base, fb)
	return withAdapter(m, err, adapterDir)
}

// OpenInference opens a model that is only run, never trained: generation, serving, scoring
// log-probs. It is OpenFrozen with no conversion asked for, so a quantized or half-precision GGUF
// keeps its linear weights in the file's own blocks (as llama.cpp and ollama run them; an 8B Q4_K
// file stays ~5 GB instead of 32 GB of float32), while an F32 GGUF and an HF directory are read as
// float32, as Open reads them. With adapterDir set, that PEFT adapter runs unmerged over the base.
// Export and merging need Open's float32 weights instead.
func OpenInference(ctx context.Context, path, adapterDir string) (*Model, error) {
	m, err := OpenFrozen(ctx, path, FrozenBase{})
	if adapterDir == "" {
		return m, err
	}
	return withAdapter(m, err, adapterDir)
}
