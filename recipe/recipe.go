package recipe

import (
	"context"
	"fmt"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/model/quant"
	"github.com/alignkit/alignkit/model/tokenizer"
	"github.com/alignkit/alignkit/train"
)

// Job is a prepared training run: everything loaded and checked, nothing written yet.
type Job struct {
	// Args are the training loop's keys, defaults filled in.
	Args train.Args
	// Task is what the loop trains.
	Task train.Task
	// Report holds the lines printed before training: warnings first, then the data summary.
	Report []string
	// Close, when set, releases what the task holds outside the process once the loop ends, even
	// when it fails (an RL trainer's rollout adapter on a server). Run calls it with a context
	// that is not canceled and logs its error: the trained model is saved by then.
	Close func(ctx context.Context) error
}

// Prepare is the shape of every trainer's Prepare.
type Prepare[C any] func(ctx context.Context, cfg C, opts ...train.Option) (*Job, error)

// Run prepares cfg with prepare, prints the job's report to the log writer among opts (os.Stderr
// by default) and trains with the shared loop. Nothing is written when preparing fails.
func Run[C any](ctx context.Context, prepare Prepare[C], cfg C, opts ...train.Option) (train.Result, error) {
	job, err := prepare(ctx, cfg, opts...)
	if err != nil {
		return train.Result{}, err
	}
	log := train.LogWriter(opts...)
	for _, line := range job.Report {
		fmt.Fprintln(log, line)
	}
	// The config goes first so that a caller's own WithConfig replaces it.
	opts = append([]train.Option{train.WithConfig(conf.Values(cfg))}, opts...)
	res, err := train.Run(ctx, job.Args, job.Task, opts...)
	if job.Close != nil {
		if cerr := job.Close(context.WithoutCancel(ctx)); cerr != nil {
			fmt.Fprintf(log, "%v\n", cerr)
		}
	}
	return res, err
}

// ModelArgs are the keys, shared by every trainer, that say how the model is held and what of it
// trains: TRL's ModelConfig names (use_peft, lora_*, torch_dtype, load_in_4bit, ...) and an adapter
// to start from.
type ModelArgs struct {
	// AdapterNameOrPath is a PEFT LoRA adapter directory over model_name_or_path to continue
	// training ("" for none).
	AdapterNameOrPath string       `mapstructure:"adapter_name_or_path" doc:"a PEFT LoRA adapter directory over model_name_or_path to continue training (implies use_peft)"`
	Lora              lora.Config  `mapstructure:",squash"`
	Quant             quant.Config `mapstructure:",squash"`
}

// Validate checks the LoRA and storage keys; a quantized base needs LoRA (nothing of it can train).
func (m ModelArgs) Validate() error {
	if err := m.Lora.Validate(); err != nil {
		return err
	}
	if err := m.Quant.Validate(); err != nil {
		return err
	}
	if m.Quant.Quantizes() && !m.Lora.UsePEFT && m.AdapterNameOrPath == "" {
		return fmt.Errorf("torch_dtype/load_in_8bit/load_in_4bit: a frozen base trains nothing on its own; set use_peft: true (LoRA) or hold the base as float32")
	}
	return nil
}

// Validate is every trainer's first check: the loop's keys, model_name_or_path, and the model
// keys. Each error names its key.
func Validate(args train.Args, modelNameOrPath string, m ModelArgs) error {
	if err := args.ValidateTrainer(modelNameOrPath); err != nil {
		return err
	}
	return m.Validate()
}

// Save writes a trained model into dir: the full model as an HF directory or, with an adapter, the
// PEFT adapter directory, each with its tokenizer files, and chatTemplate (the template the data
// was rendered with) when it is set, so the model is prompted the way it was trained.
func Save(dir string, m *lm.Model, chatTemplate string) error {
	if err := m.Save(dir); err != nil {
		return err
	}
	if chatTemplate == "" {
		return nil
	}
	return tokenizer.WriteChatTemplate(dir, chatTemplate)
}

