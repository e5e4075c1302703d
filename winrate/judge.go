package winrate

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/rlhf"
)

// Shown is one judgement as the judge sees it: the prompt and two answers, in the order shown.
type Shown struct {
	Prompt        rlhf.Prompt
	First, Second string
}

// Pick is a judge's verdict on the answers in the order it saw them.
type Pick int

// Picks.
const (
	PickInvalid Pick = iota // the judge's reply was not a verdict
	PickFirst
	PickSecond
	PickTie
)

// Decision is a judge's answer to one Shown.
type Decision struct {
	Pick Pick
	// Scores are the reward judge's scores of First and Second (nil for an LLM judge).
	Scores []float64
	// Reply is the LLM judge's reply as received ("" for a reward judge).
	Reply string
}

// Judge decides, for each pair, which answer is better. A Judge never sees which model wrote an
// answer, only the order it is shown in.
type Judge interface {
	Judge(ctx context.Context, pairs []Shown) ([]Decision, error)
}

// RewardJudge prefers the answer its scorer scores higher; scores within TieMargin of each other
// tie, and identical answers always tie: a batched forward pass can score the same text a few ulps
// apart by its row in the batch (the BLAS kernel's blocking), which must not decide a judgement. Scorer is any rlhf.Scorer: rlhf.LoadScorer's single reward model, or
// rlhf.LoadRewardModels' two combined (Llama 2's helpfulness and safety models). Both answers of a prompt are scored in one call, so a scorer that
// normalises over the answers it is given (Llama 2's WHITEN) keeps their order.
type RewardJudge struct {
	Scorer    rlhf.Scorer
	TieMargin float64
}

// Judge implements Judge.
func (r RewardJudge) Judge(ctx context.Context, pairs []Shown) ([]Decision, error) {
	out := make([]Decision, len(pairs))
	for i, p := range pairs {
		s, err := r.Scorer.Score(ctx, p.Prompt, []string{p.First, p.Second})
		if err != nil {
			return nil, err
		}
		if len(s) != 2 {
			return nil, fmt.Errorf("reward judge: %d scores for 2 answers", len(s))
		}
		for _, v := range s {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("reward judge: prompt row %d: score %v: want a finite number", p.Prompt.Row, v)
			}
		}
		d := Decision{Scores: s, Pick: PickTie}
		switch diff := s[0] - s[1]; {
		case p.First == p.Second:
		case diff > r.TieMargin:
			d.Pick = PickFirst
		case -diff > r.TieMargin:
			d.Pick = PickSecond
		}
		out[i] = d
	}
	return out, nil
}

// JudgeSystemPrompt is the LLM judge's instruction, adapted from MT-Bench's pairwise comparison
// prompt (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", Fig. 5),
// with the verdict reduced to one bare word so that it can be parsed strictly.
const JudgeSystemPrompt = "Please act as an impartial judge and evaluate the quality of the responses provided by two AI " +
	"assistants to the user question displayed below. Choose the assistant that follows the user's " +
	"instructions and answers the user's question better, considering helpfulness, relevance, accuracy, " +
	"depth and level of detail. Avoid any position biases and ensure that the order in which the responses " +
	"were presented does not influence your decision. Do not allow the length of the responses to influence " +
	"your evaluation. Be as objective as possible. Reply with exactly one word and nothing else: A if " +
	"assistant A is better, B if assistant B is better, or tie."

// JudgeUserMessage is the message that shows the judge a prompt and the two answers.
func JudgeUserMessage(s Shown) string {
	return "[User Question]\n" + promptText(s.Prompt) +
		"\n\n[The Start of Assistant A's Answer]\n" + s.First + "\n[The End of Assistant A's Answer]" +
		"\n\n[The Start of Assistant B's Answer]\n" + s.Second + "\n[The End of Assistant B's Answer]"
}

// promptText is a prompt as the judge reads it: the text, or the conversation one "role: content"
// paragraph per message.
func promptText(p rlhf.Prompt) string {
	if p.Messages == nil {
		return p.Text
	}
	parts := make([]string, len(p.Messages))
	for i, m := range p.Messages {
		parts[i] = m.Role + ": " + m.Content
	}
	return strings.Join(parts, "\n\n")
}

// ParseVerdict reads an LLM judge's reply strictly: after trimming white space it must be exactly
// "A", "B" or "tie" (any case for tie). Anything else is PickInvalid: a reply that only mentions a
// verdict ("A is better", "[[A]]") is not guessed at.
func ParseVerdict(reply string) Pick {
	switch r := strings.TrimSpace(reply); {
	case r == "A":
		return PickFirst
	case r == "B":
		return PickSecond
	case strings.EqualFold(r, "tie"):
		return PickTie
	}
	return PickInvalid
}

// LLMJudge asks a language model, through any rlhf.Generator (rlhf.OpenAI for an OpenAI-compatible
// server), with JudgeSystemPrompt and JudgeUserMessage, greedily.
type LLMJudge struct {
	Gen          rlhf.Generator
	MaxNewTokens int
	// Seed is sent with every request (servers that sample despite temperature 0 stay reproducible).
	Seed uint64
}

// Judge implements Judge: all pairs go to the generator in one call, which bounds the requests in
// flight itself.
func (l LLMJudge) Judge(ctx context.Context, pairs []Shown) ([]Decision, error) {
	prompts := make([]rlhf.Prompt, len(pairs))
	for i, p := range pairs {
		prompts[i] = rlhf.Prompt{Messages: []chat.Message{
			{Role: "system", Content: JudgeSystemPrompt},
			{Role: "user", Content: JudgeUserMessage(p)},
		}, Source: "judge of " + p.Prompt.Source, Row: p.Prompt.Row}
	}
	out, err := l.Gen.Generate(ctx, prompts, 1, rlhf.Sampling{Temperature: 0, MaxNewTokens: l.MaxNewTokens, Seed: l.Seed})
	if err != nil {
		return nil, fmt.Errorf("llm judge: %w", err)
	}
	ds := make([]Decision, len(pairs))
	for i := range pairs {
		if len(out[i]) != 1 {
			return nil, fmt.Errorf("llm judge: %d replies for prompt row %d, want 1", len(out[i]), pairs[i].Prompt.Row)
		}
		ds[i] = Decision{Pick: ParseVerdict(out[i][0]), Reply: out[i][0]}
	}
	return ds, nil
}
