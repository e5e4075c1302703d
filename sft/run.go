package sft

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/train"
)

// Summary describes the data a run trains on; String is the line Run prints before training.
type Summary struct {
	Source    string      // dataset_name
	Format    data.Format // of the training rows
	Mask      string      // the loss mask in effect
	MaxLength int
	Packing   bool
	BatchSize int // per_device_train_batch_size, for the padding estimate
	PadID     int32
	Train     data.Stats
	Eval      *data.Stats // nil without evaluation data
}

// Efficiency is the share of the rows' token slots that hold real tokens: with packing, tokens /
// (rows · max_length), which does not depend on the order; without, tokens / (tokens + padding)
// for batches of BatchSize in file order (the loop's shuffle moves it a little).
func (s Summary) Efficiency() float64 {
	st := s.Train
	if s.Packing {
		return float64(st.Tokens) / float64(st.RowsPerEpoch*s.MaxLength)
	}
	return float64(st.Tokens) / float64(st.Tokens+st.PadTokens)
}

func (s Summary) String() string {
	st := s.Train
	line := fmt.Sprintf("sft data: %s (%s, loss on %s): %d examples, %d truncated to max_length %d (%d tokens cut), %d dropped with no trained token left, %d tokens, %d trained",
		filepath.Base(s.Source), s.Format, s.Mask, st.Examples, st.Truncated, s.MaxLength, st.TruncatedTokens, st.Dropped, st.Tokens, st.TrainedTokens)
	if s.Packing {
		line += fmt.Sprintf(", packing efficiency %.1f%% (%d rows of %d)", 100*s.Efficiency(), st.RowsPerEpoch, s.MaxLength)
	} else {
		line += fmt.Sprintf(", padding efficiency %.1f%% (batches of %d in file order)", 100*s.Efficiency(), s.BatchSize)
	}
	if s.Eval != nil {
		line += fmt.Sprintf("; eval: %d examples, %d truncated, %d dropped, %d trained tokens", s.Eval.Examples, s.Eval.Truncated, s.Eval.Dropped, s.Eval.TrainedTokens)
	} else {
		line += "; no eval data"
	}
	return line
}

var _ recipe.Prepare[Config] = Prepare

// Prepare loads the model and data that cfg names, tokenizes and batches the data, and returns the
// job, whose report is the data summary. It checks everything that can be checked before training
// and writes nothing.
func Prepare(ctx context.Context, cfg Config, _ ...train.Option) (*recipe.Job, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	trainSet, evalSet, err := cfg.Data.LoadContext(ctx, uint64(*cfg.Seed))
	if err != nil {
		return nil, err
	}
	if trainSet.Format == data.FormatPreference {
		return nil, fmt.Errorf("dataset_name: %s holds preference pairs (chosen/rejected); sft trains on text, messages, prompt/completion or alpaca rows", trainSet.Source)
	}
	base, err := recipe.Open(ctx, "model_name_or_path", cfg.ModelNameOrPath, cfg.Model, cfg.Data.ChatTemplate)
	if err != nil {
		return nil, err
	}
	if err := base.Adapt(uint64(*cfg.Seed)); err != nil {
		return nil, err
	}
	eos := base.Ckpt.Tok.EOS()
	bc := cfg.Data.BatchConfig(cfg.PerDeviceTrainBatchSize, base.Pad)
	trainB, err := batcher(ctx, base.Tok, trainSet, cfg.Data.Mask(), bc, eos)
	if err != nil {
		return nil, err
	}
	sum := Summary{Source: trainSet.Source, Format: trainSet.Format, Mask: maskName(cfg.Data.Mask(), trainSet),
		MaxLength: cfg.Data.MaxLength, Packing: cfg.Data.Packing, BatchSize: cfg.PerDeviceTrainBatchSize,
		PadID: base.Pad, Train: trainB.Stats()}
	var evalB *data.Batcher
	if evalSet != nil {
		bc.BatchSize = cfg.PerDeviceEvalBatchSize
		if evalB, err = batcher(ctx, base.Tok, evalSet, cfg.Data.Mask(), bc, eos); err != nil {
			return nil, err
		}
		st := evalB.Stats()
		sum.Eval = &st
	}
	m := lm.New(base.Ckpt, cfg.PerDeviceTrainBatchSize)
	m.Checkpoint = cfg.GradientCheckpointing
	task := newTask(m, trainB, evalB, cfg.PerDeviceEvalBatchSize)
	task.ChatTemplate, task.Summary = base.ChatTemplate, sum
	return &recipe.Job{Args: cfg.Args, Task: task, Report: recipe.Lines([]string{sum.String()}, base.Describe())}, nil
}

// Run is `alignkit sft`: Prepare (nothing is written if it fails), the data summary printed to the
// log writer among opts, and the shared training loop.
func Run(ctx context.Context, cfg Config, opts ...train.Option) (train.Result, error) {
	return recipe.Run(ctx, Prepare, cfg, opts...)
}

// batcher tokenizes a dataset's records and collates them.
func batcher(ctx context.Context, tok *data.Tokenizer, ds *data.Dataset, mode data.MaskMode, bc data.BatchConfig, eos int32) (*data.Batcher, error) {
	exs, err := tok.Examples(ctx, ds.Records, mode)
	if err != nil {
		return nil, err
	}
	b, err := data.NewBatcher(exs, eos, bc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (max_length %d)", ds.Source, err, bc.MaxLength)
	}
	return b, nil
}

// maskName is the loss mask a dataset trains with: the configured one, or its format's default.
func maskName(mode data.MaskMode, ds *data.Dataset) string {
	if mode != "" {
		return string(mode)
	}
	switch {
	case ds.Format == data.FormatText:
		return string(data.MaskAll)
	case ds.Format == data.FormatConversation:
		return string(data.MaskAssistantOnly)
	default:
		return string(data.MaskCompletionOnly)
	}
}
