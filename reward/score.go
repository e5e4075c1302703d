package reward

import (
	"context"
	"fmt"
	"strings"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/infer"
	"github.com/alignkit/alignkit/model/lora"
)

// Item is one (prompt, response) to score: plain strings, or message lists (conversational, when
// PromptMessages is set). The response is scored in the context of the prompt.
type Item struct {
	Prompt, Response                 string
	PromptMessages, ResponseMessages []data.Message
}

// Conversational reports whether the item is rendered with the chat template.
func (it Item) Conversational() bool { return it.PromptMessages != nil || it.ResponseMessages != nil }

// ScorerOption adjusts NewScorer.
type ScorerOption func(*scorerOptions)

type scorerOptions struct {
	chatTemplate    string
	batchSize       int
	maxLength       int
	maxPromptLength int
}

// WithChatTemplate renders conversations with a template other than the model's own (a built-in
// name, a file, or Jinja source, as the chat_template config key).
func WithChatTemplate(t string) ScorerOption { return func(o *scorerOptions) { o.chatTemplate = t } }

// WithBatchSize sets how many sequences go into one forward pass (default 16).
func WithBatchSize(n int) ScorerOption { return func(o *scorerOptions) { o.batchSize = n } }

// WithMaxLength truncates prompt+response to n tokens as training does (the prompt from the left,
// then the response from the right). Default: the model's max_position_embeddings.
func WithMaxLength(n int) ScorerOption { return func(o *scorerOptions) { o.maxLength = n } }

// WithMaxPromptLength cuts prompts longer than n tokens from the left, as the max_prompt_length
// training key does (0: only as far as the max length needs).
func WithMaxPromptLength(n int) ScorerOption { return func(o *scorerOptions) { o.maxPromptLength = n } }

// Scorer runs a reward model over (prompt, response) pairs. The forward pass is the inference
// engine's ScoreBatch (no graph to build, sequences packed into shared passes); the tokens are
// exactly those of a training pair's chosen row, so a score equals the reward the trainer saw.
// A Scorer is safe for concurrent use.
type Scorer struct {
	ck              *checkpoint.Model
	eng             *infer.Engine
	tok             *data.Tokenizer
	batchSize       int
	maxLength       int
	maxPromptLength int
}

// NewScorer loads a reward model (an HF directory, a GGUF, or a LoRA reward model's adapter
// directory: see Open) for scoring.
func NewScorer(modelPath string, opts ...ScorerOption) (*Scorer, error) {
	ck, err := Open(modelPath)
	if err != nil {
		return nil, fmt.Errorf("loading reward model: %w", err)
	}
	return NewScorerFromModel(ck, opts...)
}

// Open opens a reward model: a checkpoint with a score head, or the PEFT adapter directory of a
// LoRA reward model (task_type SEQ_CLS, its score head among the saved modules) over the causal LM
// it names, which is laid out as a reward model first, as PEFT's
// AutoPeftModelForSequenceClassification does.
func Open(path string) (*checkpoint.Model, error) {
	if lora.IsAdapterDir(path) {
		meta, err := lora.ReadMeta(path)
		if err != nil {
			return nil, err
		}
		if meta.TaskType == lora.TaskSeqCls {
			base, err := checkpoint.Open(meta.BaseModel)
			if err != nil {
				return nil, fmt.Errorf("adapter %s: %w", path, err)
			}
			if !base.Weights.Config.IsRewardModel() {
				// The fresh head's values are replaced by the adapter's saved score.weight.
				if base, err = FromCausalLM(base, 0); err != nil {
					return nil, err
				}
			}
			return checkpoint.AttachAdapterDir(base, path)
		}
	}
	return checkpoint.Open(path)
}

