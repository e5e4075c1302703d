package rlhf

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/infer"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// DefaultLocalBatch is the most sequences Local decodes together (prompts × K).
const DefaultLocalBatch = 64

// Local generates with alignkit's own engine: batched KV-cache decoding (infer.Engine.Generate).
// Conversations are rendered with the chat template and add_generation_prompt and tokenized as the
// data layer tokenizes training rows (template text may hold special tokens, message text never),
// so what is sampled here is what the SFT step later trains on. It is safe for concurrent use.
type Local struct {
	eng *infer.Engine
	// base is the weights the engine runs, without the adapter: WithAdapter runs another adapter
	// over them.
	base *model.Weights
	tok  *tokenizer.Tokenizer
	enc  data.Encoder
	// tmpl is nil when the model has no chat template and none was named; tmplErr then says why,
	// and only conversational prompts fail.
	tmpl    *chat.Template
	tmplErr error
	stop    []int32
	// Batch is the most sequences decoded together; prompts are never split across batches.
	Batch int
}

// NewLocal prepares a policy checkpoint (with its LoRA adapter, if any, unmerged) for generation. chatTemplate is the config's chat_template:
// a built-in name, a file, Jinja source, or "" for the model's own.
func NewLocal(ck *checkpoint.Model, chatTemplate string) (*Local, error) {
	if ck.Weights.Config.IsRewardModel() {
		return nil, fmt.Errorf("%s is a reward model (it has a score head, no language-model head): it cannot generate", ck.Source)
	}
	eng, err := infer.NewAdapted(ck.Weights, ck.Adapter) // a LoRA adapter runs unmerged

	if err != nil {
		return nil, fmt.Errorf("%s: %w", ck.Source, err)
	}
	l := &Local{eng: eng, base: ck.Weights, tok: ck.Tok, enc: lm.Encoder(ck.Tok), stop: ck.Tok.EOSIDs(), Batch: DefaultLocalBatch}
	if dt, err := lm.ChatTokenizer(ck.Tok, chatTemplate); err != nil {
		if chatTemplate != "" {
			return nil, fmt.Errorf("chat_template: %w", err)
		}
		l.tmplErr = err
	} else {
		l.tmpl = dt.Template()
	}
	return l, nil
}

// WithAdapter is a Local that runs ad unmerged over l's base weights (not over l's own adapter:
// alignkit stacks no adapters), sharing them, the tokenizer and the chat template. ad is checked
// against the base's shapes (lora.Load has checked it already when it came from a directory).
func (l *Local) WithAdapter(ad *model.Adapter) (*Local, error) {
	eng, err := infer.NewAdapted(l.base, ad)
	if err != nil {
		return nil, err
	}
	out := *l
	out.eng = eng
	return &out, nil
}

// Base is the weights l runs, without its adapter.
func (l *Local) Base() *model.Weights { return l.base }

// Engine is the engine Local generates with, for callers that stream tokens as they are sampled.
func (l *Local) Engine() *infer.Engine { return l.eng }

// Tokenizer is the policy's tokenizer.
func (l *Local) Tokenizer() *tokenizer.Tokenizer { return l.tok }

// MaxPositions is the model's context length.
func (l *Local) MaxPositions() int { return l.eng.Config().MaxPositionEmbeddings }

// Encode returns the token ids the model is prompted with: BOS (when the tokenizer adds one) and the
// text; the conversation rendered with the generation prompt; or the ids as given.
func (l *Local) Encode(p Prompt) ([]int32, error) {
	switch {
	case p.IDs != nil:
		if len(p.IDs) == 0 {
			return nil, fmt.Errorf("%s: empty token-id prompt", p.where())
		}
		for i, id := range p.IDs {
			if id < 0 || int(id) >= l.tok.VocabSize() {
				return nil, fmt.Errorf("%s: token %d: id %d is outside the vocabulary (%d)", p.where(), i, id, l.tok.VocabSize())
			}
		}
		return p.IDs, nil
	case p.Messages != nil:
		if l.tmpl == nil {
			return nil, fmt.Errorf("%s: a conversational prompt needs a chat template: %w", p.where(), l.tmplErr)
		}
		segs, err := l.tmpl.RenderSegments(p.Messages, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.where(), err)
		}
		return data.EncodeRendered(l.enc, segs), nil
	}
	return l.tok.Encode(p.Text, l.tok.AddBOS()), nil
}

