package data

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// SplitConfig says where evaluation data comes from: a fraction of the
// training file (EvalSplit), or a file of its own (Eval), not both.
type SplitConfig struct {
	Train     Source  `mapstructure:"train" yaml:"train"`
	Eval      *Source `mapstructure:"eval" yaml:"eval"`
	EvalSplit float64 `mapstructure:"eval_split" yaml:"eval_split"`
	Seed      uint64  `mapstructure:"seed" yaml:"seed"`
}

// SplitIndices splits n rows into train and eval index lists, both
// ascending. The eval rows are round(n*frac) rows (at least one when frac >
// 0, and never all of them) chosen by a permutation seeded with seed, so the
// same seed always gives the same split.
func SplitIndices(n int, frac float64, seed uint64) (train, eval []int, err error) {
	if frac < 0 || frac >= 1 || math.IsNaN(frac) {
		return nil, nil, fmt.Errorf("eval_split %v: want 0 <= eval_split < 1", frac)
	}
	k := int(math.Round(float64(n) * frac))
	if frac > 0 && k == 0 {
		k = 1
	}
	if k >= n && k > 0 {
		return nil, nil, fmt.Errorf("eval_split %v of %d rows leaves no training rows", frac, n)
	}
	perm := rand.New(rand.NewPCG(seed, splitStream)).Perm(n)
	eval = append([]int(nil), perm[:k]...)
	train = append([]int(nil), perm[k:]...)
	sort.Ints(eval)
	sort.Ints(train)
	return train, eval, nil
}

// Subset is the dataset restricted to the given row positions (indices into
// Records or Pairs).
func (d *Dataset) Subset(idx []int) *Dataset {
	out := &Dataset{Source: d.Source, Format: d.Format}
	for _, i := range idx {
		if d.Format == FormatPreference {
			out.Pairs = append(out.Pairs, d.Pairs[i])
		} else {
			out.Records = append(out.Records, d.Records[i])
		}
	}
	return out
}

// LoadSplit loads the training source and its evaluation data. eval is nil
// when neither EvalSplit nor Eval is set.
func LoadSplit(cfg SplitConfig) (train, eval *Dataset, err error) {
	return loadSplit(context.Background(), cfg)
}

// loadSplit is LoadSplit, stopping when ctx ends while a file is read.
func loadSplit(ctx context.Context, cfg SplitConfig) (train, eval *Dataset, err error) {
	if cfg.Eval != nil && cfg.EvalSplit > 0 {
		return nil, nil, fmt.Errorf("data: set either eval_split or an eval file, not both")
	}
	all, err := load(ctx, cfg.Train)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Eval != nil {
		ev, err := load(ctx, *cfg.Eval)
		if err != nil {
			return nil, nil, err
		}
		if kind(ev.Format) != kind(all.Format) {
			return nil, nil, fmt.Errorf("data: eval file %s has format %s, training file %s has %s", ev.Source, ev.Format, all.Source, all.Format)
		}
		return all, ev, nil
	}
	if cfg.EvalSplit == 0 {
		return all, nil, nil
	}
	tr, ev, err := SplitIndices(all.Len(), cfg.EvalSplit, cfg.Seed)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", all.Source, err)
	}
	return all.Subset(tr), all.Subset(ev), nil
}

// kind groups formats that train the same way.
func kind(f Format) string {
	if f == FormatPreference {
		return "preference"
	}
	return "sft"
}

// splitStream separates the split's random stream from the training loop's
// epoch shuffles, which use the epoch number as their second PCG word.
const splitStream = 0x73706c6974 // "split"
