// Package bpb measures a language model's bits per byte on text, as the Pile paper (Gao et al.
// 2020, section 4) reports it: the total negative log-likelihood of the text's tokens in nats,
// divided by ln 2 and by the text's total UTF-8 byte count. Dividing by bytes rather than tokens
// makes models with different tokenizers comparable. Results come overall and per value of a
// component column (the Pile's per-subset table).
//
// Every token of a text is scored, the first conditioned on BOS. A text longer than the model's
// context is scored in consecutive windows of max_position_embeddings tokens that share one token
// (lm-evaluation-harness's rolling windows with a context of 1): each token is predicted exactly
// once, from at most a context's worth of preceding tokens.
package bpb

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/infer"
)

// Options say which columns to read.
type Options struct {
	TextColumn      string // default "text"
	ComponentColumn string // "" for no per-component breakdown
}

// Score is the NLL total over a set of texts.
type Score struct {
	Rows   int     `json:"rows"`
	Tokens int64   `json:"tokens"` // tokens scored (BOS not counted)
	Bytes  int64   `json:"bytes"`  // UTF-8 bytes of the texts
	NLL    float64 `json:"nll_nats"`
	BPB    float64 `json:"bits_per_byte"`
}

// Component is the Score of the rows sharing one value of the component column.
type Component struct {
	Name string `json:"name"`
	Score
}

// Result is the whole file's Score and, with a component column, one per value, sorted by name.
type Result struct {
	Overall    Score       `json:"overall"`
	Components []Component `json:"components,omitempty"`
}

func (s *Score) add(nll float64, tokens, bytes int) {
	s.Rows++
	s.NLL += nll
	s.Tokens += int64(tokens)
	s.Bytes += int64(bytes)
}

func (s *Score) finish() {
	if s.Bytes > 0 {
		s.BPB = s.NLL / math.Ln2 / float64(s.Bytes)
	}
}

// Evaluate scores the text column of rows with m.
func Evaluate(m *checkpoint.Model, rows []data.Row, opt Options) (*Result, error) {
	if opt.TextColumn == "" {
		opt.TextColumn = "text"
	}
	if len(rows) == 0 {
		return nil, errors.New("no rows to score")
	}
	bos := m.Tok.BOS()
	if bos < 0 {
		return nil, fmt.Errorf("%s: the tokenizer has no BOS token to condition a text's first token on", m.Source)
	}
	eng, err := infer.NewAdapted(m.Weights, m.Adapter)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	comps := map[string]*Score{}
	for _, row := range rows {
		text, err := stringField(row, opt.TextColumn)
		if err != nil {
			return nil, err
		}
		var comp string
		if opt.ComponentColumn != "" {
			if comp, err = componentField(row, opt.ComponentColumn); err != nil {
				return nil, err
			}
		}
		ids := append([]int32{bos}, m.Tok.Encode(text, false)...)
		nll, err := NLL(eng, ids)
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", row.Source, row.Index, err)
		}
		res.Overall.add(nll, len(ids)-1, len(text))
		if opt.ComponentColumn != "" {
			if comps[comp] == nil {
				comps[comp] = &Score{}
			}
			comps[comp].add(nll, len(ids)-1, len(text))
		}
	}
	res.Overall.finish()
	for name, s := range comps {
		s.finish()
		res.Components = append(res.Components, Component{Name: name, Score: *s})
	}
	sort.Slice(res.Components, func(a, b int) bool { return res.Components[a].Name < res.Components[b].Name })
	return res, nil
}

// NLL is -Σ log p(ids[i] | ids[:i]) over i >= 1 in nats, in windows of the engine's context that
// overlap by one token.
func NLL(eng *infer.Engine, ids []int32) (float64, error) {
	ctx := eng.Config().MaxPositionEmbeddings
	if ctx < 2 {
		return 0, fmt.Errorf("max_position_embeddings %d leaves no room to score a token", ctx)
	}
	var nll float64
	for start := 0; start < len(ids)-1; start += ctx - 1 {
		win := ids[start:min(len(ids), start+ctx)]
		logits, err := eng.Forward(win, nil) // (len(win), V)
		if err != nil {
			return 0, err
		}
		for i := 1; i < len(win); i++ {
			nll -= logProb(logits[i-1], win[i])
		}
	}
	return nll, nil
}

// logProb is log softmax(logits)[id], in float64 (infer.LogSoftmax's arithmetic, for one entry).
func logProb(logits []float32, id int32) float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v) - m)
	}
	return float64(logits[id]) - m - math.Log(s)
}

func stringField(row data.Row, col string) (string, error) {
	v, ok := row.Fields[col]
	switch {
	case !ok:
		return "", fmt.Errorf("%s: row %d: missing column %q", row.Source, row.Index, col)
	case v == nil:
		return "", fmt.Errorf("%s: row %d: column %q is null", row.Source, row.Index, col)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: row %d: column %q: want string, got %T", row.Source, row.Index, col, v)
	}
	return s, nil
}

// componentField reads a component value: a string, integer or boolean (a float would split rows
// on rounding noise).
func componentField(row data.Row, col string) (string, error) {
	v, ok := row.Fields[col]
	switch t := v.(type) {
	case string:
		return t, nil
	case int64, bool:
		return fmt.Sprint(t), nil
	case nil:
		if !ok {
			return "", fmt.Errorf("%s: row %d: missing column %q", row.Source, row.Index, col)
		}
		return "", fmt.Errorf("%s: row %d: column %q is null", row.Source, row.Index, col)
	default:
		return "", fmt.Errorf("%s: row %d: column %q: want a string, integer or boolean component, got %T", row.Source, row.Index, col, v)
	}
}
