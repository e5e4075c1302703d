package data

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/ctxerr"
)

// Span is a piece of text for an Encoder. Special spans are template text,
// in which special-token strings ("<s>", "<|im_end|>", ...) become their ids;
// in other spans (message contents, dataset text) they never do.
type Span struct {
	Text    string
	Special bool
}

// Encoder is what the data layer needs from a tokenizer. The model's
// tokenizer is adapted to it by a small wrapper in the wiring code (its own
// span type converts field for field).
type Encoder interface {
	// EncodeChat encodes the concatenation of parts. Special-token strings
	// are recognised only inside Special parts. Part boundaries only bound
	// special-token parsing: normal text is encoded as if the parts were one
	// string. addBOS prepends the BOS id.
	EncodeChat(parts []Span, addBOS bool) []int32
	BOS() int32
	EOS() int32
	// AddBOS reports whether the model expects BOS before plain text
	// (tokenizer_config.json's add_bos_token).
	AddBOS() bool
	// ChatTemplate is the model's own chat template, "" if none.
	ChatTemplate() string
}

// MaskMode says which tokens of an example carry loss.
type MaskMode string

// Mask modes. The empty mode picks the format's default: MaskAll for text,
// MaskCompletionOnly for prompt/completion, MaskAssistantOnly for
// conversations.
const (
	// MaskAll trains every token (but the first, which nothing predicts).
	MaskAll MaskMode = "all"
	// MaskCompletionOnly trains the completion of prompt/completion rows.
	// On a conversation it trains the last assistant message, as
	// MaskLastTurnOnly.
	MaskCompletionOnly MaskMode = "completion_only"
	// MaskAssistantOnly trains every assistant message.
	MaskAssistantOnly MaskMode = "assistant_only"
	// MaskLastTurnOnly trains only the final assistant message (Ghost
	// Attention: earlier turns are context only).
	MaskLastTurnOnly MaskMode = "last_turn_only"
)

// ParseMaskMode validates a mask mode name ("" is the per-format default).
func ParseMaskMode(s string) (MaskMode, error) {
	switch m := MaskMode(s); m {
	case "", MaskAll, MaskCompletionOnly, MaskAssistantOnly, MaskLastTurnOnly:
		return m, nil
	}
	return "", fmt.Errorf("mask mode %q: want all, completion_only, assistant_only or last_turn_only", s)
}

// Example is one tokenized training sequence.
//
// Mask has len(IDs) entries on target positions: Mask[i] says that token
// IDs[i] is a target that carries loss, i.e. the logit at position i-1 is
// trained to predict IDs[i]. Mask[0] is always false, since no position
// predicts the first token.
type Example struct {
	IDs    []int32
	Mask   []bool
	Row    int
	Source string
}

// Trained counts the targets that carry loss.
func (e *Example) Trained() int {
	n := 0
	for _, m := range e.Mask {
		if m {
			n++
		}
	}
	return n
}

// PairExample is one tokenized preference pair. Prompt ends where the
// answers start (after the generation prompt, for conversations); Chosen and
// Rejected are the answer tokens, each ending with the EOS that closes the
// answer. Every Chosen and Rejected token is a loss target.
type PairExample struct {
	Prompt, Chosen, Rejected []int32

	Margin                     float64
	HasMargin                  bool
	ScoreChosen, ScoreRejected float64
	HasScores                  bool
	Ratings                    map[string]float64

	Row    int
	Source string
}

// Tokenizer turns records into examples with loss masks.
type Tokenizer struct {
	enc  Encoder
	tmpl *chat.Template
}

// NewTokenizer pairs an encoder with a chat template (nil when the data has
// no conversations).
func NewTokenizer(enc Encoder, tmpl *chat.Template) *Tokenizer {
	return &Tokenizer{enc: enc, tmpl: tmpl}
}

// Template is the chat template in use, or nil.
func (t *Tokenizer) Template() *chat.Template { return t.tmpl }

// seq accumulates ids and their target mask.
type seq struct {
	ids  []int32
	mask []bool
}

func (s *seq) add(ids []int32, trained bool) {
	s.ids = append(s.ids, ids...)
	for range ids {
		s.mask = append(s.mask, trained)
	}
}

