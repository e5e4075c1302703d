package data

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Format is the shape of a dataset, named after TRL's dataset types.
type Format string

// The formats a source can have. Conversational variants are the same
// formats with message lists instead of strings.
const (
	FormatText             Format = "text"              // language modelling: text
	FormatConversation     Format = "conversation"      // messages: [{role, content}]
	FormatPromptCompletion Format = "prompt_completion" // prompt, completion (strings or message lists)
	FormatAlpaca           Format = "alpaca"            // instruction, input, output
	FormatPreference       Format = "preference"        // [prompt], chosen, rejected (strings or message lists)
)

// Canonical column names. A source's Columns map renames file columns onto
// these.
var canonicalColumns = []string{
	"text", "messages", "prompt", "completion", "instruction", "input", "output",
	"chosen", "rejected", "margin", "score_chosen", "score_rejected", "rating", "trained_turn",
}

// Source is one data file and how to read it.
type Source struct {
	Path string `mapstructure:"path" yaml:"path"`
	// Columns maps a canonical column name ("messages", "chosen", ...) to the
	// file's column name, for files that name them differently.
	Columns map[string]string `mapstructure:"columns" yaml:"columns"`
	// Format forces a format; empty means detect it from the column names.
	Format Format `mapstructure:"format" yaml:"format"`
	// Split is the split read when Path is a Hugging Face dataset name rather than a file (see
	// package hub); empty means "train".
	Split string `mapstructure:"split" yaml:"split"`
}

// Record is one validated supervised fine-tuning row.
type Record struct {
	Source string
	Row    int
	Format Format // FormatText, FormatConversation or FormatPromptCompletion (alpaca rows become the latter)

	Text string // FormatText

	Messages []Message // FormatConversation

	// FormatPromptCompletion: either the strings or the message lists are set.
	Prompt, Completion                 string
	PromptMessages, CompletionMessages []Message

	// TrainedTurn is the index into Messages of the one assistant message that
	// carries loss (GAtt's trained_turn column), or -1 when the row has none.
	TrainedTurn int
}

// Conversational reports whether the record is rendered with a chat template.
func (r *Record) Conversational() bool {
	return r.Format == FormatConversation || (r.Format == FormatPromptCompletion && r.PromptMessages != nil)
}

// Pair is one validated preference row with its prompt made explicit.
type Pair struct {
	Source string
	Row    int

	// Conversational pairs set the message lists, others the strings.
	Conversational                                   bool
	Prompt, Chosen, Rejected                         string
	PromptMessages, ChosenMessages, RejectedMessages []Message

	Margin                     float64 // the row's margin column, if HasMargin
	HasMargin                  bool
	ScoreChosen, ScoreRejected float64 // the score columns, if HasScores
	HasScores                  bool
	// Ratings holds the row's other numeric columns (a "rating" column, or
	// anything else numeric), keyed by canonical name when mapped, else by
	// the file's column name.
	Ratings map[string]float64
}

// Dataset is a loaded and validated source.
type Dataset struct {
	Source  string
	Format  Format
	Records []Record // for SFT formats
	Pairs   []Pair   // for FormatPreference
}

// Len is the number of rows.
func (d *Dataset) Len() int {
	if d.Format == FormatPreference {
		return len(d.Pairs)
	}
	return len(d.Records)
}

// Load reads a source file and validates every row.
func Load(src Source) (*Dataset, error) { return load(context.Background(), src) }

// load is Load, stopping when ctx ends while the file is read.
func load(ctx context.Context, src Source) (*Dataset, error) {
	rows, err := ReadSourceContext(ctx, src.Path, src.Split)
	if err != nil {
		return nil, err
	}
	return Convert(rows, src)
}

// columns resolves canonical names to file column names.
type columns struct {
	toFile   map[string]string // canonical -> file (explicit mappings only)
	fromFile map[string]string // file -> canonical (explicit mappings only)
}

func newColumns(m map[string]string) (columns, error) {
	c := columns{toFile: map[string]string{}, fromFile: map[string]string{}}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		known := false
		for _, n := range canonicalColumns {
			known = known || n == k
		}
		if !known {
			return c, fmt.Errorf("columns: unknown column name %q (want one of %s)", k, strings.Join(canonicalColumns, ", "))
		}
		if m[k] == "" {
			return c, fmt.Errorf("columns: %q maps to an empty column name", k)
		}
		c.toFile[k] = m[k]
		c.fromFile[m[k]] = k
	}
	return c, nil
}

