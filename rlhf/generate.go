package rlhf

import (
	"context"
	"fmt"
	"math"
)

// Sampling holds the sampling parameters of a generation request, as OpenAI-compatible servers and
// transformers name them.
type Sampling struct {
	Temperature  float64 // 0 is greedy
	TopP         float64 // 0 or 1: no nucleus cut
	TopK         int     // 0: no top-k cut
	MaxNewTokens int
	// Seed makes sampling reproducible: sample j of prompt i (0-based, in the order given) is drawn
	// with seed Seed + i·K + j by every backend, so the local engine and an alignkit server agree.
	Seed uint64
}

// Validate checks the ranges every backend needs.
func (s Sampling) Validate() error {
	switch {
	case math.IsNaN(s.Temperature) || s.Temperature < 0:
		return fmt.Errorf("temperature %v: want >= 0", s.Temperature)
	case math.IsNaN(s.TopP) || s.TopP < 0 || s.TopP > 1:
		return fmt.Errorf("top_p %v: want a value in [0, 1]", s.TopP)
	case s.TopK < 0:
		return fmt.Errorf("top_k %d: want >= 0 (0 disables it)", s.TopK)
	case s.MaxNewTokens < 1:
		return fmt.Errorf("max_new_tokens %d: want at least 1", s.MaxNewTokens)
	}
	return nil
}

// Generator samples K completions for each prompt. out[i][j] is completion j of prompts[i].
// Implementations: Local (alignkit's own engine) and OpenAI (any OpenAI-compatible server).
type Generator interface {
	Generate(ctx context.Context, prompts []Prompt, k int, s Sampling) ([][]string, error)
}

// Scorer gives the reward model's score of each completion of a prompt.
type Scorer interface {
	Score(ctx context.Context, p Prompt, completions []string) ([]float64, error)
}

// checkK is the one error for a bad K, shared by every backend and the config.
func checkK(k int) error {
	if k < 1 {
		return fmt.Errorf("num_samples_per_prompt %d: want K >= 1 completions per prompt", k)
	}
	return nil
}
