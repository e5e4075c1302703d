package datatool

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/alignkit/alignkit/internal/atomicfile"
)

// Removed is one row dedup or decontaminate dropped, and why; the side file holds one per line.
type Removed struct {
	Source string `json:"source"`
	Row    int    `json:"row"`
	Reason string `json:"reason"`
	// Of is the row it duplicates (dedup) or overlaps (decontaminate), in Against's file.
	Of      int     `json:"of"`
	Against string  `json:"against"`
	Score   float64 `json:"score,omitempty"` // near duplicates: the Jaccard similarity of their shingle sets
	NGram   string  `json:"ngram,omitempty"` // decontaminate: the shared n-gram
}

// rowText is the text a row is compared by: rowParts joined by "\n".
func rowText(fields map[string]any, columns []string) string {
	return strings.Join(rowParts(fields, columns), "\n")
}

// rowParts are every string in the given columns, nested ones included (message contents, ...), in
// column order.
func rowParts(fields map[string]any, columns []string) []string {
	var parts []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			parts = append(parts, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				// A message's role is structure, not text: two conversations differing only in who
				// speaks would otherwise look alike anyway, and roles would be n-grams of their own.
				if k != "role" {
					walk(x[k])
				}
			}
		}
	}
	for _, c := range columns {
		walk(fields[c])
	}
	return parts
}

// words is the normalised word sequence n-grams are taken over: lower case, split at anything
// that is not a letter or digit (GPT-3's decontamination normalisation, Dolma's tokenisation).
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// shingles are the hashed word n-grams of ws; a text of fewer than n words is one shingle.
func shingles(ws []string, n int) map[uint64]bool {
	out := map[uint64]bool{}
	if len(ws) == 0 {
		return out
	}
	if len(ws) < n {
		out[hashWords(ws)] = true
		return out
	}
	for i := 0; i+n <= len(ws); i++ {
		out[hashWords(ws[i:i+n])] = true
	}
	return out
}

func hashWords(ws []string) uint64 {
	h := fnv.New64a()
	for i, w := range ws {
		if i > 0 {
			h.Write([]byte{' '})
		}
		h.Write([]byte(w))
	}
	return h.Sum64()
}

// splitmix64 is a bijective 64-bit mixer: the i-th MinHash function is splitmix64(x ^ seed_i).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// DedupOptions configure Dedup.
type DedupOptions struct {
	Columns []string // the columns compared (default: all)
	// Near turns on near-duplicate detection: MinHash signatures of word NGram shingles,
	// candidates from LSH over Bands bands of Rows rows each, confirmed by the exact Jaccard
	// similarity of the shingle sets >= Threshold.
	Near      bool
	NGram     int     // default 5
	Bands     int     // default 20
	Rows      int     // default 6: with 20 bands, pairs at Jaccard 0.8 become candidates with p > 0.99
	Threshold float64 // default 0.8
	Seed      uint64
}

func (o *DedupOptions) defaults() error {
	if o.NGram == 0 {
		o.NGram = 5
	}
	if o.Bands == 0 {
		o.Bands = 20
	}
	if o.Rows == 0 {
		o.Rows = 6
	}
	if o.Threshold == 0 {
		o.Threshold = 0.8
	}
	switch {
	case o.NGram < 1:
		return fmt.Errorf("--ngram: must be >= 1, got %d", o.NGram)
	case o.Bands < 1 || o.Rows < 1:
		return fmt.Errorf("--bands and --rows: must be >= 1, got %d and %d", o.Bands, o.Rows)
	case !(o.Threshold > 0 && o.Threshold <= 1):
		return fmt.Errorf("--threshold: must be in (0, 1], got %g", o.Threshold)
	}
	return nil
}

func (t *Table) checkColumns(cols []string) ([]string, error) {
	if len(cols) == 0 {
		return t.Columns, nil
	}
	for _, c := range cols {
		if !slices.Contains(t.Columns, c) {
			return nil, fmt.Errorf("%s: no column %q (columns: %v)", t.Source, c, t.Columns)
		}
	}
	return cols, nil
}

