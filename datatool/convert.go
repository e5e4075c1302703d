package datatool

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/alignkit/alignkit/data"
)

// Layouts convert understands: the source layout, converted to TRL's.
const (
	LayoutAlpaca   = "alpaca"   // instruction, input, output -> messages
	LayoutShareGPT = "sharegpt" // conversations: [{from, value}] (+ system) -> messages
	LayoutHHRLHF   = "hh-rlhf"  // chosen, rejected "\n\nHuman: ... \n\nAssistant: ..." -> prompt, chosen, rejected messages
)

// ConvertOptions say what convert changes besides the file type.
type ConvertOptions struct {
	// Rename maps a column's old name to its new one, applied first.
	Rename map[string]string
	// From is the source layout to rewrite into TRL's ("" keeps the rows as they are).
	From string
}

// Convert renames columns and rewrites a layout into TRL's; columns a layout does not read are
// kept.
func Convert(t *Table, opt ConvertOptions) (*Table, error) {
	out := &Table{Source: t.Source, Columns: slices.Clone(t.Columns)}
	olds := make([]string, 0, len(opt.Rename))
	for o := range opt.Rename {
		olds = append(olds, o)
	}
	sort.Strings(olds)
	for _, o := range olds {
		n := opt.Rename[o]
		i := slices.Index(t.Columns, o)
		if i < 0 {
			return nil, fmt.Errorf("%s: --rename %s=%s: no column %q (columns: %v)", t.Source, o, n, o, t.Columns)
		}
		if n != o && slices.Contains(out.Columns, n) && opt.Rename[n] == "" {
			return nil, fmt.Errorf("%s: --rename %s=%s: column %q already exists", t.Source, o, n, n)
		}
		out.Columns[i] = n
	}
	out.Rows = make([]data.Row, len(t.Rows))
	for i, r := range t.Rows {
		f := make(map[string]any, len(r.Fields))
		for k, v := range r.Fields {
			if n, ok := opt.Rename[k]; ok {
				k = n
			}
			f[k] = v
		}
		out.Rows[i] = data.Row{Source: r.Source, Index: r.Index, Fields: f}
	}
	switch opt.From {
	case "":
		return out, nil
	case LayoutAlpaca:
		return fromAlpaca(out)
	case LayoutShareGPT:
		return fromShareGPT(out)
	case LayoutHHRLHF:
		return fromHH(out)
	}
	return nil, fmt.Errorf("--from %q: want alpaca, sharegpt or hh-rlhf", opt.From)
}

func messageList(ms []data.Message) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	return out
}

// replaceColumns drops the layout's columns and appends the new ones.
func replaceColumns(t *Table, drop, add []string) {
	var cols []string
	for _, c := range t.Columns {
		if !slices.Contains(drop, c) && !slices.Contains(add, c) {
			cols = append(cols, c)
		}
	}
	t.Columns = append(cols, add...)
	for _, r := range t.Rows {
		for _, c := range drop {
			if !slices.Contains(add, c) {
				delete(r.Fields, c)
			}
		}
	}
}

// fromAlpaca is data's alpaca reading (LLaMA-Factory's: the instruction, then the input on the next
// line) written out as a user and an assistant message.
func fromAlpaca(t *Table) (*Table, error) {
	ds, err := data.Convert(t.Rows, data.Source{Path: t.Source, Format: data.FormatAlpaca})
	if err != nil {
		return nil, err
	}
	for i := range t.Rows {
		rec := ds.Records[i]
		t.Rows[i].Fields["messages"] = messageList(append(slices.Clone(rec.PromptMessages), rec.CompletionMessages...))
	}
	replaceColumns(t, []string{"instruction", "input", "output"}, []string{"messages"})
	return t, nil
}

// shareGPTRoles maps ShareGPT's "from" values (LLaMA-Factory's sharegpt tags and the common
// variants) to TRL's roles.
var shareGPTRoles = map[string]string{
	"human": "user", "user": "user",
	"gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant", "bing": "assistant",
	"system": "system",
}

