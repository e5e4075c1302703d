package data

import (
	"context"
	"fmt"
	"math"
)

// Args are the data keys every trainer shares, spelled as TRL spells them where TRL has the key.
// A trainer's config holds them beside train.Args:
//
//	type Config struct {
//		train.Args `mapstructure:",squash"`
//		Data data.Args `mapstructure:",squash"`
//		...
//	}
//
// (a named field: two anonymous fields both called Args cannot share a struct; `squash` still puts
// these keys at the top level of the YAML).
//
// The zero value of each key means its documented default; Defaults fills the defaults in and
// Validate checks the result.
type Args struct {
	// DatasetName is the training file: a local .parquet, .jsonl or .json file in one of TRL's
	// formats (TRL's dataset_name names a Hub dataset; here it is a path).
	DatasetName string `mapstructure:"dataset_name" doc:"training data: a local .parquet, .jsonl or .json file in a TRL format (text, messages, prompt/completion, alpaca, or chosen/rejected for preference trainers)"`
	// DatasetTrainSplit is the split dataset_name is read from when it names a Hugging Face dataset
	// in the local hub cache rather than a file (TRL's ScriptArguments key). Default "train".
	DatasetTrainSplit string `mapstructure:"dataset_train_split" doc:"split read when dataset_name is a Hugging Face dataset name (org/name[@revision]) in the local hub cache (default train)"`
	// DatasetTestSplit is the split eval_dataset_name is read from when it names a Hugging Face
	// dataset (TRL's ScriptArguments key). Default "test".
	DatasetTestSplit string `mapstructure:"dataset_test_split" doc:"split read when eval_dataset_name is a Hugging Face dataset name in the local hub cache (default test)"`
	// EvalDatasetName is an evaluation file of the same kind; exclusive with EvalSplit.
	EvalDatasetName string `mapstructure:"eval_dataset_name" doc:"evaluation data file of the same kind as dataset_name (exclusive with eval_split)"`
	// EvalSplit holds out this fraction of dataset_name's rows for evaluation, chosen by a
	// permutation seeded with the run's seed (TRL scripts' train_test_split(test_size, seed)).
	// 0 means no split.
	EvalSplit float64 `mapstructure:"eval_split" doc:"fraction of dataset_name held out for evaluation, seeded by seed (0: none; exclusive with eval_dataset_name)"`
	// Columns maps canonical column names (text, messages, prompt, completion, instruction, input,
	// output, chosen, rejected, ...) to the file's own names.
	Columns map[string]string `mapstructure:"columns" doc:"canonical column name -> the file's column name, e.g. {messages: conversation}"`
	// ChatTemplate is a built-in template name (llama-2, mistral, chatml, zephyr, llama-3), a
	// template file, or Jinja source; empty uses the tokenizer's own chat_template.
	ChatTemplate string `mapstructure:"chat_template" doc:"chat template: a built-in name (chatml, llama-2, llama-3, mistral, zephyr), a .jinja file, or Jinja source; empty: the tokenizer's own"`
	// MaxLength is the longest training row in tokens; longer examples are truncated (their start
	// kept) and counted. Default 1024 (TRL's SFTConfig).
	MaxLength int `mapstructure:"max_length" doc:"longest sequence in tokens; longer examples are truncated, keeping their start (default 1024)" zero:"default"`
	// Packing fills each row with several whole examples (best-fit decreasing) that attend only
	// to themselves (block-diagonal attention, positions restarting at 0).
	Packing bool `mapstructure:"packing" doc:"pack several examples per row with block-diagonal attention (default false)"`
	// LossMask says which tokens carry loss: all, completion_only, assistant_only or
	// last_turn_only. Empty: by format (text all, prompt/completion completion_only,
	// conversations assistant_only), which is what TRL's completion_only_loss and
	// assistant_only_loss switches select.
	LossMask string `mapstructure:"loss_mask" doc:"which tokens carry loss: all, completion_only, assistant_only or last_turn_only (default: all for text, completion_only for prompt/completion, assistant_only for conversations)"`
	// MaxTrainSamples keeps only the first this many training rows (after the eval split), as
	// transformers' example scripts' max_train_samples; 0 keeps all. TRL has no such key.
	MaxTrainSamples int `mapstructure:"max_train_samples" doc:"use only the first N training rows, after the eval split (0: all)"`
	// MaxEvalSamples keeps only the first this many evaluation rows; 0 keeps all.
	MaxEvalSamples int `mapstructure:"max_eval_samples" doc:"use only the first N evaluation rows (0: all)"`
}

