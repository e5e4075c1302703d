package rlhf

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
)

// Prompt is one prompt to sample from: plain text (continued as is), a conversation (rendered with
// the chat template and add_generation_prompt), or token ids (fed to the model unchanged). Exactly
// one of Text, Messages and IDs is set.
type Prompt struct {
	Text     string
	Messages []chat.Message
	IDs      []int32
	// Source and Row say where the prompt came from, for messages.
	Source string
	Row    int
	// Safety marks a safety prompt (from the safety_column, see LoadSafety): with two reward
	// models its completions are judged by the safety model.
	Safety bool
}

// Conversational reports whether the prompt is a conversation.
func (p Prompt) Conversational() bool { return p.Messages != nil }

// Key identifies the prompt in a Pool and across rounds: its text, or the JSON of its messages or ids.
func (p Prompt) Key() string {
	switch {
	case p.Messages != nil:
		b, _ := json.Marshal(messagesJSON(p.Messages))
		return string(b)
	case p.IDs != nil:
		b, _ := json.Marshal(p.IDs)
		return string(b)
	}
	return p.Text
}

func (p Prompt) where() string { return fmt.Sprintf("%s: row %d", p.Source, p.Row) }

type messageJSON struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func messagesJSON(ms []chat.Message) []messageJSON {
	out := make([]messageJSON, len(ms))
	for i, m := range ms {
		out[i] = messageJSON{Role: m.Role, Content: m.Content}
	}
	return out
}

// promptColumns are the canonical columns a prompt file may map with `columns:`.
var promptColumns = []string{"prompt", "messages", "instruction", "input", "output", "completion", "chosen", "rejected"}

// LoadPrompts reads the prompts of a Parquet or JSON Lines file. The prompt of a row is, by the first
// column present (after renaming with columns, canonical name -> file column; a column named in
// columns is used before the others, so `columns: {messages: messages}` picks a file's conversations
// over its prompt strings):
//
//   - chosen + rejected: the preference row's prompt as the data layer makes it explicit (its
//     prompt column; or, for a string prompt beside conversational answers, or none, the messages
//     both answers share; hh-rlhf transcripts too);
//   - prompt: a string, or a list of {role, content} messages (TRL's prompt-only and
//     prompt-completion types; a completion column is ignored);
//   - messages: the conversation up to its last assistant message (the whole conversation when it
//     does not end with one), so that SFT data can serve as prompts;
//   - instruction (+ input): one user message, as alpaca rows are converted for SFT.
//
// A file with none of these is an error naming the columns it has. All prompts of a file are of one
// kind, text or conversational.
func LoadPrompts(path string, columns map[string]string) ([]Prompt, error) {
	return LoadPromptsSplit(path, "", columns)
}

// LoadPromptsSplit is LoadPrompts where path may also be a Hugging Face dataset name in the local
// hub cache, read from split ("" is train; see data.ReadSource).
func LoadPromptsSplit(path, split string, columns map[string]string) ([]Prompt, error) {
	if err := checkPromptColumns(path, columns); err != nil {
		return nil, err
	}
	rows, err := data.ReadSource(path, split)
	if err != nil {
		return nil, err
	}
	return PromptsFromRows(path, rows, columns)
}

// checkPromptColumns refuses a columns mapping that names no prompt column or an empty one.
func checkPromptColumns(path string, columns map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(columns)) {
		if !slices.Contains(promptColumns, k) {
			return fmt.Errorf("%s: columns: %q is not a prompt column (want one of %s)", path, k, strings.Join(promptColumns, ", "))
		}
		if columns[k] == "" {
			return fmt.Errorf("%s: columns: %q maps to an empty column name", path, k)
		}
	}
	return nil
}