// addAnswer appends the tokens of an assistant turn. The turn carries loss
// up to and including the last EOS in it (the EOS that ends the turn);
// template text after that EOS (chatml's "\n", mistral's " ") is not part of
// the answer and carries loss only in MaskAll. A trained turn without EOS
// gets one appended, so that the model learns to stop.
func (s *seq) addAnswer(own []int32, eos int32, trained, all bool) {
	j := lastIndex(own, eos)
	if j < 0 {
		s.add(own, trained)
		if trained {
			s.add([]int32{eos}, true)
		}
		return
	}
	s.add(own[:j+1], trained)
	s.add(own[j+1:], all)
}

func lastIndex(ids []int32, id int32) int {
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i] == id {
			return i
		}
	}
	return -1
}

// rowError formats an error about a record.
func rowError(source string, row int, format string, args ...any) error {
	return fmt.Errorf("%s: row %d: %s", source, row, fmt.Sprintf(format, args...))
}

// Example tokenizes one record. mode "" means the format's default.
func (t *Tokenizer) Example(rec *Record, mode MaskMode) (Example, error) {
	ex := Example{Row: rec.Row, Source: rec.Source}
	var s seq
	var err error
	switch rec.Format {
	case FormatText:
		if mode == "" {
			mode = MaskAll
		}
		if mode != MaskAll {
			return ex, rowError(rec.Source, rec.Row, "mask mode %s does not apply to text rows (only all)", mode)
		}
		s.add(t.enc.EncodeChat([]Span{{Text: rec.Text}}, t.enc.AddBOS()), true)
		s.add([]int32{t.enc.EOS()}, true)
	case FormatConversation:
		if mode == "" {
			mode = MaskAssistantOnly
		}
		s, err = t.conversation(rec, rec.Messages, mode)
	case FormatPromptCompletion:
		if mode == "" {
			mode = MaskCompletionOnly
		}
		switch {
		case rec.PromptMessages == nil:
			s, err = t.textCompletion(rec, mode)
		case mode == MaskCompletionOnly:
			s, err = t.chatCompletion(rec)
		default:
			msgs := append(append([]Message{}, rec.PromptMessages...), rec.CompletionMessages...)
			s, err = t.conversation(rec, msgs, mode)
		}
	default:
		return ex, rowError(rec.Source, rec.Row, "unknown record format %q", rec.Format)
	}
	if err != nil {
		return ex, err
	}
	if len(s.mask) > 0 {
		s.mask[0] = false
	}
	ex.IDs, ex.Mask = s.ids, s.mask
	if ex.Trained() == 0 {
		return ex, rowError(rec.Source, rec.Row, "no token carries loss (mask %s)", mode)
	}
	return ex, nil
}

// Examples tokenizes records, stopping at the first error or when ctx ends (checked every
// CheckEvery rows: a dataset of 10^5 rows takes minutes, and a signal must end it in seconds).
func (t *Tokenizer) Examples(ctx context.Context, recs []Record, mode MaskMode) ([]Example, error) {
	out := make([]Example, 0, len(recs))
	for i := range recs {
		if err := CheckStop(ctx, i, len(recs), recs[i].Source); err != nil {
			return nil, err
		}
		ex, err := t.Example(&recs[i], mode)
		if err != nil {
			return nil, err
		}
		out = append(out, ex)
	}
	return out, nil
}

func (t *Tokenizer) needTemplate(source string, row int) error {
	if t.tmpl == nil {
		return rowError(source, row, "conversational data needs a chat template, and none is set (the tokenizer has none; set chat_template)")
	}
	return nil
}

// render renders msgs and encodes them, template text as special spans and
// message contents as plain ones. No BOS is added: the template writes
// bos_token where the model wants it, as apply_chat_template does.
func (t *Tokenizer) render(source string, row int, label string, msgs []Message, gen bool) ([]int32, error) {
	segs, err := t.tmpl.RenderSegments(msgs, gen)
	if err != nil {
		return nil, rowError(source, row, "%s%v", label, err)
	}
	return EncodeRendered(t.enc, segs), nil
}

// EncodeRendered encodes a chat template's rendering (chat.Template.RenderSegments): the template's
// own text may name special tokens ("<s>", "<|im_end|>"), the messages' contents never do, so a
// literal "</s>" a user typed stays text. The template supplies any BOS.
func EncodeRendered(enc Encoder, segs []chat.Segment) []int32 {
	spans := make([]Span, len(segs))
	for i, sg := range segs {
		spans[i] = Span{Text: sg.Text, Special: sg.Message < 0 && !sg.Plain}
	}
	return enc.EncodeChat(spans, false)
}