// Base is what every trainer opens first: the model, and how data rows become its tokens.
type Base struct {
	Ckpt *checkpoint.Model
	// Tok renders rows with the chat template in effect and tokenizes them; template text may hold
	// special tokens, message text never does.
	Tok *data.Tokenizer
	// Pad is the padding id (lm.PadID).
	Pad int32
	// ChatTemplate is the Jinja source rows are rendered with when it is not the model's own (a
	// built-in name or a file given as chat_template): the trained model is saved with it. "" when
	// the model's own template (or none) is in effect.
	ChatTemplate string

	args ModelArgs
	// adapterFrom is where a loaded adapter came from ("" when none was loaded).
	adapterFrom string
}

// Lines is a Job's report: lines, then a Describe line when it is not empty.
func Lines(lines []string, describe string) []string {
	if describe != "" {
		return append(lines, describe)
	}
	return lines
}

// Describe is the line a trainer reports about what trains: a new LoRA adapter, or the one it
// continues and where it came from; "" when the whole model trains.
func (b *Base) Describe() string {
	ad := b.Ckpt.Adapter
	if ad == nil {
		return ""
	}
	n := 0
	for _, l := range ad.Layers {
		n += len(l.A.Data) + len(l.B.Data)
	}
	for _, t := range ad.Saved {
		n += len(t.Data)
	}
	what := "a new LoRA adapter"
	if b.adapterFrom != "" {
		what = "the LoRA adapter in " + b.adapterFrom
	}
	return fmt.Sprintf("training %s over %s: r %d, alpha %g, %d adapted weights, %d saved modules, %d trainable parameters",
		what, b.Ckpt.Source, ad.R, ad.Alpha, len(ad.Layers), len(ad.Saved), n)
}

// Adapt gives the model a new LoRA adapter (A Kaiming-uniform from seed, B zero, as PEFT) when
// use_peft is set and none was loaded; the base is frozen from then on and only the adapter (and
// lora_modules_to_save) trains. Call it on the model that will train, after any change of head.
func (b *Base) Adapt(seed uint64) error {
	if !b.args.Lora.UsePEFT || b.Ckpt.Adapter != nil {
		return nil
	}
	ad, err := lora.New(b.args.Lora, b.Ckpt.Weights, seed)
	if err != nil {
		return err
	}
	b.Ckpt.Adapter = ad
	return nil
}

// Open loads the model at path (an HF directory or a .gguf file, with its tokenizer, and the
// adapter m names) and resolves chatTemplate ("" for the model's own). key is the config key that
// named path, for errors; reading the model stops when ctx ends. A frozen base (use_peft, or an adapter to continue) is opened by
// checkpoint.OpenFrozen: a GGUF's linear weights stay in the file's own blocks (Q4_K, Q8_0, ...)
// unless torch_dtype/load_in_* ask otherwise, an HF model's are converted as each tensor is read, and
// LoRA's modules_to_save stay float32; a GGUF already quantized is never re-quantized into another
// format (quant.Config.Hold says why). Full fine-tuning opens everything as float32. A new adapter is
// made by Adapt, once the trainer has the model it trains (a reward trainer first swaps the LM head
// for a score head).
func Open(ctx context.Context, key, path string, m ModelArgs, chatTemplate string) (*Base, error) {
	var ck *checkpoint.Model
	var err error
	frozen := checkpoint.FrozenBase{Quant: m.Quant, Keep: m.Lora.Saves}
	switch {
	case m.AdapterNameOrPath != "":
		ck, err = checkpoint.OpenAdapterFrozen(ctx, path, m.AdapterNameOrPath, frozen)
	case m.Lora.UsePEFT:
		ck, err = checkpoint.OpenFrozen(ctx, path, frozen)
	default:
		ck, err = checkpoint.OpenContext(ctx, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	tok, err := lm.DataTokenizer(ck.Tok, chatTemplate)
	if err != nil {
		return nil, fmt.Errorf("chat_template: %w", err)
	}
	b := &Base{Ckpt: ck, Tok: tok, Pad: lm.PadID(ck.Tok, ck.Weights.Config), args: m}
	switch {
	case m.AdapterNameOrPath != "":
		b.adapterFrom = m.AdapterNameOrPath
	case ck.Adapter != nil:
		b.adapterFrom = path // a PEFT adapter directory given as the model
	}
	if tmpl := tok.Template(); tmpl != nil && tmpl.Source() != ck.Tok.ChatTemplate() {
		b.ChatTemplate = tmpl.Source()
	}
	return b, nil
}