func (c columns) file(canon string) string {
	if f, ok := c.toFile[canon]; ok {
		return f
	}
	return canon
}

// describe names a column for error messages: its file name, and the
// canonical name it was mapped from when that differs.
func (c columns) describe(canon string) string {
	if f, ok := c.toFile[canon]; ok && f != canon {
		return fmt.Sprintf("%q (mapped from %q)", f, canon)
	}
	return fmt.Sprintf("%q", canon)
}

// rowCtx carries what every error message about a row needs.
type rowCtx struct {
	row  Row
	cols columns
}

func (r rowCtx) errf(format string, args ...any) error {
	return fmt.Errorf("%s: row %d: %s", r.row.Source, r.row.Index, fmt.Sprintf(format, args...))
}

func (r rowCtx) has(canon string) bool {
	v, ok := r.row.Fields[r.cols.file(canon)]
	return ok && v != nil
}

// get returns a required column's value.
func (r rowCtx) get(canon string) (any, error) {
	v, ok := r.row.Fields[r.cols.file(canon)]
	if !ok {
		return nil, r.errf("missing column %s", r.cols.describe(canon))
	}
	if v == nil {
		return nil, r.errf("column %s is null", r.cols.describe(canon))
	}
	return v, nil
}

func (r rowCtx) str(canon string) (string, error) {
	v, err := r.get(canon)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", r.errf("column %s: want string, got %s", r.cols.describe(canon), typeName(v))
	}
	return s, nil
}

// optNumber reads an optional numeric column.
func (r rowCtx) optNumber(canon string) (float64, bool, error) {
	if !r.has(canon) {
		return 0, false, nil
	}
	v := r.row.Fields[r.cols.file(canon)]
	switch t := v.(type) {
	case int64:
		return float64(t), true, nil
	case float64:
		return t, true, nil
	default:
		return 0, false, r.errf("column %s: want number, got %s", r.cols.describe(canon), typeName(v))
	}
}

// isMessageList reports whether v has the shape of a conversation (a list),
// without validating it.
func isMessageList(v any) bool {
	_, ok := v.([]any)
	return ok
}

// messages validates a conversation column.
func (r rowCtx) messages(canon string) ([]Message, error) {
	v, err := r.get(canon)
	if err != nil {
		return nil, err
	}
	return r.messageList(canon, v)
}

func (r rowCtx) messageList(canon string, v any) ([]Message, error) {
	col := r.cols.describe(canon)
	list, ok := v.([]any)
	if !ok {
		return nil, r.errf("column %s: want a list of messages, got %s", col, typeName(v))
	}
	if len(list) == 0 {
		return nil, r.errf("column %s: empty conversation", col)
	}
	msgs := make([]Message, len(list))
	for i, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, r.errf("column %s: message %d: want a {role, content} struct, got %s", col, i, typeName(it))
		}
		role, ok := m["role"].(string)
		if !ok {
			if m["role"] == nil {
				return nil, r.errf("column %s: message %d: missing role", col, i)
			}
			return nil, r.errf("column %s: message %d: role: want string, got %s", col, i, typeName(m["role"]))
		}
		switch role {
		case "system", "user", "assistant":
		default:
			return nil, r.errf("column %s: message %d: unknown role %q (want system, user or assistant)", col, i, role)
		}
		content, ok := m["content"].(string)
		if !ok {
			if m["content"] == nil {
				return nil, r.errf("column %s: message %d: missing content", col, i)
			}
			return nil, r.errf("column %s: message %d: content: want string, got %s", col, i, typeName(m["content"]))
		}
		msgs[i] = Message{Role: role, Content: content}
	}
	return msgs, nil
}

