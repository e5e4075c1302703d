package checkpoint

import (
	"fmt"

	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/lora"
)

// OpenAdapter opens the base model (an HF directory or a GGUF, as Open) and the PEFT LoRA adapter
// directory adapterDir over it; the adapter is checked against the base's shapes.
func OpenAdapter(base, adapterDir string) (*Model, error) {
	m, err := Open(base)
	if err != nil {
		return nil, err
	}
	ad, _, err := lora.Load(adapterDir, m.Weights)
	if err != nil {
		return nil, err
	}
	m.Adapter = ad
	return m, nil
}

// SaveAdapter writes m's adapter as a PEFT adapter directory (adapter_config.json,
// adapter_model.safetensors) with the tokenizer files beside it, as a PEFT trainer's output_dir.
// base_model_name_or_path records m.Source.
func SaveAdapter(dir string, m *Model) error {
	if m.Adapter == nil {
		return fmt.Errorf("checkpoint: SaveAdapter: %s has no adapter", m.Source)
	}
	if err := lora.Save(dir, m.Adapter, m.Weights, lora.Meta{BaseModel: m.Source}); err != nil {
		return err
	}
	if m.Dir != "" {
		return hf.CopyTokenizerFiles(m.Dir, dir)
	}
	return WriteTokenizer(dir, m.Tok)
}

// Merged returns m with its adapter folded into float32 weights (lora.Merge) and no adapter; m is
// unchanged. A model without an adapter is returned as is.
func Merged(m *Model) (*Model, error) {
	if m.Adapter == nil {
		return m, nil
	}
	w, err := lora.Merge(m.Weights, m.Adapter)
	if err != nil {
		return nil, err
	}
	out := *m
	out.Weights, out.Adapter = w, nil
	return &out, nil
}
