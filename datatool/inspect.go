package datatool

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// Jobs are the trainers inspect reports on, and the formats each reads.
var jobs = []struct {
	name       string
	preference bool
}{{"sft", false}, {"reward", true}, {"dpo", true}}

// JobFit says whether a job can read the data and through which columns.
type JobFit struct {
	Job    string            `json:"job"`
	OK     bool              `json:"ok"`
	Format data.Format       `json:"format,omitempty"`
	Uses   map[string]string `json:"columns,omitempty"` // canonical column -> the file's column ("(implicit)" for hh-rlhf's shared prompt)
	Why    string            `json:"why,omitempty"`     // when not OK
}

// Lengths summarises token counts.
type Lengths struct {
	N      int     `json:"n"`
	Min    int     `json:"min"`
	Median int     `json:"median"`
	P95    int     `json:"p95"`
	Max    int     `json:"max"`
	Mean   float64 `json:"mean"`
}

func lengths(xs []int) Lengths {
	if len(xs) == 0 {
		return Lengths{}
	}
	s := append([]int(nil), xs...)
	sort.Ints(s)
	var sum float64
	for _, x := range s {
		sum += float64(x)
	}
	// Nearest-rank percentiles.
	rank := func(p float64) int { return s[max(0, int(math.Ceil(p*float64(len(s))))-1)] }
	return Lengths{N: len(s), Min: s[0], Median: rank(0.5), P95: rank(0.95), Max: s[len(s)-1], Mean: sum / float64(len(s))}
}

// RowNote is what a job would do to one row, and why.
type RowNote struct {
	Source string `json:"source"`
	Row    int    `json:"row"`
	Action string `json:"action"` // "drop", "truncate" or "unusable"
	Why    string `json:"why"`
}

// TokenReport is inspect's --model part: token lengths and the rows a job would drop or truncate.
type TokenReport struct {
	Model     string    `json:"model"`
	MaxLength int       `json:"max_length"`
	Job       string    `json:"job"`
	Lengths   Lengths   `json:"lengths"`                  // SFT examples, or preference rows (prompt+answer, two per pair)
	Prompts   *Lengths  `json:"prompt_lengths,omitempty"` // preference data
	Dropped   int       `json:"dropped"`
	Truncated int       `json:"truncated"`
	Unusable  int       `json:"unusable"`
	Notes     []RowNote `json:"rows"`
}

// Report is `alignkit data inspect`.
type Report struct {
	Source string       `json:"source"`
	Rows   int          `json:"rows"`
	Schema []Field      `json:"schema"`
	Jobs   []JobFit     `json:"jobs"`
	Tokens *TokenReport `json:"tokens,omitempty"`
}

// InspectOptions are inspect's settings.
type InspectOptions struct {
	Columns      map[string]string // as the trainers' columns: key
	Tok          *tokenizer.Tokenizer
	ModelName    string
	ChatTemplate string // as chat_template; "" uses the tokenizer's
	MaxLength    int    // default data.DefaultMaxLength
}