// Completion is one sampled continuation.
type Completion struct {
	Text string
	// IDs are the generated tokens, the stop token included when one ended the sequence.
	IDs []int32
	// FinishReason is "stop" (an end-of-sequence token) or "length" (max_new_tokens or the context).
	FinishReason string
}

// DecodeCompletion turns generated ids into the completion text. After a conversation it is the
// decoded answer (control tokens dropped, as transformers' decode with skip_special_tokens). After
// plain text it is decode(prompt + ids) minus decode(prompt), which keeps the space that joins the
// two, so that prompt + completion reads (and re-tokenizes) as the model wrote it.
func (l *Local) DecodeCompletion(p Prompt, prompt, ids []int32) string {
	if p.Messages != nil {
		return l.tok.Decode(ids)
	}
	pre := l.tok.Decode(prompt)
	full := l.tok.Decode(append(slices.Clip(prompt), ids...))
	if strings.HasPrefix(full, pre) {
		return full[len(pre):]
	}
	return l.tok.Decode(ids)
}

// CompletionIDs tokenizes a completion that came back as text (from an OpenAI server, which
// returns no token ids) the way the data layer tokenizes a training row: the prompt and the
// completion are encoded as one sequence (the completion as message text, never as special tokens)
// and the prompt's ids are cut off, so that a word joining the two is split as the policy's
// tokenizer splits it in context. When the prompt's ids are not a prefix of that (the boundary
// merged into one token), the completion is encoded alone. promptIDs are Encode(p)'s.
func (l *Local) CompletionIDs(p Prompt, promptIDs []int32, text string) []int32 {
	var full []int32
	switch {
	case p.IDs != nil:
		return l.tok.Encode(text, false)
	case p.Messages != nil:
		if l.tmpl == nil {
			return l.tok.Encode(text, false)
		}
		segs, err := l.tmpl.RenderSegments(p.Messages, true)
		if err != nil {
			return l.tok.Encode(text, false)
		}
		segs = append(slices.Clip(segs), chat.Segment{Text: text, Message: len(p.Messages)})
		full = data.EncodeRendered(l.enc, segs)
	default:
		full = l.tok.Encode(p.Text+text, l.tok.AddBOS())
	}
	if len(full) >= len(promptIDs) && slices.Equal(full[:len(promptIDs)], promptIDs) {
		return slices.Clone(full[len(promptIDs):])
	}
	return l.tok.Encode(text, false)
}

