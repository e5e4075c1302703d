package reward

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/train"
)

// Summary describes the data and model a run trains; String is the line Run prints before training.
type Summary struct {
	Source       string
	Pairs        int
	Identical    int // rows skipped: chosen identical to rejected (training and eval files together)
	Margins      string
	FromCausalLM bool // a fresh score head replaced lm_head
	PadID        int32
	Train        data.PairStats
	Eval         *data.PairStats
	Warnings     []string
}

func (s Summary) String() string {
	head := "continuing a reward model"
	if s.FromCausalLM {
		head = "score head initialised on a causal LM"
	}
	line := fmt.Sprintf("reward data: %s: %d pairs, %d skipped as chosen == rejected; margins: %s; %s; train: %s",
		filepath.Base(s.Source), s.Pairs, s.Identical, s.Margins, head, s.Train)
	if s.Eval != nil {
		line += "; eval: " + s.Eval.String()
	} else {
		line += "; no eval data"
	}
	return line
}

var _ recipe.Prepare[Config] = Prepare

// Prepare loads the model and data cfg names, tokenizes and batches the pairs, and returns the
// job, whose report is the warnings and the data summary. It checks everything that can be checked
// before training and writes nothing.
func Prepare(ctx context.Context, cfg Config, _ ...train.Option) (*recipe.Job, error) {
	cfg = cfg.Defaults()
	t, err := prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &recipe.Job{Args: cfg.Args, Task: t, Report: recipe.Lines(append(slices.Clone(t.Summary.Warnings), t.Summary.String()), t.describe)}, nil
}

// Run is `alignkit reward train`: Prepare (nothing is written if it fails), its warnings and data
// summary printed to the log writer among opts, and the shared training loop.
func Run(ctx context.Context, cfg Config, opts ...train.Option) (train.Result, error) {
	return recipe.Run(ctx, Prepare, cfg, opts...)
}

func prepare(ctx context.Context, cfg Config) (*Task, error) {
	var sum Summary
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	table, err := cfg.marginTable()
	if err != nil {
		return nil, fmt.Errorf("margin_map: %w", err)
	}
	seed := uint64(*cfg.Seed)
	trainSet, evalSet, err := loadSplit(ctx, cfg, table, seed)
	if err != nil {
		return nil, err
	}
	sum.Source, sum.Pairs = trainSet.Source, trainSet.Len()
	sum.Identical = len(trainSet.Identical)
	if w := trainSet.IdenticalWarning(); w != "" {
		sum.Warnings = append(sum.Warnings, w)
	}
	if evalSet != nil && cfg.Data.EvalDatasetName != "" {
		sum.Identical += len(evalSet.Identical)
		if w := evalSet.IdenticalWarning(); w != "" {
			sum.Warnings = append(sum.Warnings, w)
		}
	}
	switch {
	case cfg.RatingColumn != "" && table != nil:
		sum.Margins = fmt.Sprintf("from rating column %q (preset %s, %d custom)", cfg.RatingColumn, cfg.MarginPreset, len(cfg.MarginMap))
	case cfg.RatingColumn != "":
		sum.Margins = fmt.Sprintf("none (rating column %q buckets the eval accuracy)", cfg.RatingColumn)
	case trainSet.Margins != nil:
		sum.Margins = "from the margin column"
	default:
		sum.Margins = "none"
	}

	base, err := recipe.Open(ctx, "model_name_or_path", cfg.ModelNameOrPath, cfg.Model, cfg.Data.ChatTemplate)
	if err != nil {
		return nil, err
	}
	ck, tok, pad := base.Ckpt, base.Tok, base.Pad
	if !ck.Weights.Config.IsRewardModel() {
		adapter := ck.Adapter
		if ck, err = FromCausalLM(ck, seed); err != nil {
			return nil, fmt.Errorf("model_name_or_path: %w", err)
		}
		ck.Adapter, base.Ckpt = adapter, ck
		sum.FromCausalLM = true
	}
	// LoRA goes on the model that trains: the score head exists now, and trains in full.
	if err := base.Adapt(seed); err != nil {
		return nil, err
	}
	describe := base.Describe()
	sum.PadID = pad
	bc := data.PairBatchConfig{BatchSize: cfg.PerDeviceTrainBatchSize, MaxLength: cfg.Data.MaxLength,
		MaxPromptLength: cfg.MaxPromptLength, PadID: pad}
	trainB, err := pairBatcher(ctx, tok, trainSet, bc, ck.Tok.EOS())
	if err != nil {
		return nil, err
	}
	sum.Train = trainB.Stats()
	var evalB *data.PairBatcher
	if evalSet != nil {
		bc.BatchSize = cfg.PerDeviceEvalBatchSize
		if evalB, err = pairBatcher(ctx, tok, evalSet, bc, ck.Tok.EOS()); err != nil {
			return nil, err
		}
		st := evalB.Stats()
		sum.Eval = &st
	}
	m := lm.New(ck, 2*cfg.PerDeviceTrainBatchSize)
	m.Checkpoint = cfg.GradientCheckpointing
	t := &Task{describe: describe, Model: m, EvalModel: m, TrainData: trainB, EvalData: evalB, TrainSet: trainSet, EvalSet: evalSet,
		CenterCoef: cfg.CenterRewardsCoefficient, Truncation: Truncation{MaxLength: cfg.Data.MaxLength, MaxPromptLength: cfg.MaxPromptLength}}
	if evalB != nil && cfg.PerDeviceEvalBatchSize != cfg.PerDeviceTrainBatchSize {
		t.EvalModel = lm.New(ck, 2*cfg.PerDeviceEvalBatchSize)
		t.EvalModel.Checkpoint = cfg.GradientCheckpointing
	}
	t.ChatTemplate, t.Summary = base.ChatTemplate, sum
	return t, nil
}

// loadSplit loads the training pairs and the evaluation pairs (nil when there are none): an eval
// file, or eval_split of the training file chosen with seed, then max_train_samples and
// max_eval_samples.
func loadSplit(ctx context.Context, cfg Config, table *MarginTable, seed uint64) (trainSet, evalSet *PairSet, err error) {
	a := cfg.Data.Defaults()
	all, err := loadPairsSplit(ctx, a.DatasetName, a.DatasetTrainSplit, a.Columns, cfg.RatingColumn, table)
	if err != nil {
		return nil, nil, err
	}
	trainSet = all
	switch {
	case a.EvalDatasetName != "":
		if evalSet, err = loadPairsSplit(ctx, a.EvalDatasetName, a.DatasetTestSplit, a.Columns, cfg.RatingColumn, table); err != nil {
			return nil, nil, err
		}
	case a.EvalSplit > 0:
		tr, ev, err := data.SplitIndices(all.Len(), a.EvalSplit, seed)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", all.Source, err)
		}
		trainSet, evalSet = all.subset(tr), all.subset(ev)
		evalSet.Identical = nil
	}
	trainSet = trainSet.first(a.MaxTrainSamples)
	if evalSet != nil {
		evalSet = evalSet.first(a.MaxEvalSamples)
	}
	return trainSet, evalSet, nil
}

// pairBatcher tokenizes pairs and collates them.
func pairBatcher(ctx context.Context, tok *data.Tokenizer, set *PairSet, bc data.PairBatchConfig, eos int32) (*data.PairBatcher, error) {
	exs, err := tok.PairExamples(ctx, set.Pairs)
	if err != nil {
		return nil, err
	}
	return data.NewPairBatcher(exs, eos, bc)
}