// prefixError reports that the tokens of a longer rendering do not start with
// those of a shorter one.
type prefixError struct{ err error }

func (e *prefixError) Error() string { return e.err.Error() }
func (e *prefixError) Unwrap() error { return e.err }

// checkPrefix returns a *prefixError when short is not a prefix of long.
func (t *Tokenizer) checkPrefix(source string, row int, short, long []int32, shortName, longName string) error {
	n := min(len(short), len(long))
	for i := 0; i < n; i++ {
		if short[i] != long[i] {
			return &prefixError{rowError(source, row, "chat template %s breaks the prefix property: the tokens of %s are not a prefix of the tokens of %s (first difference at token %d)",
				t.tmpl.Name(), shortName, longName, i)}
		}
	}
	if len(short) > len(long) {
		return &prefixError{rowError(source, row, "chat template %s breaks the prefix property: %s renders to more tokens (%d) than %s (%d)",
			t.tmpl.Name(), shortName, len(short), longName, len(long))}
	}
	return nil
}

// turnMask says which messages' answers carry loss, and whether everything
// does (MaskAll).
func turnMask(rec *Record, msgs []Message, mode MaskMode) (trained func(int) bool, all bool) {
	last := -1
	for i, m := range msgs {
		if m.Role == "assistant" {
			last = i
		}
	}
	trained = func(i int) bool {
		switch {
		case rec.TrainedTurn >= 0:
			return i == rec.TrainedTurn
		case mode == MaskAssistantOnly || mode == MaskAll:
			return true
		default: // last turn only, completion only
			return i == last
		}
	}
	return trained, mode == MaskAll && rec.TrainedTurn < 0
}

// conversation tokenizes a conversation with its loss mask. Most templates
// render each message the same whatever follows it, and conversationByTurn
// builds the tokens turn by turn. Some render an assistant turn differently
// once the conversation goes on (Qwen3 writes an empty <think></think> block
// into the assistant turns after the last user message only, so a turn that
// was last loses it when a user message follows): that breaks the prefix
// property conversationByTurn checks, and conversationWhole tokenizes the
// whole conversation as rendered once instead, as the model sees it.
func (t *Tokenizer) conversation(rec *Record, msgs []Message, mode MaskMode) (seq, error) {
	s, err := t.conversationByTurn(rec, msgs, mode)
	var pe *prefixError
	if errors.As(err, &pe) {
		if whole, werr := t.conversationWhole(rec, msgs, mode); werr == nil {
			return whole, nil
		}
	}
	return s, err
}

// conversationWhole renders msgs once. Each assistant turn's header is what
// msgs[:k] renders with the generation prompt (it must be a prefix of the
// whole); its answer runs from there through the first EOS after it (the
// EOS that closes the turn: message contents never hold the EOS id, which
// only template text can produce). Template text after that EOS carries loss
// only with MaskAll.
func (t *Tokenizer) conversationWhole(rec *Record, msgs []Message, mode MaskMode) (seq, error) {
	var s seq
	trained, all := turnMask(rec, msgs, mode)
	eos := t.enc.EOS()
	full, err := t.render(rec.Source, rec.Row, "", msgs, false)
	if err != nil {
		return s, err
	}
	pos := 0
	for k, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		var gen []int32
		if k == 0 {
			if g, err := t.render(rec.Source, rec.Row, "", nil, true); err == nil && len(g) <= len(full) && slices.Equal(g, full[:len(g)]) {
				gen = g
			}
		} else if gen, err = t.render(rec.Source, rec.Row, "", msgs[:k], true); err != nil {
			return s, err
		}
		genName := fmt.Sprintf("messages[:%d] with the generation prompt", k)
		if err := t.checkPrefix(rec.Source, rec.Row, gen, full, genName, "the whole conversation"); err != nil {
			return s, err
		}
		if len(gen) < pos {
			return s, rowError(rec.Source, rec.Row, "chat template %s: %s ends inside the turn before it", t.tmpl.Name(), genName)
		}
		j := slices.Index(full[len(gen):], eos)
		if j < 0 {
			return s, rowError(rec.Source, rec.Row, "chat template %s: no EOS closes assistant message %d", t.tmpl.Name(), k)
		}
		end := len(gen) + j + 1
		s.add(full[pos:len(gen)], all)
		s.add(full[len(gen):end], trained(k) || all)
		pos = end
	}
	s.add(full[pos:], all)
	return s, nil
}