// Inspect reads t's schema, which jobs can read it, and with a tokenizer the token lengths and
// what max_length would cost.
func Inspect(t *Table, opt InspectOptions) (*Report, error) {
	schema, err := t.Schema()
	if err != nil {
		return nil, err
	}
	rep := &Report{Source: t.Source, Rows: len(t.Rows), Schema: schema}
	ds, convErr := data.Convert(t.Rows, data.Source{Path: t.Source, Columns: opt.Columns})
	for _, j := range jobs {
		fit := JobFit{Job: j.name}
		switch {
		case convErr != nil:
			fit.Why = convErr.Error()
		case j.preference != (ds.Format == data.FormatPreference):
			fit.Format = ds.Format
			if j.preference {
				fit.Why = fmt.Sprintf("%s data: %s reads preference pairs (chosen and rejected columns)", ds.Format, j.name)
			} else {
				fit.Why = "preference data: sft reads text, messages, prompt/completion or alpaca rows"
			}
		default:
			fit.OK, fit.Format, fit.Uses = true, ds.Format, uses(ds, t, opt.Columns)
		}
		rep.Jobs = append(rep.Jobs, fit)
	}
	if opt.Tok != nil && convErr == nil {
		if rep.Tokens, err = tokenReport(ds, opt); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// uses lists the columns a format reads, under their file names.
func uses(ds *data.Dataset, t *Table, m map[string]string) map[string]string {
	file := func(c string) string {
		if f, ok := m[c]; ok {
			return f
		}
		return c
	}
	has := map[string]bool{}
	for _, c := range t.Columns {
		has[c] = true
	}
	var canon []string
	switch ds.Format {
	case data.FormatText:
		canon = []string{"text"}
	case data.FormatConversation:
		canon = []string{"messages", "trained_turn"}
	case data.FormatPromptCompletion:
		canon = []string{"prompt", "completion"}
	case data.FormatAlpaca:
		canon = []string{"instruction", "input", "output"}
	case data.FormatPreference:
		canon = []string{"prompt", "chosen", "rejected", "margin", "score_chosen", "score_rejected", "rating"}
	}
	out := map[string]string{}
	for _, c := range canon {
		if has[file(c)] {
			out[c] = file(c)
		}
	}
	if ds.Format == data.FormatPreference && out["prompt"] == "" {
		out["prompt"] = "(implicit: the shared start of chosen and rejected)"
	}
	// alpaca rows are loaded as prompt/completion: say what the file held.
	return out
}

func tokenReport(ds *data.Dataset, opt InspectOptions) (*TokenReport, error) {
	maxLen := opt.MaxLength
	if maxLen == 0 {
		maxLen = data.DefaultMaxLength
	}
	if maxLen < 2 {
		return nil, fmt.Errorf("--max-length: must be >= 2, got %d", maxLen)
	}
	tk, err := lm.DataTokenizer(opt.Tok, opt.ChatTemplate)
	if err != nil {
		return nil, err
	}
	r := &TokenReport{Model: opt.ModelName, MaxLength: maxLen}
	note := func(src string, row int, action, why string, args ...any) {
		r.Notes = append(r.Notes, RowNote{Source: src, Row: row, Action: action, Why: fmt.Sprintf(why, args...)})
		switch action {
		case "drop":
			r.Dropped++
		case "truncate":
			r.Truncated++
		case "unusable":
			r.Unusable++
		}
	}
	var lens []int
	if ds.Format != data.FormatPreference {
		r.Job = "sft"
		// The batcher's rules (data.NewBatcher with DropUntrained, as every trainer sets it): a longer
		// example keeps its first max_length tokens; one left with no trained target is dropped.
		for i := range ds.Records {
			rec := &ds.Records[i]
			ex, err := tk.Example(rec, "")
			if err != nil {
				note(rec.Source, rec.Row, "unusable", "%s", trimRowPrefix(err.Error(), rec.Source, rec.Row))
				continue
			}
			lens = append(lens, len(ex.IDs))
			if len(ex.IDs) <= maxLen {
				if ex.Trained() == 0 {
					note(ex.Source, ex.Row, "drop", "no token carries loss")
				}
				continue
			}
			first := -1
			for j := 1; j < len(ex.Mask); j++ {
				if ex.Mask[j] {
					first = j
					break
				}
			}
			if first < 0 || first >= maxLen {
				note(ex.Source, ex.Row, "drop", "%d tokens; the first trained token is at %d, beyond max_length %d, so nothing is left to train on", len(ex.IDs), first, maxLen)
			} else {
				note(ex.Source, ex.Row, "truncate", "%d tokens, cut to max_length %d (%d tokens lost)", len(ex.IDs), maxLen, len(ex.IDs)-maxLen)
			}
		}
		r.Lengths = lengths(lens)
		return r, nil
	}
	r.Job = "dpo/reward"
	// data.NewPairBatcher's rules: a prompt longer than max_length-1 is cut from the left; an answer
	// that does not fit after its prompt is cut from the right.
	var prompts []int
	for i := range ds.Pairs {
		p := &ds.Pairs[i]
		ex, err := tk.PairExample(p)
		if err != nil {
			note(p.Source, p.Row, "unusable", "%s", trimRowPrefix(err.Error(), p.Source, p.Row))
			continue
		}
		prompts = append(prompts, len(ex.Prompt))
		lens = append(lens, len(ex.Prompt)+len(ex.Chosen), len(ex.Prompt)+len(ex.Rejected))
		var why []string
		pl := len(ex.Prompt)
		if pl > maxLen-1 {
			why = append(why, fmt.Sprintf("prompt of %d tokens cut from the left to %d", pl, maxLen-1))
			pl = maxLen - 1
		}
		for _, a := range []struct {
			name string
			n    int
		}{{"chosen", len(ex.Chosen)}, {"rejected", len(ex.Rejected)}} {
			if over := pl + a.n - maxLen; over > 0 {
				why = append(why, fmt.Sprintf("%s answer of %d tokens cut by %d", a.name, a.n, over))
			}
		}
		if len(why) > 0 {
			note(p.Source, p.Row, "truncate", "%s (max_length %d)", strings.Join(why, "; "), maxLen)
		}
	}
	r.Lengths = lengths(lens)
	pls := lengths(prompts)
	r.Prompts = &pls
	return r, nil
}

// trimRowPrefix drops the "file: row N: " that data's errors start with: a note already names both.
func trimRowPrefix(msg, src string, row int) string {
	return strings.TrimPrefix(msg, fmt.Sprintf("%s: row %d: ", src, row))
}

// Print writes the report for a reader.
func (r *Report) Print(w io.Writer, maxNotes int) {
	fmt.Fprintf(w, "%s: %d rows\n", r.Source, r.Rows)
	fmt.Fprintln(w, "schema:")
	for _, f := range r.Schema {
		null := ""
		if f.Type.Nullable {
			null = " (nullable)"
		}
		fmt.Fprintf(w, "  %s: %s%s\n", f.Name, f.Type, null)
	}
	fmt.Fprintln(w, "jobs:")
	for _, j := range r.Jobs {
		if !j.OK {
			fmt.Fprintf(w, "  %s: no: %s\n", j.Job, j.Why)
			continue
		}
		keys := make([]string, 0, len(j.Uses))
		for k := range j.Uses {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + j.Uses[k]
		}
		fmt.Fprintf(w, "  %s: yes, as %s (%s)\n", j.Job, j.Format, strings.Join(parts, ", "))
	}
	if t := r.Tokens; t != nil {
		l := t.Lengths
		fmt.Fprintf(w, "tokens (%s, %s rows): n %d, min %d, mean %.1f, median %d, p95 %d, max %d\n", t.Model, t.Job, l.N, l.Min, l.Mean, l.Median, l.P95, l.Max)
		if p := t.Prompts; p != nil {
			fmt.Fprintf(w, "prompt tokens: min %d, mean %.1f, median %d, p95 %d, max %d\n", p.Min, p.Mean, p.Median, p.P95, p.Max)
		}
		fmt.Fprintf(w, "at max_length %d: %d dropped, %d truncated, %d unusable\n", t.MaxLength, t.Dropped, t.Truncated, t.Unusable)
		for i, n := range t.Notes {
			if i == maxNotes {
				fmt.Fprintf(w, "  ... %d more (--json lists all)\n", len(t.Notes)-maxNotes)
				break
			}
			fmt.Fprintf(w, "  row %d: %s: %s\n", n.Row, n.Action, n.Why)
		}
	}
}
