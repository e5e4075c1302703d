package rlhf

import (
	"context"
	"fmt"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/reward"
)

// RewardModels scores completions with a reward_models list (reward.Models): one model, or a
// helpfulness and a safety model combined per completion as Llama 2 does (reward.Select), by each
// prompt's Safety flag. A completion is scored with exactly the tokens the reward trainer reads for
// a chosen answer (prompt, rendered with the generation prompt for a conversation, then the answer
// through the EOS that closes it). It is a Scorer (Score gives the combined reward) and a
// DetailedScorer.
type RewardModels struct{ m *reward.Models }

// DetailedScorer is a Scorer that also gives each reward model's score; SampleAll keeps them.
type DetailedScorer interface {
	Scorer
	// ScoreDetailed scores completions of p: Reward is what Score returns.
	ScoreDetailed(ctx context.Context, p Prompt, completions []string) (reward.Scores, error)
	// Specs are the reward models, in the order of Scores.Model.
	Specs() []reward.ModelSpec
}

// LoadRewardModels opens the reward models of specs (HF directories or GGUFs with a score head).
// chatTemplate is the chat_template key ("" for each reward model's own).
func LoadRewardModels(specs []reward.ModelSpec, chatTemplate string) (*RewardModels, error) {
	m, err := reward.LoadModels(specs, scorerOptions(chatTemplate)...)
	if err != nil {
		return nil, err
	}
	return &RewardModels{m}, nil
}

// LoadScorer opens one reward model (an HF directory or a GGUF with a score head) for scoring.
// chatTemplate is the chat_template key ("" for the reward model's own).
func LoadScorer(path, chatTemplate string) (Scorer, error) {
	s, err := reward.NewScorer(path, scorerOptions(chatTemplate)...)
	if err != nil {
		return nil, err
	}
	return &RewardModels{reward.OneModel(s)}, nil
}

// NewScorer is LoadScorer for a reward model already in memory.
func NewScorer(ck *checkpoint.Model, chatTemplate string) (Scorer, error) {
	s, err := reward.NewScorerFromModel(ck, scorerOptions(chatTemplate)...)
	if err != nil {
		return nil, err
	}
	return &RewardModels{reward.OneModel(s)}, nil
}

func scorerOptions(chatTemplate string) []reward.ScorerOption {
	if chatTemplate == "" {
		return nil
	}
	return []reward.ScorerOption{reward.WithChatTemplate(chatTemplate)}
}

// Combined reports whether two models are combined, which reads each prompt's Safety flag.
func (r *RewardModels) Combined() bool { return r.m.Combined() }

// Specs are the reward models, in order.
func (r *RewardModels) Specs() []reward.ModelSpec { return r.m.Specs() }

// Score gives each completion's reward (the combined one with two models).
func (r *RewardModels) Score(ctx context.Context, p Prompt, completions []string) ([]float64, error) {
	s, err := r.ScoreDetailed(ctx, p, completions)
	return s.Reward, err
}

// ScoreDetailed gives each completion's reward and every model's score.
func (r *RewardModels) ScoreDetailed(ctx context.Context, p Prompt, completions []string) (reward.Scores, error) {
	if p.IDs != nil {
		return reward.Scores{}, fmt.Errorf("%s: a token-id prompt cannot be scored: the reward model needs its text", p.where())
	}
	items := make([]reward.Item, len(completions))
	flags := make([]bool, len(completions))
	for i, c := range completions {
		if p.Messages != nil {
			items[i] = reward.Item{PromptMessages: p.Messages, ResponseMessages: []data.Message{{Role: "assistant", Content: c}}}
		} else {
			items[i] = reward.Item{Prompt: p.Text, Response: c}
		}
		flags[i] = p.Safety
	}
	out, err := r.m.ScoreItems(ctx, items, flags, nil)
	if err != nil {
		return reward.Scores{}, fmt.Errorf("%s: %w", p.where(), err)
	}
	return out, nil
}

// LoadSafety sets each prompt's Safety flag from column of the file its prompts were read from
// (path and split as LoadPromptsSplit read them; a prompt's Row is its row there). Every row of the
// file must hold the column (reward.SafetyFlags); errors name the file, row and column.
func LoadSafety(prompts []Prompt, path, split, column string) error {
	rows, err := data.ReadSource(path, split)
	if err != nil {
		return err
	}
	return SetSafety(prompts, rows, column, path)
}

// SetSafety is LoadSafety over rows already read from source.
func SetSafety(prompts []Prompt, rows []data.Row, column, source string) error {
	fields := make([]map[string]any, len(rows))
	for i, r := range rows {
		fields[i] = r.Fields
	}
	flags, err := reward.SafetyFlags(fields, column, source)
	if err != nil {
		return err
	}
	for i := range prompts {
		r := prompts[i].Row
		if r < 0 || r >= len(flags) {
			return fmt.Errorf("%s: prompt of row %d: no such row", source, r)
		}
		prompts[i].Safety = flags[r]
	}
	return nil
}
