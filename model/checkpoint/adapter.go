package checkpoint

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// OpenAdapter opens the base model (an HF directory or a GGUF, as OpenContext) and the PEFT LoRA
// adapter directory adapterDir over it; the adapter is checked against the base's shapes.
func OpenAdapter(ctx context.Context, base, adapterDir string) (*Model, error) {
	m, err := OpenContext(ctx, base)
	return withAdapter(m, err, adapterDir)
}

// withAdapter loads the PEFT adapter directory adapterDir over m, the base just opened (or returns
// openErr, the error opening it), checked against the base's shapes; the base's tokenizer stays.
func withAdapter(m *Model, openErr error, adapterDir string) (*Model, error) {
	if openErr != nil {
		return nil, openErr
	}
	ad, _, err := lora.Load(adapterDir, m.Weights)
	if err != nil {
		return nil, err
	}
	m.Adapter = ad
	return m, nil
}

// openAdapterDir opens a PEFT adapter directory given where a model is expected: the base its
// adapter_config.json names, the adapter over it, and the directory's own tokenizer files when it
// has them (a trainer saves them there, with the chat template it trained with). Source stays the
// base, so an adapter trained further records the real base.
// open opens the base (Open, or OpenFrozen for a LoRA run's frozen base).
func openAdapterDir(dir string, open func(string) (*Model, error)) (*Model, error) {
	meta, err := lora.ReadMeta(dir)
	if err != nil {
		return nil, err
	}
	base := meta.BaseModel
	if abs, err := filepath.Abs(base); err == nil {
		if d, err := filepath.Abs(dir); err == nil && abs == d {
			return nil, fmt.Errorf("%s: base_model_name_or_path names the adapter directory itself", filepath.Join(dir, lora.ConfigFile))
		}
	}
	if lora.IsAdapterDir(base) {
		return nil, fmt.Errorf("%s: base_model_name_or_path %s is itself an adapter directory; alignkit stacks no adapters (merge the first one with export --merge)", filepath.Join(dir, lora.ConfigFile), base)
	}
	m, err := open(base)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	if meta.TaskType == lora.TaskSeqCls && !m.Weights.Config.IsRewardModel() {
		return nil, fmt.Errorf("%s: a reward model's adapter (task_type SEQ_CLS) over the causal LM %s: open it as a reward model (reward_model_name_or_path, reward score)", dir, base)
	}
	return AttachAdapterDir(m, dir)
}

// AttachAdapterDir loads the PEFT adapter directory dir over m, the base it names as opened (a
// causal LM turned into a reward model for a SEQ_CLS adapter, say), and reads the directory's own
// tokenizer files when it has them (a trainer saves them there, with the chat template it trained
// with); Dir then becomes the adapter directory, whose files (tokenizer, a reward model's
// truncation) describe the trained model.
func AttachAdapterDir(m *Model, dir string) (*Model, error) {
	ad, _, err := lora.Load(dir, m.Weights)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	m.Adapter = ad
	if tokenizer.HasFiles(dir) {
		tok, err := tokenizer.Load(dir)
		if err != nil {
			return nil, err
		}
		if err := checkVocab(m.Weights, tok, dir); err != nil {
			return nil, err
		}
		m.Tok, m.Dir = tok, dir
	}
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
