package rlhf

import (
	"context"
	"fmt"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/infer"
)

// engineScorer scores completions with a reward checkpoint through infer.Engine.ScoreBatch.
type engineScorer struct {
	eng    *infer.Engine
	tok    *data.Tokenizer
	maxPos int
	source string
}

// LoadScorer opens a reward model (an HF directory or GGUF with a score head) for scoring. A
// completion is tokenized exactly as the reward trainer tokenizes the chosen answer of a preference
// pair (data.Tokenizer.PairExample): the prompt (rendered with the generation prompt for a
// conversation), the answer, and the EOS that closes it, where the score head reads the reward.
// chatTemplate is the chat_template key ("" for the reward model's own).
func LoadScorer(path, chatTemplate string) (Scorer, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reward model: %w", err)
	}
	return NewScorer(ck, chatTemplate)
}

// NewScorer is LoadScorer for a checkpoint already in memory.
func NewScorer(ck *checkpoint.Model, chatTemplate string) (Scorer, error) {
	if !ck.Weights.Config.IsRewardModel() {
		return nil, fmt.Errorf("reward model %s: architectures %v has no score head: want a *ForSequenceClassification model", ck.Source, ck.Weights.Config.Architectures)
	}
	eng, err := infer.New(ck.Weights)
	if err != nil {
		return nil, fmt.Errorf("reward model %s: %w", ck.Source, err)
	}
	dt, err := lm.ChatTokenizer(ck.Tok, chatTemplate)
	if err != nil {
		if chatTemplate != "" {
			return nil, fmt.Errorf("reward model %s: chat_template: %w", ck.Source, err)
		}
		// No template: text prompts still score; conversations get the data layer's error.
		dt = data.NewTokenizer(lm.Encoder(ck.Tok), nil)
	}
	return &engineScorer{eng: eng, tok: dt, maxPos: eng.Config().MaxPositionEmbeddings, source: ck.Source}, nil
}

func (s *engineScorer) Score(ctx context.Context, p Prompt, completions []string) ([]float64, error) {
	if p.IDs != nil {
		return nil, fmt.Errorf("%s: a token-id prompt cannot be scored: the reward model needs its text", p.where())
	}
	seqs := make([][]int32, len(completions))
	for i, c := range completions {
		pair := data.Pair{Source: p.Source, Row: p.Row}
		if p.Messages != nil {
			answer := []chat.Message{{Role: "assistant", Content: c}}
			pair.Conversational = true
			pair.PromptMessages, pair.ChosenMessages, pair.RejectedMessages = p.Messages, answer, answer
		} else {
			pair.Prompt, pair.Chosen, pair.Rejected = p.Text, c, c
		}
		ex, err := s.tok.PairExample(&pair)
		if err != nil {
			return nil, fmt.Errorf("scoring completion %d: %w", i, err)
		}
		seq := append(ex.Prompt[:len(ex.Prompt):len(ex.Prompt)], ex.Chosen...)
		if len(seq) > s.maxPos {
			// Keep the answer: cut the prompt from the left, as the reward trainer's batcher does.
			seq = seq[len(seq)-s.maxPos:]
		}
		seqs[i] = seq
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := s.eng.ScoreBatch(seqs)
	if err != nil {
		return nil, fmt.Errorf("reward model %s: %w", s.source, err)
	}
	out := make([]float64, len(r))
	for i, v := range r {
		out[i] = float64(v)
	}
	return out, nil
}
