package reward

import (
	"context"
	"fmt"

	"github.com/alignkit/alignkit/dist"
)

// Models is the set of reward models a config's reward_models list names, scored together: one
// model (of either role), whose score is the reward as is, or a helpfulness and a safety model,
// combined per generation as Llama 2 does (Select). It is what every command that scores
// (reward score, rlhf sample / run, grpo, eval winrate) loads, so that they combine alike.
// A Models is safe for concurrent use, as its Scorers are.
type Models struct {
	specs   []ModelSpec
	scorers []*Scorer
}

// Scores are a batch's rewards from Models.ScoreItems.
type Scores struct {
	// Reward is each item's reward: the one model's score, or with two models Select's R_c (the
	// chosen raw score, not whitened: whitening is over an RL batch, see Combine).
	Reward []float64
	// Model[k] is each item's score by the k-th model of the reward_models list.
	Model [][]float64
	// UsedSafety says, with two models, whether the safety score was chosen; nil with one.
	UsedSafety []bool
}

// LoadModels validates specs (ValidateSpecs) and loads each model with opts; errors name the
// reward_models entry at fault.
func LoadModels(specs []ModelSpec, opts ...ScorerOption) (*Models, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("reward_models: empty; name at least one reward model")
	}
	if err := ValidateSpecs(specs); err != nil {
		return nil, err
	}
	scorers := make([]*Scorer, len(specs))
	for i, s := range specs {
		sc, err := NewScorer(s.Path, opts...)
		if err != nil {
			return nil, fmt.Errorf("reward_models[%d].path: %w", i, err)
		}
		scorers[i] = sc
	}
	return &Models{specs: append([]ModelSpec(nil), specs...), scorers: scorers}, nil
}

// NewModels combines already loaded scorers; scorers[i] is the model specs[i] names.
func NewModels(specs []ModelSpec, scorers []*Scorer) (*Models, error) {
	if len(specs) == 0 || len(specs) != len(scorers) {
		return nil, fmt.Errorf("reward models: %d specs for %d scorers, want one each and at least one", len(specs), len(scorers))
	}
	if err := ValidateSpecs(specs); err != nil {
		return nil, err
	}
	return &Models{specs: append([]ModelSpec(nil), specs...), scorers: append([]*Scorer(nil), scorers...)}, nil
}

// OneModel is a single loaded reward model, used as is.
func OneModel(s *Scorer) *Models {
	return &Models{specs: []ModelSpec{{Path: s.Model().Source, Role: RoleHelpfulness}}, scorers: []*Scorer{s}}
}

// Specs are the models' reward_models entries, in order.
func (m *Models) Specs() []ModelSpec { return append([]ModelSpec(nil), m.specs...) }

// Scorer is the k-th model's scorer.
func (m *Models) Scorer(k int) *Scorer { return m.scorers[k] }

// Combined reports whether there are two models, combined with Select; only then are the items'
// safety flags read.
func (m *Models) Combined() bool { return len(m.scorers) == 2 }

// ScoreItems scores items with every model (each in batches, as Scorer.ScoreItems) and combines
// the scores. isSafety says which items answer safety prompts; it is needed (one flag per item)
// with two models only and ignored with one. progress, if non-nil, sees the items done over all
// models (len(items)·number of models in all).
func (m *Models) ScoreItems(ctx context.Context, items []Item, isSafety []bool, progress func(done int)) (Scores, error) {
	return m.scoreItemsOn(ctx, nil, items, isSafety, "items", progress)
}

// scoreItemsOn deals each model's batches over the ranks of comm (nil: this process alone) and
// names item i as row i of source in errors.
func (m *Models) scoreItemsOn(ctx context.Context, comm dist.Comm, items []Item, isSafety []bool, source string, progress func(done int)) (Scores, error) {
	if m.Combined() && len(isSafety) != len(items) {
		return Scores{}, fmt.Errorf("reward models: %d safety flags for %d items, want one per item", len(isSafety), len(items))
	}
	out := Scores{Model: make([][]float64, len(m.scorers))}
	for k, sc := range m.scorers {
		var p func(int)
		if progress != nil {
			off := k * len(items)
			p = func(done int) { progress(off + done) }
		}
		var r []float64
		var err error
		if comm == nil {
			r, err = sc.scoreItems(ctx, items, source, p)
		} else {
			r, err = sc.scoreItemsOn(ctx, comm, items, source, p)
		}
		if err != nil {
			if len(m.scorers) > 1 {
				return Scores{}, fmt.Errorf("reward_models[%d] (%s): %w", k, m.specs[k].Role, err)
			}
			return Scores{}, err
		}
		out.Model[k] = r
	}
	if !m.Combined() {
		out.Reward = append([]float64(nil), out.Model[0]...)
		return out, nil
	}
	help, safe := out.Model[0], out.Model[1]
	if m.specs[0].Role == RoleSafety {
		help, safe = safe, help
	}
	var err error
	if out.Reward, out.UsedSafety, err = Select(help, safe, isSafety); err != nil {
		return Scores{}, err
	}
	return out, nil
}
