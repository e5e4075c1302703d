package rlhf

import (
	"context"
	"fmt"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/reward"
)

// rewardScorer adapts the reward package's Scorer: a completion is scored with exactly the tokens
// the reward trainer reads for a chosen answer (prompt, rendered with the generation prompt for a
// conversation, then the answer through the EOS that closes it).
type rewardScorer struct{ s *reward.Scorer }

// LoadScorer opens a reward model (an HF directory or a GGUF with a score head) for scoring.
// chatTemplate is the chat_template key ("" for the reward model's own).
func LoadScorer(path, chatTemplate string) (Scorer, error) {
	s, err := reward.NewScorer(path, scorerOptions(chatTemplate)...)
	if err != nil {
		return nil, err
	}
	return rewardScorer{s}, nil
}

// NewScorer is LoadScorer for a reward model already in memory.
func NewScorer(ck *checkpoint.Model, chatTemplate string) (Scorer, error) {
	s, err := reward.NewScorerFromModel(ck, scorerOptions(chatTemplate)...)
	if err != nil {
		return nil, err
	}
	return rewardScorer{s}, nil
}

func scorerOptions(chatTemplate string) []reward.ScorerOption {
	if chatTemplate == "" {
		return nil
	}
	return []reward.ScorerOption{reward.WithChatTemplate(chatTemplate)}
}

func (r rewardScorer) Score(ctx context.Context, p Prompt, completions []string) ([]float64, error) {
	if p.IDs != nil {
		return nil, fmt.Errorf("%s: a token-id prompt cannot be scored: the reward model needs its text", p.where())
	}
	items := make([]reward.Item, len(completions))
	for i, c := range completions {
		if p.Messages != nil {
			items[i] = reward.Item{PromptMessages: p.Messages, ResponseMessages: []data.Message{{Role: "assistant", Content: c}}}
		} else {
			items[i] = reward.Item{Prompt: p.Text, Response: c}
		}
	}
	out, err := r.s.ScoreItems(ctx, items, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.where(), err)
	}
	return out, nil
}