// Dedup keeps the first row of every group of exact duplicates (identical text) and, with Near,
// drops each row whose shingle set is within Threshold Jaccard of an earlier kept row. It returns
// the kept rows and what it removed.
func Dedup(t *Table, opt DedupOptions) (*Table, []Removed, error) {
	if err := opt.defaults(); err != nil {
		return nil, nil, err
	}
	cols, err := t.checkColumns(opt.Columns)
	if err != nil {
		return nil, nil, err
	}
	numHashes := opt.Bands * opt.Rows
	seeds := make([]uint64, numHashes)
	for i := range seeds {
		seeds[i] = splitmix64(opt.Seed*uint64(numHashes) + uint64(i) + 1)
	}
	type kept struct {
		row int
		sh  map[uint64]bool
	}
	exact := map[string]int{}     // text -> first row
	buckets := map[uint64][]int{} // band hash -> indices into keeps
	var keeps []kept
	var keepIdx []int
	var removed []Removed
	sig := make([]uint64, numHashes)
	for i, r := range t.Rows {
		parts := rowParts(r.Fields, cols)
		text := strings.Join(parts, "\n")
		// The exact key keeps the column boundaries ("a\nb"+"c" is not "a"+"b\nc").
		key := strings.Join(parts, "\x00")
		if j, ok := exact[key]; ok {
			removed = append(removed, Removed{Source: r.Source, Row: r.Index, Reason: "exact duplicate", Of: t.Rows[j].Index, Against: t.Rows[j].Source})
			continue
		}
		exact[key] = i
		if !opt.Near {
			keepIdx = append(keepIdx, i)
			continue
		}
		sh := shingles(words(text), opt.NGram)
		for k := range sig {
			sig[k] = ^uint64(0)
		}
		for x := range sh {
			for k, s := range seeds {
				if h := splitmix64(x ^ s); h < sig[k] {
					sig[k] = h
				}
			}
		}
		bandKeys := make([]uint64, opt.Bands)
		for b := range bandKeys {
			h := fnv.New64a()
			var buf [8]byte
			for _, v := range sig[b*opt.Rows : (b+1)*opt.Rows] {
				for j := range buf {
					buf[j] = byte(v >> (8 * j))
				}
				h.Write(buf[:])
			}
			bandKeys[b] = h.Sum64() ^ uint64(b)*0x9e3779b97f4a7c15
		}
		best, bestJ := -1, 0.0
		seen := map[int]bool{}
		for _, key := range bandKeys {
			for _, c := range buckets[key] {
				if seen[c] || len(sh) == 0 {
					continue
				}
				seen[c] = true
				if j := jaccard(sh, keeps[c].sh); j >= opt.Threshold && (best < 0 || keeps[c].row < keeps[best].row) {
					best, bestJ = c, j
				}
			}
		}
		if best >= 0 {
			o := t.Rows[keeps[best].row]
			removed = append(removed, Removed{Source: r.Source, Row: r.Index, Reason: fmt.Sprintf("near duplicate (Jaccard %.3f of word %d-gram shingles >= %g)", bestJ, opt.NGram, opt.Threshold),
				Of: o.Index, Against: o.Source, Score: bestJ})
			continue
		}
		for _, key := range bandKeys {
			buckets[key] = append(buckets[key], len(keeps))
		}
		keeps = append(keeps, kept{row: i, sh: sh})
		keepIdx = append(keepIdx, i)
	}
	return t.subset(keepIdx), removed, nil
}

func jaccard(a, b map[uint64]bool) float64 {
	if len(a) > len(b) {
		a, b = b, a
	}
	inter := 0
	for x := range a {
		if b[x] {
			inter++
		}
	}
	union := len(a) + len(b) - inter
	if union == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}

// DecontaminateOptions configure Decontaminate.
type DecontaminateOptions struct {
	Columns     []string // training columns compared (default: all)
	EvalColumns []string // evaluation columns compared (default: all)
	NGram       int      // default 13, GPT-3's
}

// Decontaminate drops every training row that shares a word n-gram with any evaluation row (GPT-3's
// 13-gram overlap test, Brown et al. 2020 appendix C; Dolma's decontamination by n-gram overlap).
// A text of fewer than n words counts as one n-gram of its own length, so a short training row is
// dropped only when an evaluation row is exactly as short and equal in words.
func Decontaminate(train, eval *Table, opt DecontaminateOptions) (*Table, []Removed, error) {
	if opt.NGram == 0 {
		opt.NGram = 13
	}
	if opt.NGram < 1 {
		return nil, nil, fmt.Errorf("--ngram: must be >= 1, got %d", opt.NGram)
	}
	cols, err := train.checkColumns(opt.Columns)
	if err != nil {
		return nil, nil, err
	}
	ecols, err := eval.checkColumns(opt.EvalColumns)
	if err != nil {
		return nil, nil, err
	}
	type origin struct {
		row  int
		gram string
	}
	index := map[uint64]origin{}
	for i, r := range eval.Rows {
		ws := words(rowText(r.Fields, ecols))
		each(ws, opt.NGram, func(h uint64, g []string) {
			if _, ok := index[h]; !ok {
				index[h] = origin{i, strings.Join(g, " ")}
			}
		})
	}
	var keep []int
	var removed []Removed
	for i, r := range train.Rows {
		ws := words(rowText(r.Fields, cols))
		var hit *origin
		each(ws, opt.NGram, func(h uint64, g []string) {
			if o, ok := index[h]; ok && hit == nil && o.gram == strings.Join(g, " ") {
				hit = &o
			}
		})
		if hit == nil {
			keep = append(keep, i)
			continue
		}
		e := eval.Rows[hit.row]
		removed = append(removed, Removed{Source: r.Source, Row: r.Index, Reason: fmt.Sprintf("shares a word %d-gram with the evaluation data", opt.NGram),
			Of: e.Index, Against: e.Source, NGram: hit.gram})
	}
	return train.subset(keep), removed, nil
}

// each calls f with every n-gram of ws (the whole of ws when shorter) and its hash.
func each(ws []string, n int, f func(uint64, []string)) {
	if len(ws) == 0 {
		return
	}
	if len(ws) < n {
		f(hashWords(ws), ws)
		return
	}
	for i := 0; i+n <= len(ws); i++ {
		f(hashWords(ws[i:i+n]), ws[i:i+n])
	}
}

// WriteRemoved writes the side file of removed rows, one JSON object per line, atomically.
func WriteRemoved(path string, removed []Removed) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, r := range removed {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// RemovedPath is the side file's default name beside out: out without its extension, plus
// ".removed.jsonl".
func RemovedPath(out string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + ".removed.jsonl"
}