// Convert validates rows (all from one source) into a Dataset.
func Convert(rows []Row, src Source) (*Dataset, error) {
	cols, err := newColumns(src.Columns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Path, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", src.Path)
	}
	first := rowCtx{row: rows[0], cols: cols}
	for _, canon := range sortedKeys(cols.toFile) {
		if _, ok := rows[0].Fields[cols.toFile[canon]]; !ok {
			return nil, first.errf("missing column %s", cols.describe(canon))
		}
	}
	format := src.Format
	if format == "" {
		if format, err = detectFormat(first); err != nil {
			return nil, err
		}
	}
	ds := &Dataset{Source: src.Path, Format: format}
	for _, row := range rows {
		rc := rowCtx{row: row, cols: cols}
		switch format {
		case FormatPreference:
			p, err := rc.pair()
			if err != nil {
				return nil, err
			}
			ds.Pairs = append(ds.Pairs, p)
		case FormatText, FormatConversation, FormatPromptCompletion, FormatAlpaca:
			rec, err := rc.record(format)
			if err != nil {
				return nil, err
			}
			ds.Records = append(ds.Records, rec)
		default:
			return nil, fmt.Errorf("%s: unknown format %q (want text, conversation, prompt_completion, alpaca or preference)", src.Path, format)
		}
	}
	return ds, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func detectFormat(r rowCtx) (Format, error) {
	present := func(canon string) bool {
		_, ok := r.row.Fields[r.cols.file(canon)]
		return ok
	}
	switch {
	case present("chosen") && present("rejected"):
		return FormatPreference, nil
	case present("messages"):
		return FormatConversation, nil
	case present("prompt") && present("completion"):
		return FormatPromptCompletion, nil
	case present("instruction") && present("output"):
		return FormatAlpaca, nil
	case present("text"):
		return FormatText, nil
	}
	return "", r.errf("cannot tell the data format from columns [%s]: want text, messages, prompt+completion, instruction+output or chosen+rejected (rename with columns:)",
		strings.Join(sortedKeys(r.row.Fields), " "))
}

func (r rowCtx) record(format Format) (Record, error) {
	rec := Record{Source: r.row.Source, Row: r.row.Index, Format: format, TrainedTurn: -1}
	var err error
	switch format {
	case FormatText:
		if rec.Text, err = r.str("text"); err != nil {
			return rec, err
		}
		if rec.Text == "" {
			return rec, r.errf("column %s: empty text", r.cols.describe("text"))
		}
	case FormatConversation:
		if rec.Messages, err = r.messages("messages"); err != nil {
			return rec, err
		}
		if err := r.roleOrder(turns{"messages", rec.Messages}); err != nil {
			return rec, err
		}
		if err := r.trainedTurn(&rec); err != nil {
			return rec, err
		}
	case FormatPromptCompletion:
		p, err := r.get("prompt")
		if err != nil {
			return rec, err
		}
		c, err := r.get("completion")
		if err != nil {
			return rec, err
		}
		switch {
		case isMessageList(p) && isMessageList(c):
			if rec.PromptMessages, err = r.messageList("prompt", p); err != nil {
				return rec, err
			}
			if rec.CompletionMessages, err = r.messageList("completion", c); err != nil {
				return rec, err
			}
			if err := r.roleOrder(turns{"prompt", rec.PromptMessages}, turns{"completion", rec.CompletionMessages}); err != nil {
				return rec, err
			}
		case isMessageList(p) || isMessageList(c):
			return rec, r.errf("column %s: want %s like column %s, got %s", r.cols.describe("completion"),
				kindWord(p), r.cols.describe("prompt"), typeName(c))
		default:
			if rec.Prompt, err = r.str("prompt"); err != nil {
				return rec, err
			}
			if rec.Completion, err = r.str("completion"); err != nil {
				return rec, err
			}
		}
	case FormatAlpaca:
		// LLaMA-Factory's alpaca conversion: the user turn is the
		// instruction, then the input on the next line when there is one.
		rec.Format = FormatPromptCompletion
		ins, err := r.str("instruction")
		if err != nil {
			return rec, err
		}
		in := ""
		if r.has("input") {
			if in, err = r.str("input"); err != nil {
				return rec, err
			}
		}
		out, err := r.str("output")
		if err != nil {
			return rec, err
		}
		if in != "" {
			ins += "\n" + in
		}
		if ins == "" {
			return rec, r.errf("column %s: empty instruction", r.cols.describe("instruction"))
		}
		rec.PromptMessages = []Message{{Role: "user", Content: ins}}
		rec.CompletionMessages = []Message{{Role: "assistant", Content: out}}
	}
	return rec, nil
}

func kindWord(v any) string {
	if isMessageList(v) {
		return "a list of messages"
	}
	return "a string"
}

func (r rowCtx) trainedTurn(rec *Record) error {
	if !r.has("trained_turn") {
		return nil
	}
	v := r.row.Fields[r.cols.file("trained_turn")]
	i, ok := v.(int64)
	if !ok {
		return r.errf("column %s: want integer, got %s", r.cols.describe("trained_turn"), typeName(v))
	}
	if i < 0 || int(i) >= len(rec.Messages) || rec.Messages[i].Role != "assistant" {
		return r.errf("column %s: %d is not the index of an assistant message", r.cols.describe("trained_turn"), i)
	}
	rec.TrainedTurn = int(i)
	return nil
}

func (r rowCtx) pair() (Pair, error) {
	p := Pair{Source: r.row.Source, Row: r.row.Index}
	cv, err := r.get("chosen")
	if err != nil {
		return p, err
	}
	rv, err := r.get("rejected")
	if err != nil {
		return p, err
	}
	if isMessageList(cv) != isMessageList(rv) {
		return p, r.errf("column %s: want %s like column %s, got %s", r.cols.describe("rejected"),
			kindWord(cv), r.cols.describe("chosen"), typeName(rv))
	}
	var pv any
	if r.has("prompt") {
		pv = r.row.Fields[r.cols.file("prompt")]
	}
	switch {
	case isMessageList(cv):
		p.Conversational = true
		if p.ChosenMessages, err = r.messageList("chosen", cv); err != nil {
			return p, err
		}
		if p.RejectedMessages, err = r.messageList("rejected", rv); err != nil {
			return p, err
		}
		if isMessageList(pv) {
			if p.PromptMessages, err = r.messageList("prompt", pv); err != nil {
				return p, err
			}
		} else {
			// No prompt, or a string prompt beside conversational answers (the
			// ultrafeedback_binarized shape, where chosen and rejected repeat
			// the prompt): the prompt is the messages they share, as TRL's
			// maybe_extract_prompt does.
			if pv != nil {
				if _, ok := pv.(string); !ok {
					return p, r.errf("column %s: want string or list of messages, got %s", r.cols.describe("prompt"), typeName(pv))
				}
			}
			if err := r.splitShared(&p); err != nil {
				return p, err
			}
		}
	default:
		c, ok := cv.(string)
		if !ok {
			return p, r.errf("column %s: want string or list of messages, got %s", r.cols.describe("chosen"), typeName(cv))
		}
		rj, ok := rv.(string)
		if !ok {
			return p, r.errf("column %s: want string or list of messages, got %s", r.cols.describe("rejected"), typeName(rv))
		}
		switch {
		case pv != nil:
			if isMessageList(pv) {
				return p, r.errf("column %s: want a string like column %s, got list", r.cols.describe("prompt"), r.cols.describe("chosen"))
			}
			s, ok := pv.(string)
			if !ok {
				return p, r.errf("column %s: want string or list of messages, got %s", r.cols.describe("prompt"), typeName(pv))
			}
			p.Prompt, p.Chosen, p.Rejected = s, c, rj
		case isHHTranscript(c) && isHHTranscript(rj):
			p.Conversational = true
			p.ChosenMessages, p.RejectedMessages = parseHHTranscript(c), parseHHTranscript(rj)
			if err := r.splitShared(&p); err != nil {
				return p, err
			}
		default:
			if err := r.splitSharedText(&p, c, rj); err != nil {
				return p, err
			}
		}
	}
	// Message-list answers (given, or parsed from hh-rlhf transcripts) must
	// each keep an assistant completion after the shared prompt.
	if p.Conversational {
		if err := r.checkCompletion("chosen", p.ChosenMessages); err != nil {
			return p, err
		}
		if err := r.checkCompletion("rejected", p.RejectedMessages); err != nil {
			return p, err
		}
		if err := r.roleOrder(turns{"prompt", p.PromptMessages}, turns{"chosen", p.ChosenMessages}); err != nil {
			return p, err
		}
		if err := r.roleOrder(turns{"prompt", p.PromptMessages}, turns{"rejected", p.RejectedMessages}); err != nil {
			return p, err
		}
	}
	if p.Margin, p.HasMargin, err = r.optNumber("margin"); err != nil {
		return p, err
	}
	sc, okc, err := r.optNumber("score_chosen")
	if err != nil {
		return p, err
	}
	sr, okr, err := r.optNumber("score_rejected")
	if err != nil {
		return p, err
	}
	if okc != okr {
		return p, r.errf("columns %s and %s must both be set or both be absent", r.cols.describe("score_chosen"), r.cols.describe("score_rejected"))
	}
	p.ScoreChosen, p.ScoreRejected, p.HasScores = sc, sr, okc
	used := map[string]bool{}
	for _, c := range []string{"prompt", "chosen", "rejected", "margin", "score_chosen", "score_rejected"} {
		used[r.cols.file(c)] = true
	}
	for name, v := range r.row.Fields {
		if used[name] {
			continue
		}
		key := name
		if canon, ok := r.cols.fromFile[name]; ok {
			key = canon
		}
		switch t := v.(type) {
		case int64:
			if p.Ratings == nil {
				p.Ratings = map[string]float64{}
			}
			p.Ratings[key] = float64(t)
		case float64:
			if p.Ratings == nil {
				p.Ratings = map[string]float64{}
			}
			p.Ratings[key] = t
		}
	}
	return p, nil
}

// splitShared makes an implicit prompt explicit: the prompt is the longest
// common prefix of the chosen and rejected conversations, and each keeps the
// rest.
func (r rowCtx) splitShared(p *Pair) error {
	c, rj := p.ChosenMessages, p.RejectedMessages
	k := 0
	for k < len(c) && k < len(rj) && c[k] == rj[k] {
		k++
	}
	switch {
	case k == len(c) && k == len(rj):
		return r.errf("columns %s and %s are identical", r.cols.describe("chosen"), r.cols.describe("rejected"))
	case k == 0:
		return r.errf("columns %s and %s share no prompt: they differ from message 0", r.cols.describe("chosen"), r.cols.describe("rejected"))
	}
	p.PromptMessages = c[:k:k]
	p.ChosenMessages, p.RejectedMessages = c[k:], rj[k:]
	return nil
}

// turns are the messages of one column, part of a conversation checked by roleOrder.
type turns struct {
	canon string
	msgs  []Message
}

// roleOrder checks the order of a conversation's roles, whatever the chat template: an optional
// system message first, then user and assistant alternating from user. Templates differ in what
// they do with any other order (llama-2 raises, chatml renders it as given), so every row is held
// to the order all of them were trained on. parts are the columns the conversation spans, in order;
// the error names the column and the message's index in it.
func (r rowCtx) roleOrder(parts ...turns) error {
	pos, users := 0, 0 // position in the whole conversation, user messages so far
	want := "user"
	for _, part := range parts {
		for i, m := range part.msgs {
			bad := ""
			switch {
			case m.Role == "system" && pos == 0:
			case m.Role == "system":
				bad = "a system message after the first message"
			case m.Role != want && users == 0:
				bad = "an assistant message before any user message"
			case m.Role != want:
				bad = fmt.Sprintf("two %s messages in a row", m.Role)
			case m.Role == "user":
				users++
				want = "assistant"
			default:
				want = "user"
			}
			if bad != "" {
				return r.errf("column %s: message %d: %s (want an optional system message, then user and assistant alternating from user)", r.cols.describe(part.canon), i, bad)
			}
			pos++
		}
	}
	return nil
}

// checkCompletion requires a completion to exist and to start with an
// assistant turn: a preference is between two answers to the same prompt.
func (r rowCtx) checkCompletion(canon string, msgs []Message) error {
	if len(msgs) == 0 {
		return r.errf("column %s: no completion after the shared prompt", r.cols.describe(canon))
	}
	if msgs[0].Role != "assistant" {
		return r.errf("column %s: completion starts with a %s message, want assistant", r.cols.describe(canon), msgs[0].Role)
	}
	return nil
}

// splitSharedText is TRL's extract_prompt for plain strings: the prompt is
// the longest common prefix, moved back by one when it ends just after a
// space so that the answers keep their leading space.
func (r rowCtx) splitSharedText(p *Pair, c, rj string) error {
	if c == rj {
		return r.errf("columns %s and %s are identical", r.cols.describe("chosen"), r.cols.describe("rejected"))
	}
	k := 0
	for k < len(c) && k < len(rj) && c[k] == rj[k] {
		k++
	}
	// Never split inside a UTF-8 sequence.
	for k > 0 && k < len(c) && c[k]&0xC0 == 0x80 {
		k--
	}
	if k > 0 && c[k-1] == ' ' {
		k--
	}
	if k == 0 {
		return r.errf("columns %s and %s share no prompt", r.cols.describe("chosen"), r.cols.describe("rejected"))
	}
	p.Prompt, p.Chosen, p.Rejected = c[:k], c[k:], rj[k:]
	return nil
}