// conversationByTurn builds the tokens of msgs message by message: rendering
// msgs[:k] for k = 1..n, the tokens message k-1 adds are the difference
// between consecutive renderings (checked to extend each other). Before an
// assistant message, msgs[:k-1] is also rendered with the generation prompt:
// the tokens up to there are the turn's header, the rest are the answer. (A
// template that ignores add_generation_prompt and writes the assistant header
// with the message leaves that header in the answer, as transformers would.)
func (t *Tokenizer) conversationByTurn(rec *Record, msgs []Message, mode MaskMode) (seq, error) {
	var s seq
	if err := t.needTemplate(rec.Source, rec.Row); err != nil {
		return s, err
	}
	trained, all := turnMask(rec, msgs, mode)
	eos := t.enc.EOS()
	var prev []int32
	for k := range msgs {
		name := fmt.Sprintf("messages[:%d]", k+1)
		full, err := t.render(rec.Source, rec.Row, "", msgs[:k+1], false)
		if err != nil {
			return s, err
		}
		if msgs[k].Role != "assistant" {
			if err := t.checkPrefix(rec.Source, rec.Row, prev, full, fmt.Sprintf("messages[:%d]", k), name); err != nil {
				return s, err
			}
			s.add(full[len(prev):], all)
			prev = full
			continue
		}
		gen := prev
		if k == 0 {
			// An opening assistant turn: its header is what the empty
			// conversation renders with the generation prompt, when the
			// template can render an empty conversation at all.
			if g, err := t.render(rec.Source, rec.Row, "", nil, true); err == nil && len(g) <= len(full) && slices.Equal(g, full[:len(g)]) {
				gen = g
			}
		} else {
			if gen, err = t.render(rec.Source, rec.Row, "", msgs[:k], true); err != nil {
				return s, err
			}
			genName := fmt.Sprintf("messages[:%d] with the generation prompt", k)
			if err := t.checkPrefix(rec.Source, rec.Row, prev, gen, fmt.Sprintf("messages[:%d]", k), genName); err != nil {
				return s, err
			}
			if err := t.checkPrefix(rec.Source, rec.Row, gen, full, genName, name); err != nil {
				return s, err
			}
		}
		s.add(gen[len(prev):], all)
		s.addAnswer(full[len(gen):], eos, trained(k) || all, all)
		prev = full
	}
	return s, nil
}

// chatCompletion tokenizes a conversational prompt/completion row with loss
// on the completion only.
func (t *Tokenizer) chatCompletion(rec *Record) (seq, error) {
	var s seq
	if err := t.needTemplate(rec.Source, rec.Row); err != nil {
		return s, err
	}
	prompt, answer, err := t.chatAnswer(rec.Source, rec.Row, "completion", rec.PromptMessages, rec.CompletionMessages)
	if err != nil {
		return s, err
	}
	s.add(prompt, false)
	s.addAnswer(answer, t.enc.EOS(), true, false)
	return s, nil
}

// chatAnswer renders prompt (with the generation prompt) and prompt+answer,
// and returns the prompt tokens and the answer's tokens after them.
func (t *Tokenizer) chatAnswer(source string, row int, label string, prompt, answer []Message) ([]int32, []int32, error) {
	p, err := t.render(source, row, "prompt: ", prompt, true)
	if err != nil {
		return nil, nil, err
	}
	msgs := append(append([]Message{}, prompt...), answer...)
	full, err := t.render(source, row, "prompt+"+label+": ", msgs, false)
	if err != nil {
		return nil, nil, err
	}
	if err := t.checkPrefix(source, row, p, full, "the prompt with the generation prompt", "prompt+"+label); err != nil {
		return nil, nil, err
	}
	return p, full[len(p):], nil
}

// textCompletion tokenizes a plain prompt/completion row: BOS (if the model
// adds one), prompt, completion, EOS.
func (t *Tokenizer) textCompletion(rec *Record, mode MaskMode) (seq, error) {
	var s seq
	if mode != MaskCompletionOnly && mode != MaskAll {
		return s, rowError(rec.Source, rec.Row, "mask mode %s needs conversational data; this row's prompt and completion are strings", mode)
	}
	p, c, err := t.textAnswer(rec.Source, rec.Row, "completion", rec.Prompt, rec.Completion)
	if err != nil {
		return s, err
	}
	s.add(p, mode == MaskAll)
	s.add(c, true)
	s.add([]int32{t.enc.EOS()}, true)
	return s, nil
}

