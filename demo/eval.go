package demo

import (
	"context"
	"fmt"

	"github.com/alignkit/alignkit/demo/world"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/rlhf"
)

// EvalSize sizes the answer-correctness evaluation on the held-out prompts.
type EvalSize struct {
	Samples      int     // sampled answers per prompt (besides the greedy one)
	Temperature  float64 // of the sampled answers
	MaxNewTokens int     // a world answer is at most about 15 tokens; a longer reply is wrong anyway
}

// Evaluation sizes: the full demo samples 4 answers per held-out prompt, --quick 2.
var (
	DefaultEvalSize = EvalSize{Samples: 4, Temperature: 1, MaxNewTokens: 32}
	QuickEvalSize   = EvalSize{Samples: 2, Temperature: 1, MaxNewTokens: 32}
)

// evalSeed is the sampling seed of the correctness evaluation, offset from the run's seed so that
// it draws other numbers than rejection sampling's.
const evalSeed = 1_000_003

// Score counts correct answers.
type Score struct {
	Correct int `json:"correct"`
	Total   int `json:"total"`
}

// Rate is Correct/Total, 0 when nothing was scored.
func (s Score) Rate() float64 {
	if s.Total == 0 {
		return 0
	}
	return float64(s.Correct) / float64(s.Total)
}

func (s *Score) add(ok bool) {
	s.Total++
	if ok {
		s.Correct++
	}
}

// Split is correctness over all held-out prompts and by kind of question, as the world suggests:
// knowledge questions on facts SFT's demonstrations got mostly right, knowledge questions on the
// misconceived facts (SFT's most likely answer is wrong there), and questions about the assistant
// (its name and hobby, answered from the instruction in force).
type Split struct {
	All          Score `json:"all"`
	Knowledge    Score `json:"knowledge"`
	Misconceived Score `json:"misconceived"`
	Self         Score `json:"self"`
	// Safety is correctness on the safety prompts: the share refused (world/safety.go).
	Safety Score `json:"safety"`
}

// Kinds of held-out prompt.
const (
	kindKnowledge    = "knowledge"
	kindMisconceived = "misconceived"
	kindSelf         = "self"
	kindSafety       = "safety"
)

// Correctness is one model's answer correctness on the held-out prompts: one greedy answer per
// prompt and Samples sampled ones.
type Correctness struct {
	Stage   string `json:"stage"`
	Model   string `json:"model"`
	Greedy  Split  `json:"greedy"`
	Sampled Split  `json:"sampled"`
	// By the world's grader, greedy: refusals on the safety prompts (Greedy.Safety) and on the
	// others (over-refusal, Llama 2 §4.2.3's false refusal).
	Refusal     Score `json:"refusal"`
	OverRefusal Score `json:"over_refusal"`
	// RM is the reward models' view of the greedy answers (stage rm-eval); nil before it.
	RM *RMScores `json:"reward_models,omitempty"`
}

// heldOut is the held-out prompt set, read back from the file the demo wrote, as the jobs read
// their data.
type heldOut struct {
	prompts []rlhf.Prompt
	msgs    [][]world.Message
	kind    []string // "knowledge", "misconceived" or "self"
}

func loadHeldOut(path string, w *world.World) (*heldOut, error) {
	ps, err := rlhf.LoadPrompts(path, nil)
	if err != nil {
		return nil, err
	}
	h := &heldOut{prompts: ps}
	for i, p := range ps {
		if !p.Conversational() || len(p.Messages) == 0 {
			return nil, fmt.Errorf("%s: row %d: want a conversational prompt", path, i)
		}
		wm := make([]world.Message, len(p.Messages))
		for j, m := range p.Messages {
			wm[j] = world.Message{Role: m.Role, Content: m.Content}
		}
		_, q, err := world.Governing(wm)
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", path, i, err)
		}
		query, ok := world.ParseQuestion(q)
		if !ok {
			return nil, fmt.Errorf("%s: row %d: %q is not a world question", path, i, q)
		}
		kind := kindSelf
		switch {
		case query.Task == world.TaskHarm:
			kind = kindSafety
		case query.Task.Knowledge():
			kind = kindKnowledge
			if w.Misconceived(wm[len(wm)-1].Content) {
				kind = kindMisconceived
			}
		}
		h.msgs = append(h.msgs, wm)
		h.kind = append(h.kind, kind)
	}
	return h, nil
}

// correctness answers every held-out prompt with the model, greedily and by sampling, and grades
// the answers with the world's checker. It also returns the greedy answers, in prompt order.
func correctness(ctx context.Context, stage, modelDir string, h *heldOut, size EvalSize, seed uint64) (Correctness, []string, error) {
	c := Correctness{Stage: stage, Model: modelDir}
	ck, err := checkpoint.Open(modelDir)
	if err != nil {
		return c, nil, err
	}
	gen, err := rlhf.NewLocal(ck, world.ChatTemplate)
	if err != nil {
		return c, nil, err
	}
	greedy, err := gen.Complete(ctx, h.prompts, 1, rlhf.Sampling{MaxNewTokens: size.MaxNewTokens})
	if err != nil {
		return c, nil, fmt.Errorf("%s: greedy answers: %w", modelDir, err)
	}
	var sampled [][]rlhf.Completion
	if size.Samples > 0 {
		sampled, err = gen.Complete(ctx, h.prompts, size.Samples, rlhf.Sampling{Temperature: size.Temperature,
			MaxNewTokens: size.MaxNewTokens, Seed: seed + evalSeed})
		if err != nil {
			return c, nil, fmt.Errorf("%s: sampled answers: %w", modelDir, err)
		}
	}
	texts := make([]string, len(h.prompts))
	for i := range h.prompts {
		refusals, err := c.Greedy.grade(h.msgs[i], h.kind[i], greedy[i])
		if err != nil {
			return c, nil, err
		}
		if h.kind[i] == kindSafety {
			c.Refusal.add(refusals == 1)
		} else {
			c.OverRefusal.add(refusals == 1)
		}
		texts[i] = greedy[i][0].Text
		if sampled != nil {
			if _, err := c.Sampled.grade(h.msgs[i], h.kind[i], sampled[i]); err != nil {
				return c, nil, err
			}
		}
	}
	return c, texts, nil
}

// grade grades answers to one prompt and returns how many of them are refusals.
func (s *Split) grade(prompt []world.Message, kind string, answers []rlhf.Completion) (refusals int, err error) {
	for _, a := range answers {
		g, err := world.GradePrompt(prompt, a.Text)
		if err != nil {
			return 0, fmt.Errorf("grading %q: %w", a.Text, err)
		}
		if g.Refusal {
			refusals++
		}
		ok := g.Level == world.LevelCorrect
		s.All.add(ok)
		switch kind {
		case kindKnowledge:
			s.Knowledge.add(ok)
		case kindMisconceived:
			s.Misconceived.add(ok)
		case kindSafety:
			s.Safety.add(ok)
		default:
			s.Self.add(ok)
		}
	}
	return refusals, nil
}
