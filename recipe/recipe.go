package recipe

import (
	"context"
	"fmt"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
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
	return train.Run(ctx, job.Args, job.Task, opts...)
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
}

// Open loads the model at path (an HF directory or a .gguf file, with its tokenizer) and resolves
// chatTemplate ("" for the model's own). key is the config key that named path, for errors.
func Open(key, path, chatTemplate string) (*Base, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	tok, err := lm.DataTokenizer(ck.Tok, chatTemplate)
	if err != nil {
		return nil, fmt.Errorf("chat_template: %w", err)
	}
	b := &Base{Ckpt: ck, Tok: tok, Pad: lm.PadID(ck.Tok, ck.Weights.Config)}
	if tmpl := tok.Template(); tmpl != nil && tmpl.Source() != ck.Tok.ChatTemplate() {
		b.ChatTemplate = tmpl.Source()
	}
	return b, nil
}