// NewScorerFromModel scores with an already loaded reward model. It errors when the model has no
// score head.
func NewScorerFromModel(ck *checkpoint.Model, opts ...ScorerOption) (*Scorer, error) {
	o := scorerOptions{batchSize: 16}
	for _, f := range opts {
		f(&o)
	}
	cfg := ck.Weights.Config
	if ck.Dir != "" && o.maxLength <= 0 && o.maxPromptLength == 0 {
		// Score as the model was trained: a reward model ranks pairs cut the way its training
		// pairs were cut, and ranks others close to chance on a small model.
		tr, err := loadTruncation(ck.Dir)
		if err != nil {
			return nil, err
		}
		o.maxLength, o.maxPromptLength = tr.MaxLength, tr.MaxPromptLength
	}
	if _, ok := ck.Weights.Tensors[model.ScoreKey]; !ok || !cfg.IsRewardModel() {
		return nil, fmt.Errorf("%s is not a reward model: it has no %s (architectures %s); train one with `alignkit reward train`",
			ck.Source, model.ScoreKey, strings.Join(cfg.Architectures, ", "))
	}
	if o.batchSize < 1 {
		return nil, fmt.Errorf("batch size %d: want at least 1", o.batchSize)
	}
	if o.maxLength <= 0 || o.maxLength > cfg.MaxPositionEmbeddings {
		o.maxLength = cfg.MaxPositionEmbeddings
	}
	if o.maxLength < 2 {
		return nil, fmt.Errorf("max length %d: want at least 2", o.maxLength)
	}
	eng, err := infer.NewAdapted(ck.Weights, ck.Adapter) // a LoRA reward model runs unmerged
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ck.Source, err)
	}
	tok, err := lm.DataTokenizer(ck.Tok, o.chatTemplate)
	if err != nil {
		return nil, err
	}
	if o.maxPromptLength < 0 {
		return nil, fmt.Errorf("max prompt length %d: want >= 0", o.maxPromptLength)
	}
	return &Scorer{ck: ck, eng: eng, tok: tok, batchSize: o.batchSize, maxLength: o.maxLength, maxPromptLength: o.maxPromptLength}, nil
}

// Model is the reward model being scored with.
func (s *Scorer) Model() *checkpoint.Model { return s.ck }

// Score scores conversations: each is the prompt turns followed by the assistant turn(s) being
// scored (everything after the last non-assistant message).
func (s *Scorer) Score(ctx context.Context, convs [][]data.Message) ([]float64, error) {
	items := make([]Item, len(convs))
	for i, c := range convs {
		k := len(c)
		for k > 0 && c[k-1].Role == "assistant" {
			k--
		}
		switch {
		case k == len(c):
			return nil, fmt.Errorf("conversation %d: the last message is from the %s, want the assistant's response", i, roleOf(c))
		case k == 0:
			return nil, fmt.Errorf("conversation %d: no prompt before the assistant's response", i)
		}
		items[i] = Item{PromptMessages: c[:k:k], ResponseMessages: c[k:]}
	}
	return s.scoreItems(ctx, items, "conversations", nil)
}

func roleOf(c []data.Message) string {
	if len(c) == 0 {
		return "(empty conversation)"
	}
	return c[len(c)-1].Role
}

// ScoreText scores plain-text responses to plain-text prompts.
func (s *Scorer) ScoreText(ctx context.Context, prompts, responses []string) ([]float64, error) {
	if len(prompts) != len(responses) {
		return nil, fmt.Errorf("%d prompts and %d responses: want as many of each", len(prompts), len(responses))
	}
	items := make([]Item, len(prompts))
	for i := range prompts {
		items[i] = Item{Prompt: prompts[i], Response: responses[i]}
	}
	return s.scoreItems(ctx, items, "texts", nil)
}

// Tokens returns the sequence the reward head reads for it: prompt then response through its EOS,
// cut to the scorer's max length as training cuts a pair's rows.
func (s *Scorer) Tokens(it Item) ([]int32, error) { return s.tokens(it, "item", 0) }