func fromShareGPT(t *Table) (*Table, error) {
	for _, r := range t.Rows {
		v, ok := r.Fields["conversations"]
		if !ok || v == nil {
			return nil, fmt.Errorf("%s: row %d: missing column \"conversations\" (rename yours with --rename NAME=conversations)", r.Source, r.Index)
		}
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: row %d: column \"conversations\": want a list of {from, value}, got %T", r.Source, r.Index, v)
		}
		var msgs []any
		if s, ok := r.Fields["system"].(string); ok && s != "" {
			msgs = append(msgs, map[string]any{"role": "system", "content": s})
		}
		for j, it := range list {
			m, ok := it.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: row %d: column \"conversations\": turn %d: want a {from, value} struct, got %T", r.Source, r.Index, j, it)
			}
			from, _ := m["from"].(string)
			role, ok := shareGPTRoles[from]
			if !ok {
				return nil, fmt.Errorf("%s: row %d: column \"conversations\": turn %d: from %q is not one of human, user, gpt, assistant, system", r.Source, r.Index, j, from)
			}
			value, ok := m["value"].(string)
			if !ok {
				return nil, fmt.Errorf("%s: row %d: column \"conversations\": turn %d: value: want string, got %T", r.Source, r.Index, j, m["value"])
			}
			msgs = append(msgs, map[string]any{"role": role, "content": value})
		}
		r.Fields["messages"] = msgs
	}
	drop := []string{"conversations"}
	if slices.Contains(t.Columns, "system") {
		drop = append(drop, "system")
	}
	replaceColumns(t, drop, []string{"messages"})
	return t, nil
}

// fromHH parses hh-rlhf transcripts as data does (the implicit prompt made explicit: the shared
// turns) and writes TRL's conversational preference columns.
func fromHH(t *Table) (*Table, error) {
	ds, err := data.Convert(t.Rows, data.Source{Path: t.Source, Format: data.FormatPreference})
	if err != nil {
		return nil, err
	}
	for i := range t.Rows {
		p := ds.Pairs[i]
		if !p.Conversational {
			return nil, fmt.Errorf("%s: row %d: chosen and rejected are not \"\\n\\nHuman:\"/\"\\n\\nAssistant:\" transcripts", p.Source, p.Row)
		}
		t.Rows[i].Fields["prompt"] = messageList(p.PromptMessages)
		t.Rows[i].Fields["chosen"] = messageList(p.ChosenMessages)
		t.Rows[i].Fields["rejected"] = messageList(p.RejectedMessages)
	}
	replaceColumns(t, []string{"prompt", "chosen", "rejected"}, []string{"prompt", "chosen", "rejected"})
	return t, nil
}

// Split divides t into train and test by a permutation seeded with seed: the rows of test are
// exactly those eval_split = frac with seed = seed holds out (data.SplitIndices); both keep file order.
func Split(t *Table, frac float64, seed uint64) (train, test *Table, err error) {
	tr, te, err := data.SplitIndices(len(t.Rows), frac, seed)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", t.Source, err)
	}
	return t.subset(tr), t.subset(te), nil
}

// sampleStream separates sample's random stream from the split's.
const sampleStream = 0x73616d706c65 // "sample"

// Sample keeps n rows chosen by a permutation seeded with seed, in file order.
func Sample(t *Table, n int, seed uint64) (*Table, error) {
	if n <= 0 || n > len(t.Rows) {
		return nil, fmt.Errorf("%s: -n %d: want 1 to %d (the file's rows)", t.Source, n, len(t.Rows))
	}
	idx := rand.New(rand.NewPCG(seed, sampleStream)).Perm(len(t.Rows))[:n]
	sort.Ints(idx)
	return t.subset(idx), nil
}

func (t *Table) subset(idx []int) *Table {
	out := &Table{Source: t.Source, Columns: t.Columns, Rows: make([]data.Row, len(idx))}
	for i, j := range idx {
		out.Rows[i] = t.Rows[j]
	}
	return out
}