// textAnswer encodes prompt and prompt+answer as one text and returns the
// prompt tokens and the answer's tokens after them.
func (t *Tokenizer) textAnswer(source string, row int, label, prompt, answer string) ([]int32, []int32, error) {
	bos := t.enc.AddBOS()
	p := t.enc.EncodeChat([]Span{{Text: prompt}}, bos)
	full := t.enc.EncodeChat([]Span{{Text: prompt}, {Text: answer}}, bos)
	for i := range p {
		if i >= len(full) || p[i] != full[i] {
			return nil, nil, rowError(source, row, "the tokens of the prompt are not a prefix of the tokens of prompt+%s (first difference at token %d): the tokenizer merges text across the boundary", label, i)
		}
	}
	return p, full[len(p):], nil
}

// PairExample tokenizes one preference pair.
func (t *Tokenizer) PairExample(p *Pair) (PairExample, error) {
	ex := PairExample{
		Margin: p.Margin, HasMargin: p.HasMargin,
		ScoreChosen: p.ScoreChosen, ScoreRejected: p.ScoreRejected, HasScores: p.HasScores,
		Ratings: p.Ratings, Row: p.Row, Source: p.Source,
	}
	eos := t.enc.EOS()
	if p.Conversational {
		if err := t.needTemplate(p.Source, p.Row); err != nil {
			return ex, err
		}
		prompt, c, err := t.chatAnswer(p.Source, p.Row, "chosen", p.PromptMessages, p.ChosenMessages)
		if err != nil {
			return ex, err
		}
		_, r, err := t.chatAnswer(p.Source, p.Row, "rejected", p.PromptMessages, p.RejectedMessages)
		if err != nil {
			return ex, err
		}
		ex.Prompt, ex.Chosen, ex.Rejected = prompt, answerThroughEOS(c, eos), answerThroughEOS(r, eos)
		return ex, nil
	}
	prompt, c, err := t.textAnswer(p.Source, p.Row, "chosen", p.Prompt, p.Chosen)
	if err != nil {
		return ex, err
	}
	_, r, err := t.textAnswer(p.Source, p.Row, "rejected", p.Prompt, p.Rejected)
	if err != nil {
		return ex, err
	}
	ex.Prompt = prompt
	ex.Chosen = append(c[:len(c):len(c)], eos)
	ex.Rejected = append(r[:len(r):len(r)], eos)
	return ex, nil
}

// answerThroughEOS cuts a rendered answer after its last EOS (dropping the
// template text that follows it), or appends EOS when it has none.
func answerThroughEOS(own []int32, eos int32) []int32 {
	if j := lastIndex(own, eos); j >= 0 {
		return own[: j+1 : j+1]
	}
	return append(own[:len(own):len(own)], eos)
}

// PairExamples tokenizes pairs, stopping at the first error or when ctx ends (checked every
// CheckEvery pairs, as Examples).
func (t *Tokenizer) PairExamples(ctx context.Context, pairs []Pair) ([]PairExample, error) {
	out := make([]PairExample, 0, len(pairs))
	for i := range pairs {
		if err := CheckStop(ctx, i, len(pairs), pairs[i].Source); err != nil {
			return nil, err
		}
		ex, err := t.PairExample(&pairs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, ex)
	}
	return out, nil
}

// CheckEvery is how many rows a tokenizing loop goes between looks at its context: a row takes
// well under a millisecond, so a stop is seen within a fraction of a second, and the check costs
// nothing measurable.
const CheckEvery = 256

// CheckStop is a tokenizing loop's look at ctx before row i of n of source: every CheckEvery rows,
// an error when ctx has ended. The error wraps ctx.Err() (errors.Is(err, context.Canceled) holds)
// and says why, from context.Cause (the command line's "stopped by SIGINT").
func CheckStop(ctx context.Context, i, n int, source string) error {
	if i%CheckEvery != 0 {
		return nil
	}
	if err := ctxerr.Err(ctx); err != nil {
		return fmt.Errorf("tokenizing %s: %w after %d of %d rows", source, err, i, n)
	}
	return nil
}
