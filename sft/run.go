package sft

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
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

// Prepare loads the model and data that cfg names, tokenizes and batches the data, and returns the
// task. It checks everything that can be checked before training and writes nothing.
func Prepare(cfg Config) (*Task, Summary, error) {
	cfg = cfg.Defaults()
	var sum Summary
	if err := cfg.Validate(); err != nil {
		return nil, sum, err
	}
	trainSet, evalSet, err := cfg.Data.Load(uint64(*cfg.Seed))
	if err != nil {
		return nil, sum, err
	}
	if trainSet.Format == data.FormatPreference {
		return nil, sum, fmt.Errorf("dataset_name: %s holds preference pairs (chosen/rejected); sft trains on text, messages, prompt/completion or alpaca rows", trainSet.Source)
	}
	ck, err := checkpoint.Open(cfg.ModelNameOrPath)
	if err != nil {
		return nil, sum, fmt.Errorf("model_name_or_path: %w", err)
	}
	pad := lm.PadID(ck.Tok, ck.Weights.Config)
	tok, err := lm.DataTokenizer(ck.Tok, cfg.Data.ChatTemplate)
	if err != nil {
		return nil, sum, err // "chat template ...: ...", naming the key already
	}
	bc := cfg.Data.BatchConfig(cfg.PerDeviceTrainBatchSize, pad)
	trainB, err := batcher(tok, trainSet, cfg.Data.Mask(), bc, ck.Tok.EOS())
	if err != nil {
		return nil, sum, err
	}
	sum = Summary{Source: trainSet.Source, Format: trainSet.Format, Mask: maskName(cfg.Data.Mask(), trainSet),
		MaxLength: cfg.Data.MaxLength, Packing: cfg.Data.Packing, BatchSize: cfg.PerDeviceTrainBatchSize,
		PadID: pad, Train: trainB.Stats()}
	var evalB *data.Batcher
	if evalSet != nil {
		bc.BatchSize = cfg.PerDeviceEvalBatchSize
		if evalB, err = batcher(tok, evalSet, cfg.Data.Mask(), bc, ck.Tok.EOS()); err != nil {
			return nil, sum, err
		}
		st := evalB.Stats()
		sum.Eval = &st
	}
	m := lm.New(ck, cfg.PerDeviceTrainBatchSize)
	m.Checkpoint = cfg.GradientCheckpointing
	task := NewTask(m, trainB, evalB, cfg.PerDeviceEvalBatchSize)
	if tmpl := tok.Template(); tmpl != nil && tmpl.Source() != ck.Tok.ChatTemplate() {
		task.ChatTemplate = tmpl.Source()
	}
	return task, sum, nil
}

// Run is `alignkit sft`: it prepares the task (nothing is written if that fails), prints the data
// summary to log (os.Stderr when nil), and trains with the shared loop. opts go to train.Run after
// the log writer.
func Run(ctx context.Context, cfg Config, log io.Writer, opts ...train.Option) (train.Result, error) {
	if log == nil {
		log = os.Stderr
	}
	cfg = cfg.Defaults()
	task, sum, err := Prepare(cfg)
	if err != nil {
		return train.Result{}, err
	}
	fmt.Fprintln(log, sum)
	return train.Run(ctx, cfg.Args, task, append([]train.Option{train.WithLogWriter(log)}, opts...)...)
}

// batcher tokenizes a dataset's records and collates them.
func batcher(tok *data.Tokenizer, ds *data.Dataset, mode data.MaskMode, bc data.BatchConfig, eos int32) (*data.Batcher, error) {
	exs, err := tok.Examples(ds.Records, mode)
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