// DefaultMaxLength is max_length's default, TRL's SFTConfig value.
const DefaultMaxLength = 1024

// Defaults returns a copy of a with zero keys replaced by their defaults.
func (a Args) Defaults() Args {
	if a.MaxLength == 0 {
		a.MaxLength = DefaultMaxLength
	}
	if a.DatasetTrainSplit == "" {
		a.DatasetTrainSplit = "train"
	}
	if a.DatasetTestSplit == "" {
		a.DatasetTestSplit = "test"
	}
	return a
}

// Validate checks a (after Defaults) and returns one error line naming the first bad key. It does
// not read the files: Load reports their problems with file, row and column.
func (a Args) Validate() error {
	switch {
	case a.DatasetName == "":
		return fmt.Errorf("dataset_name: must be set (a .parquet, .jsonl or .json file)")
	case math.IsNaN(a.EvalSplit) || a.EvalSplit < 0 || a.EvalSplit >= 1:
		return fmt.Errorf("eval_split: must be in [0, 1), got %g", a.EvalSplit)
	case a.EvalSplit > 0 && a.EvalDatasetName != "":
		return fmt.Errorf("eval_split: set either eval_split (%g) or eval_dataset_name (%s), not both", a.EvalSplit, a.EvalDatasetName)
	case a.MaxLength < 2:
		return fmt.Errorf("max_length: must be >= 2, got %d", a.MaxLength)
	case a.MaxTrainSamples < 0:
		return fmt.Errorf("max_train_samples: must be >= 0 (0: all rows), got %d", a.MaxTrainSamples)
	case a.MaxEvalSamples < 0:
		return fmt.Errorf("max_eval_samples: must be >= 0 (0: all rows), got %d", a.MaxEvalSamples)
	}
	if _, err := ParseMaskMode(a.LossMask); err != nil {
		return fmt.Errorf("loss_mask: unknown %q (want all, completion_only, assistant_only or last_turn_only)", a.LossMask)
	}
	if _, err := newColumns(a.Columns); err != nil {
		return err // already "columns: ..."
	}
	return nil
}

// Mask is the loss_mask key as a MaskMode ("" for the format's default); call Validate first.
func (a Args) Mask() MaskMode { return MaskMode(a.LossMask) }

// Split is where the training and evaluation rows come from; seed drives eval_split.
func (a Args) Split(seed uint64) SplitConfig {
	d := a.Defaults()
	sc := SplitConfig{Train: Source{Path: a.DatasetName, Columns: a.Columns, Split: d.DatasetTrainSplit}, EvalSplit: a.EvalSplit, Seed: seed}
	if a.EvalDatasetName != "" {
		sc.Eval = &Source{Path: a.EvalDatasetName, Columns: a.Columns, Split: d.DatasetTestSplit}
	}
	return sc
}

// Load reads and validates the training rows and the evaluation rows (nil when there are none),
// then applies max_train_samples and max_eval_samples.
func (a Args) Load(seed uint64) (train, eval *Dataset, err error) {
	return a.LoadContext(context.Background(), seed)
}

// LoadContext is Load, stopping when ctx ends while a file is read (every CheckEvery rows of
// JSONL, every batch of Parquet rows): a file of 10^6 rows takes tens of seconds to read.
func (a Args) LoadContext(ctx context.Context, seed uint64) (train, eval *Dataset, err error) {
	train, eval, err = loadSplit(ctx, a.Split(seed))
	if err != nil {
		return nil, nil, err
	}
	return capRows(train, a.MaxTrainSamples), capRows(eval, a.MaxEvalSamples), nil
}

// capRows keeps the first n rows of d (all when n is 0).
func capRows(d *Dataset, n int) *Dataset {
	if d == nil || n <= 0 || n >= d.Len() {
		return d
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return d.Subset(idx)
}

// BatchConfig is the batcher configuration these keys describe for rows of batchSize examples (or
// packed rows) padded with pad. Examples that truncation leaves without any trained target are
// dropped and counted (Stats.Dropped) rather than failing the run. The training loop owns the
// shuffle, so the batcher does not shuffle.
func (a Args) BatchConfig(batchSize int, pad int32) BatchConfig {
	return BatchConfig{BatchSize: batchSize, MaxLength: a.Defaults().MaxLength, PadID: pad, Packing: a.Packing, DropUntrained: true}
}