// tokens names the item as row of source in errors. It tokenizes the item as a prompt/completion
// record whose completion carries loss: those tokens are the pair tokenizer's prompt then answer
// (the answer through its EOS, and trained up to it), at half the chat-template renders of
// tokenizing it as a pair. TestScorerTokensAreTrainingTokens checks the two agree on real data.
func (s *Scorer) tokens(it Item, source string, row int) ([]int32, error) {
	rec := data.Record{Source: source, Row: row, Format: data.FormatPromptCompletion, TrainedTurn: -1,
		Prompt: it.Prompt, Completion: it.Response, PromptMessages: it.PromptMessages, CompletionMessages: it.ResponseMessages}
	ex, err := s.tok.Example(&rec, data.MaskCompletionOnly)
	if err != nil {
		return nil, err
	}
	first, last := -1, -1
	for i, m := range ex.Mask {
		if m {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return nil, fmt.Errorf("%s: row %d: the response has no tokens", source, row)
	}
	// Template text after the answer's EOS (chatml's "\n") is not part of the answer: the pair
	// tokenizer drops it, and so does this.
	return truncatePair(ex.IDs[:first], ex.IDs[first:last+1], s.maxLength, s.maxPromptLength), nil
}

// truncatePair lays out prompt+answer in at most maxLength tokens as data's PairBatcher does: the
// prompt loses tokens from its start down to maxPromptLength (when > 0) and until the answer keeps
// at least one, then the answer loses tokens from its end.
func truncatePair(prompt, answer []int32, maxLength, maxPromptLength int) []int32 {
	if maxPromptLength > 0 && len(prompt) > maxPromptLength {
		prompt = prompt[len(prompt)-maxPromptLength:]
	}
	if room := maxLength - 1; len(prompt) > room {
		prompt = prompt[len(prompt)-room:]
	}
	if over := len(prompt) + len(answer) - maxLength; over > 0 {
		answer = answer[:len(answer)-over]
	}
	out := make([]int32, 0, len(prompt)+len(answer))
	return append(append(out, prompt...), answer...)
}

// ScoreItems scores items in batches of the scorer's batch size, one forward pass per batch, and
// calls progress (if non-nil) with the number of items done after each batch. The context is
// checked between batches.
func (s *Scorer) ScoreItems(ctx context.Context, items []Item, progress func(done int)) ([]float64, error) {
	return s.scoreItems(ctx, items, "items", progress)
}

// scoreItems names item i as row i of source in errors.
func (s *Scorer) scoreItems(ctx context.Context, items []Item, source string, progress func(done int)) ([]float64, error) {
	out := make([]float64, 0, len(items))
	for lo := 0; lo < len(items); lo += s.batchSize {
		hi := min(lo+s.batchSize, len(items))
		r, err := s.scoreBatch(ctx, items, lo, hi, source)
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
		if progress != nil {
			progress(hi)
		}
	}
	return out, nil
}

// scoreBatch scores items[lo:hi] in one forward pass (after checking the context).
func (s *Scorer) scoreBatch(ctx context.Context, items []Item, lo, hi int, source string) ([]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	seqs := make([][]int32, 0, hi-lo)
	for i := lo; i < hi; i++ {
		ids, err := s.tokens(items[i], source, i)
		if err != nil {
			return nil, err
		}
		seqs = append(seqs, ids)
	}
	r, err := s.eng.ScoreBatch(seqs)
	if err != nil {
		return nil, fmt.Errorf("scoring items %d..%d: %w", lo, hi-1, err)
	}
	out := make([]float64, len(r))
	for i, v := range r {
		out[i] = float64(v)
	}
	return out, nil
}

// scoreItemsOn is scoreItems with the batches dealt over the ranks of comm (batch b on rank b mod
// size); every rank returns all the rewards, in item order. Batch boundaries are those of one
// process, so the rewards are the same. progress sees rank 0's batches only.
func (s *Scorer) scoreItemsOn(ctx context.Context, comm dist.Comm, items []Item, source string, progress func(done int)) ([]float64, error) {
	if comm.Size() == 1 {
		return s.scoreItems(ctx, items, source, progress)
	}
	nb := (len(items) + s.batchSize - 1) / s.batchSize
	batches, err := dist.Chunks(comm, nb, func(b int) ([]float64, error) {
		lo := b * s.batchSize
		hi := min(lo+s.batchSize, len(items))
		r, err := s.scoreBatch(ctx, items, lo, hi, source)
		if err == nil && progress != nil && comm.Rank() == 0 {
			progress(hi)
		}
		return r, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]float64, 0, len(items))
	for _, r := range batches {
		out = append(out, r...)
	}
	return out, nil
}
