package reward

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/alignkit/alignkit/data"
)

// PairSet is a preference dataset ready for the reward model: its pairs, each pair's margin and
// accuracy bucket, and what loading skipped.
type PairSet struct {
	Source string
	Pairs  []data.Pair
	// Margins are the per-pair margins of the loss (nil when the data gives none): from the rating
	// column through the margin table, else from the margin column (0 where a row has none).
	Margins []float64
	// Buckets label each pair for the per-bucket accuracy (Llama 2 Table 28): the normalised rating,
	// else "margin_<m>" from the margin column; nil when the data has neither.
	Buckets []string
	// Identical lists the rows skipped because chosen equals rejected (file row numbers).
	Identical []int
}

// Len is the number of pairs.
func (p *PairSet) Len() int { return len(p.Pairs) }

func (p *PairSet) subset(idx []int) *PairSet {
	out := &PairSet{Source: p.Source, Identical: p.Identical}
	for _, i := range idx {
		out.Pairs = append(out.Pairs, p.Pairs[i])
		if p.Margins != nil {
			out.Margins = append(out.Margins, p.Margins[i])
		}
		if p.Buckets != nil {
			out.Buckets = append(out.Buckets, p.Buckets[i])
		}
	}
	return out
}

// first keeps the first n pairs (all when n <= 0).
func (p *PairSet) first(n int) *PairSet {
	if n <= 0 || n >= p.Len() {
		return p
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return p.subset(idx)
}

// LoadPairs reads a preference file (Parquet or JSON Lines; explicit prompt, implicit prompt, or
// hh-rlhf transcripts) with columns renaming canonical names to the file's. A row whose chosen
// equals its rejected is skipped and listed in Identical, not an error: it carries no preference.
// ratingColumn (optional) names the file column of preference ratings; table (optional) maps them
// to margins.
func LoadPairs(path string, columns map[string]string, ratingColumn string, table *MarginTable) (*PairSet, error) {
	return LoadPairsSplit(path, "", columns, ratingColumn, table)
}

// LoadPairsSplit is LoadPairs where path may also be a Hugging Face dataset name in the local hub
// cache, read from split ("" is train; see data.ReadSource).
func LoadPairsSplit(path, split string, columns map[string]string, ratingColumn string, table *MarginTable) (*PairSet, error) {
	return loadPairsSplit(context.Background(), path, split, columns, ratingColumn, table)
}

// loadPairsSplit is LoadPairsSplit, stopping when ctx ends while the file is read.
func loadPairsSplit(ctx context.Context, path, split string, columns map[string]string, ratingColumn string, table *MarginTable) (*PairSet, error) {
	rows, err := data.ReadSourceContext(ctx, path, split)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	col := func(canon string) string {
		if f, ok := columns[canon]; ok {
			return f
		}
		return canon
	}
	if ratingColumn != "" {
		if _, ok := rows[0].Fields[ratingColumn]; !ok {
			return nil, fmt.Errorf("rating_column: %s has no column %q (columns: [%s])", path, ratingColumn, strings.Join(sortedFields(rows[0].Fields), " "))
		}
	}
	set := &PairSet{Source: path}
	kept := rows[:0:0]
	for _, r := range rows {
		c, r1 := r.Fields[col("chosen")], r.Fields[col("rejected")]
		if c != nil && r1 != nil && reflect.DeepEqual(c, r1) {
			set.Identical = append(set.Identical, r.Index)
			continue
		}
		kept = append(kept, r)
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("%s: every one of its %d rows has chosen identical to rejected", path, len(rows))
	}
	ds, err := data.Convert(kept, data.Source{Path: path, Columns: columns, Format: data.FormatPreference})
	if err != nil {
		return nil, err
	}
	set.Pairs = ds.Pairs

	switch {
	case ratingColumn != "":
		set.Buckets = make([]string, len(kept))
		if table != nil {
			set.Margins = make([]float64, len(kept))
		}
		for i, r := range kept {
			v := r.Fields[ratingColumn]
			if v == nil {
				return nil, fmt.Errorf("%s: row %d: rating column %q is null", path, r.Index, ratingColumn)
			}
			k, err := NormalizeRating(v)
			if err != nil {
				return nil, fmt.Errorf("%s: row %d: column %q: %w", path, r.Index, ratingColumn, err)
			}
			set.Buckets[i] = k
			if table != nil {
				if set.Margins[i], err = table.Margin(v); err != nil {
					return nil, fmt.Errorf("%s: row %d: column %q: %w", path, r.Index, ratingColumn, err)
				}
			}
		}
	default:
		any := false
		for _, p := range set.Pairs {
			any = any || p.HasMargin
		}
		if any {
			set.Margins = make([]float64, len(set.Pairs))
			set.Buckets = make([]string, len(set.Pairs))
			for i, p := range set.Pairs {
				set.Buckets[i] = "no_margin"
				if p.HasMargin {
					set.Margins[i] = p.Margin
					set.Buckets[i] = "margin_" + strconv.FormatFloat(p.Margin, 'g', 4, 64)
				}
			}
		}
	}
	return set, nil
}

// IdenticalWarning is the one-line warning for skipped rows, "" when none were skipped.
func (p *PairSet) IdenticalWarning() string {
	n := len(p.Identical)
	if n == 0 {
		return ""
	}
	show := p.Identical
	more := ""
	if len(show) > 5 {
		show, more = show[:5], ", ..."
	}
	s := make([]string, len(show))
	for i, r := range show {
		s[i] = strconv.Itoa(r)
	}
	rows := "rows"
	if n == 1 {
		rows = "row"
	}
	return fmt.Sprintf("warning: %s: skipped %d %s whose chosen is identical to rejected (%s %s%s)", p.Source, n, rows, rows, strings.Join(s, ", "), more)
}

// bucketKey turns a bucket label into a metric-name suffix: lower-case letters, digits, '.' and
// '-', other runs as '_' ("negligibly better / unsure" -> "negligibly_better_unsure").
func bucketKey(label string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(label) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}