// PromptsFromRows is LoadPrompts over rows already read from path (data.ReadSourceContext, for a
// caller that reads them once, with its context, for other uses too).
func PromptsFromRows(path string, rows []data.Row, columns map[string]string) ([]Prompt, error) {
	if err := checkPromptColumns(path, columns); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	col := func(c string) string {
		if f, ok := columns[c]; ok {
			return f
		}
		return c
	}
	has := func(c string) bool { _, ok := rows[0].Fields[col(c)]; return ok }
	// A source named in columns wins over the defaults, so that a file with both a prompt string and
	// a messages conversation (no_robots) can be sampled either way.
	source := ""
	for _, c := range []string{"chosen", "prompt", "messages", "instruction"} {
		if _, mapped := columns[c]; mapped && has(c) && source == "" {
			source = c
		}
	}
	if source == "" {
		switch {
		case has("chosen") && has("rejected"):
			source = "chosen" // preference data: the data layer knows where its prompt is
		case has("prompt"):
			source = "prompt"
		case has("messages"):
			source = "messages"
		case has("instruction"):
			source = "instruction"
		default:
			return nil, fmt.Errorf("%s: no prompt column: want prompt, messages, instruction or chosen+rejected, the file has [%s] (map yours with columns:)",
				path, strings.Join(slices.Sorted(maps.Keys(rows[0].Fields)), " "))
		}
	}
	var out []Prompt
	var err error
	switch source {
	case "prompt":
		out, err = promptColumn(rows, col("prompt"))
	case "messages":
		out, err = fromDataset(rows, path, columns, data.FormatConversation)
	case "instruction":
		out, err = fromDataset(rows, path, columns, data.FormatAlpaca)
	default:
		out, err = fromDataset(rows, path, columns, data.FormatPreference)
	}
	if err != nil {
		return nil, err
	}
	for _, p := range out[1:] {
		if p.Conversational() != out[0].Conversational() {
			return nil, fmt.Errorf("%s: a %s prompt, but row %d's is %s: a file's prompts are all text or all conversations",
				p.where(), kind(p), out[0].Row, kind(out[0]))
		}
	}
	return out, nil
}

func kind(p Prompt) string {
	if p.Conversational() {
		return "conversational"
	}
	return "text"
}

// promptColumn reads a prompt column of strings or message lists.
func promptColumn(rows []data.Row, name string) ([]Prompt, error) {
	out := make([]Prompt, 0, len(rows))
	for _, r := range rows {
		p := Prompt{Source: r.Source, Row: r.Index}
		switch v := r.Fields[name].(type) {
		case string:
			if strings.TrimSpace(v) == "" {
				return nil, fmt.Errorf("%s: column %q: empty prompt", p.where(), name)
			}
			p.Text = v
		case []any:
			msgs, err := messageList(v)
			if err != nil {
				return nil, fmt.Errorf("%s: column %q: %w", p.where(), name, err)
			}
			p.Messages = msgs
		case nil:
			return nil, fmt.Errorf("%s: column %q is null", p.where(), name)
		default:
			return nil, fmt.Errorf("%s: column %q: want a string or a list of messages, got %T", p.where(), name, v)
		}
		out = append(out, p)
	}
	return out, nil
}

func messageList(list []any) ([]chat.Message, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("empty conversation")
	}
	msgs := make([]chat.Message, len(list))
	for i, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("message %d: want a {role, content} struct, got %T", i, it)
		}
		role, ok := m["role"].(string)
		if !ok || (role != "system" && role != "user" && role != "assistant") {
			return nil, fmt.Errorf("message %d: role %v: want system, user or assistant", i, m["role"])
		}
		content, ok := m["content"].(string)
		if !ok {
			return nil, fmt.Errorf("message %d: content: want a string, got %T", i, m["content"])
		}
		msgs[i] = chat.Message{Role: role, Content: content}
	}
	return msgs, nil
}

// fromDataset lets the data layer validate an SFT or preference file and takes each row's prompt.
func fromDataset(rows []data.Row, path string, columns map[string]string, format data.Format) ([]Prompt, error) {
	ds, err := data.Convert(rows, data.Source{Path: path, Columns: columns, Format: format})
	if err != nil {
		return nil, err
	}
	var out []Prompt
	for _, r := range ds.Records {
		p := Prompt{Source: r.Source, Row: r.Row}
		switch {
		case r.Format == data.FormatConversation:
			msgs := r.Messages
			if n := len(msgs); msgs[n-1].Role == "assistant" {
				last := n - 1
				msgs = msgs[:last]
			}
			if len(msgs) == 0 {
				return nil, fmt.Errorf("%s: the conversation has no message before its assistant turn to use as the prompt", p.where())
			}
			p.Messages = msgs
		case r.PromptMessages != nil:
			p.Messages = r.PromptMessages
		default:
			p.Text = r.Prompt
		}
		out = append(out, p)
	}
	for _, pr := range ds.Pairs {
		p := Prompt{Source: pr.Source, Row: pr.Row}
		if pr.Conversational {
			p.Messages = pr.PromptMessages
		} else {
			p.Text = pr.Prompt
		}
		if p.Messages == nil && strings.TrimSpace(p.Text) == "" {
			return nil, fmt.Errorf("%s: the pair has no prompt (chosen and rejected share nothing)", p.where())
		}
		out = append(out, p)
	}
	return out, nil
}