// Complete samples k completions of every prompt. Sequence j of prompt i uses seed s.Seed + i·k + j.
func (l *Local) Complete(ctx context.Context, prompts []Prompt, k int, s Sampling) ([][]Completion, error) {
	if err := checkK(k); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	ids := make([][]int32, len(prompts))
	maxPos := l.MaxPositions()
	for i, p := range prompts {
		var err error
		if ids[i], err = l.Encode(p); err != nil {
			return nil, err
		}
		if len(ids[i]) >= maxPos {
			return nil, fmt.Errorf("%s: the prompt has %d tokens: no room to generate within max_position_embeddings %d", p.where(), len(ids[i]), maxPos)
		}
	}
	per := max(1, l.Batch/k) // prompts per engine call
	out := make([][]Completion, len(prompts))
	for i0 := 0; i0 < len(prompts); i0 += per {
		i1 := min(len(prompts), i0+per)
		var batch [][]int32
		for i := i0; i < i1; i++ {
			for range k {
				batch = append(batch, ids[i])
			}
		}
		gen, err := l.eng.Generate(ctx, batch, infer.Sampling{
			Temperature: s.Temperature, TopP: s.TopP, TopK: s.TopK, MaxNewTokens: s.MaxNewTokens,
			Seed: s.Seed + uint64(i0*k), StopIDs: l.stop,
		})
		if err != nil {
			return nil, fmt.Errorf("generating for prompts %d..%d: %w", i0, i1-1, err)
		}
		for i := i0; i < i1; i++ {
			out[i] = make([]Completion, k)
			for j := range k {
				g := gen[(i-i0)*k+j]
				c := Completion{IDs: g, FinishReason: "length"}
				if len(g) > 0 && slices.Contains(l.stop, g[len(g)-1]) {
					c.FinishReason = "stop"
				}
				c.Text = l.DecodeCompletion(prompts[i], ids[i], g)
				out[i][j] = c
			}
		}
	}
	return out, nil
}

// Generate implements Generator.
func (l *Local) Generate(ctx context.Context, prompts []Prompt, k int, s Sampling) ([][]string, error) {
	cs, err := l.Complete(ctx, prompts, k, s)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(cs))
	for i, row := range cs {
		out[i] = make([]string, len(row))
		for j, c := range row {
			out[i][j] = c.Text
		}
	}
	return out, nil
}

// RLPrompts are an RL trainer's prompts (GRPO, PPO): the ones that leave room for a completion,
// each with its token ids, and every row of the dataset they came from (for reward functions'
// columns and safety flags).
type RLPrompts struct {
	Prompts []Prompt
	IDs     [][]int32
	Rows    []data.Row
}

// LoadRLPrompts reads dataset once (stopping when ctx ends), takes its prompts (columns renames
// them, as LoadPrompts), keeps the first maxSamples (0: all), encodes each with l's template and
// keeps those whose ids plus newTokens fit maxPos; lengthKey names the config key of newTokens in
// messages. It says on log how many it skipped, and errs when none is left.
func (l *Local) LoadRLPrompts(ctx context.Context, dataset string, columns map[string]string, maxSamples, newTokens, maxPos int,
	job, lengthKey string, log io.Writer) (*RLPrompts, error) {
	rows, err := data.ReadSourceContext(ctx, dataset, "")
	if err != nil {
		return nil, fmt.Errorf("dataset_name: %w", err)
	}
	prompts, err := PromptsFromRows(dataset, rows, columns)
	if err != nil {
		return nil, fmt.Errorf("dataset_name: %w", err)
	}
	if maxSamples > 0 && len(prompts) > maxSamples {
		prompts = prompts[:maxSamples]
	}
	out := &RLPrompts{Rows: rows}
	skipped := 0
	for i, p := range prompts {
		if err := data.CheckStop(ctx, i, len(prompts), dataset); err != nil {
			return nil, err
		}
		ids, err := l.Encode(p)
		if err != nil {
			return nil, fmt.Errorf("dataset_name: %w", err)
		}
		if len(ids)+newTokens > maxPos {
			skipped++
			continue
		}
		if p.Row < 0 || p.Row >= len(rows) {
			return nil, fmt.Errorf("dataset_name %s: prompt of row %d: no such row", dataset, p.Row)
		}
		out.Prompts = append(out.Prompts, p)
		out.IDs = append(out.IDs, ids)
	}
	if skipped > 0 {
		fmt.Fprintf(log, "%s: %d prompts skipped: with %s %d they do not fit max_position_embeddings %d\n", job, skipped, lengthKey, newTokens, maxPos)
	}
	if len(out.Prompts) == 0 {
		return nil, fmt.Errorf("dataset_name %s: no prompt leaves room for %s %d tokens within max_position_embeddings %d", dataset, lengthKey, newTokens, maxPos)
	}
	return out, nil
}
