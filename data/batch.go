package data

import (
	"fmt"
	"slices"
	"sort"
)

// Batch is one training step's input, every array row-major with shape
// (B, T). Rows are right-padded with the pad id.
type Batch struct {
	B, T int
	// Tokens are the input ids. (B*T)
	Tokens []int32
	// Targets are the next-token targets: Tokens shifted left within each
	// example; -1 where there is none (an example's last token, padding).
	// (B*T)
	Targets []int32
	// Weights is 1 where the target carries loss, else 0. (B*T)
	Weights []float32
	// Positions are RoPE positions, restarting at 0 for each packed example.
	// (B*T)
	Positions []int32
	// Segments number the examples within a row 1..n; 0 is padding.
	// Attention is allowed only between equal segment ids
	// (block-diagonal causal). (B*T)
	Segments []int32
	// LastIndex is the index in its row of each row's last non-pad token,
	// where a reward head reads the score. Packed rows hold several
	// examples, so there it is only the end of the last one. (B)
	LastIndex []int32
	// Rows are the source rows of the batch's examples, row-major in
	// placement order.
	Rows []int
}

// TrainedTokens is the number of targets that carry loss.
func (b *Batch) TrainedTokens() int {
	n := 0
	for _, w := range b.Weights {
		if w != 0 {
			n++
		}
	}
	return n
}

// BatchConfig configures a Batcher.
type BatchConfig struct {
	// BatchSize is the number of rows per batch: examples, or packed rows
	// when Packing.
	BatchSize int
	// MaxLength is the longest row. Longer examples are truncated to it
	// (keeping their start) and counted in Stats.
	MaxLength int
	// PadID fills padding. It must not be the EOS id: padding is never EOS.
	PadID int32
	// Packing fills rows with whole examples (best-fit decreasing) instead
	// of one example per row.
	Packing bool
	// Buckets are the allowed row lengths T, ascending; a batch takes the
	// smallest that fits, so that few graph shapes occur. Empty means
	// powers of two from 16 below MaxLength, then MaxLength.
	Buckets []int
	// DropUntrained drops (and counts) examples that truncation leaves
	// with no target carrying loss. Off, such an example is an error.
	DropUntrained bool
}

// Stats describes what a batcher did to its examples.
type Stats struct {
	Examples        int // examples kept
	Dropped         int // examples dropped: truncation left no target (DropUntrained)
	Truncated       int // examples longer than MaxLength, cut
	TruncatedTokens int // tokens removed by that
	Tokens          int // tokens kept
	TrainedTokens   int // targets carrying loss kept
	RowsPerEpoch    int // rows (packed rows, or examples)
	BatchesPerEpoch int
	PadTokens       int // padding tokens in one epoch, batches taken in dataset order
}

func (s Stats) String() string {
	return fmt.Sprintf("%d examples (%d dropped, %d truncated losing %d tokens), %d tokens, %d trained, %d rows in %d batches per epoch, %d pad tokens per epoch",
		s.Examples, s.Dropped, s.Truncated, s.TruncatedTokens, s.Tokens, s.TrainedTokens, s.RowsPerEpoch, s.BatchesPerEpoch, s.PadTokens)
}

// unit is one example placed in a row: its ids and target mask.
type unit struct {
	ids  []int32
	mask []bool
	row  int
	src  string
}

// shaper holds what padded and packed batchers share: rows of units and
// the bucketed shapes. The epoch order is the training loop's (train.Run
// shuffles example indices), so a shaper only collates rows by index.
type shaper struct {
	batchSize int
	maxLength int
	pad       int32
	buckets   []int
	rows      [][]unit
}

func checkShape(batchSize, maxLength int, pad, eos int32, buckets []int) ([]int, error) {
	if batchSize < 1 {
		return nil, fmt.Errorf("batch size %d: want at least 1", batchSize)
	}
	if maxLength < 2 {
		return nil, fmt.Errorf("max length %d: want at least 2", maxLength)
	}
	if pad == eos {
		return nil, fmt.Errorf("pad id %d is the EOS id: padding must not be EOS; choose another pad id (e.g. unk)", pad)
	}
	if pad < 0 {
		return nil, fmt.Errorf("pad id %d: want a token id >= 0", pad)
	}
	return makeBuckets(buckets, maxLength)
}

// makeBuckets validates or builds the list of row lengths.
func makeBuckets(b []int, maxLength int) ([]int, error) {
	if len(b) == 0 {
		for t := 16; t < maxLength; t *= 2 {
			b = append(b, t)
		}
		return append(b, maxLength), nil
	}
	out := slices.Clone(b)
	for i, t := range out {
		if t < 1 || (i > 0 && t <= out[i-1]) {
			return nil, fmt.Errorf("buckets %v: want ascending positive lengths", b)
		}
	}
	if out[len(out)-1] < maxLength {
		out = append(out, maxLength)
	}
	return out, nil
}

func (s *shaper) numBatches() int {
	return (len(s.rows) + s.batchSize - 1) / s.batchSize
}

func rowLen(row []unit) int {
	n := 0
	for _, u := range row {
		n += len(u.ids)
	}
	return n
}

func (s *shaper) bucket(n int) int {
	i := sort.SearchInts(s.buckets, n)
	return s.buckets[i] // n <= maxLength <= the last bucket
}

// pick returns the rows at idx, refusing an out-of-range index.
func (s *shaper) pick(idx []int) ([][]unit, error) {
	if len(idx) == 0 {
		return nil, fmt.Errorf("no rows to collate")
	}
	rows := make([][]unit, len(idx))
	for i, r := range idx {
		if r < 0 || r >= len(s.rows) {
			return nil, fmt.Errorf("row %d: want 0 <= row < %d", r, len(s.rows))
		}
		rows[i] = s.rows[r]
	}
	return rows, nil
}

// fill lays rows out as a Batch of T = the smallest bucket that fits.
func (s *shaper) fill(rows [][]unit) (*Batch, error) {
	longest := 0
	for _, r := range rows {
		longest = max(longest, rowLen(r))
	}
	B, T := len(rows), s.bucket(longest)
	b := &Batch{
		B: B, T: T,
		Tokens:    make([]int32, B*T),
		Targets:   make([]int32, B*T),
		Weights:   make([]float32, B*T),
		Positions: make([]int32, B*T),
		Segments:  make([]int32, B*T),
		LastIndex: make([]int32, B),
	}
	for r, row := range rows {
		off, pos := r*T, 0
		for si, u := range row {
			n := len(u.ids)
			for j := 0; j < n; j++ {
				k := off + pos + j
				b.Tokens[k] = u.ids[j]
				b.Positions[k] = int32(j)
				b.Segments[k] = int32(si + 1)
				b.Targets[k] = -1
				if j+1 < n {
					b.Targets[k] = u.ids[j+1]
					if u.mask[j+1] {
						b.Weights[k] = 1
					}
				}
			}
			pos += n
			b.Rows = append(b.Rows, u.row)
		}
		b.LastIndex[r] = int32(pos - 1)
		for k := off + pos; k < off+T; k++ {
			b.Tokens[k] = s.pad
			b.Targets[k] = -1
		}
	}
	if b.TrainedTokens() == 0 {
		return nil, fmt.Errorf("batch of rows %v: no target carries loss", b.Rows)
	}
	return b, nil
}

// padTokens is the padding of one epoch whose batches take the rows in
// dataset order. split says that each unit of a row is a batch row of its
// own (a pair's chosen and rejected rows).
func (s *shaper) padTokens(split bool) int {
	pad := 0
	for lo := 0; lo < len(s.rows); lo += s.batchSize {
		longest, used, n := 0, 0, 0
		add := func(l int) { longest, used, n = max(longest, l), used+l, n+1 }
		for _, row := range s.rows[lo:min(lo+s.batchSize, len(s.rows))] {
			if !split {
				add(rowLen(row))
				continue
			}
			for _, u := range row {
				add(len(u.ids))
			}
		}
		pad += n*s.bucket(longest) - used
	}
	return pad
}

// Batcher cuts examples into padded or packed batches. It is deterministic:
// the same row indices give the same batch on every call and every run.
type Batcher struct {
	shaper
	stats Stats
}

// NewBatcher truncates examples to cfg.MaxLength, packs them when asked, and
// prepares the epochs. eos is the tokenizer's EOS id, which the pad id must
// not be. The batcher keeps references to the examples' slices.
func NewBatcher(examples []Example, eos int32, cfg BatchConfig) (*Batcher, error) {
	buckets, err := checkShape(cfg.BatchSize, cfg.MaxLength, cfg.PadID, eos, cfg.Buckets)
	if err != nil {
		return nil, err
	}
	b := &Batcher{shaper: shaper{batchSize: cfg.BatchSize, maxLength: cfg.MaxLength, pad: cfg.PadID, buckets: buckets}}
	units := make([]unit, 0, len(examples))
	for i := range examples {
		ex := &examples[i]
		if len(ex.Mask) != len(ex.IDs) {
			return nil, rowError(ex.Source, ex.Row, "example has %d ids but %d mask entries", len(ex.IDs), len(ex.Mask))
		}
		u := unit{ids: ex.IDs, mask: ex.Mask, row: ex.Row, src: ex.Source}
		if len(u.ids) > cfg.MaxLength {
			b.stats.Truncated++
			b.stats.TruncatedTokens += len(u.ids) - cfg.MaxLength
			u.ids, u.mask = u.ids[:cfg.MaxLength], u.mask[:cfg.MaxLength]
		}
		trained := 0
		for _, m := range u.mask[1:] {
			if m {
				trained++
			}
		}
		if trained == 0 {
			if cfg.DropUntrained {
				b.stats.Dropped++
				continue
			}
			if len(ex.IDs) > cfg.MaxLength {
				return nil, rowError(ex.Source, ex.Row, "no token carries loss after truncation to max_length %d (the example has %d tokens); raise max_length or drop such rows", cfg.MaxLength, len(ex.IDs))
			}
			return nil, rowError(ex.Source, ex.Row, "no token carries loss")
		}
		b.stats.Tokens += len(u.ids)
		b.stats.TrainedTokens += trained
		units = append(units, u)
	}
	if len(units) == 0 {
		return nil, fmt.Errorf("no examples to batch")
	}
	b.stats.Examples = len(units)
	if cfg.Packing {
		b.rows = packBFD(units, cfg.MaxLength)
	} else {
		b.rows = make([][]unit, len(units))
		for i := range units {
			b.rows[i] = units[i : i+1 : i+1]
		}
	}
	b.stats.RowsPerEpoch = len(b.rows)
	b.stats.BatchesPerEpoch = b.numBatches()
	b.stats.PadTokens = b.padTokens(false)
	return b, nil
}

// packBFD packs units into rows of at most capacity tokens, best-fit
// decreasing: longest first (ties in dataset order), each into the fullest
// row that still has room, oldest row first among equals.
func packBFD(units []unit, capacity int) [][]unit {
	idx := make([]int, len(units))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return len(units[idx[a]].ids) > len(units[idx[b]].ids) })
	var rows [][]unit
	byRoom := make([][]int, capacity+1) // free room -> rows with that much, oldest first
	for _, i := range idx {
		l := len(units[i].ids)
		r := -1
		for room := l; room <= capacity; room++ {
			if len(byRoom[room]) > 0 {
				r = byRoom[room][0]
				byRoom[room] = byRoom[room][1:]
				break
			}
		}
		if r < 0 {
			r = len(rows)
			rows = append(rows, nil)
		}
		rows[r] = append(rows[r], units[i])
		room := capacity - rowLen(rows[r])
		byRoom[room] = insertSorted(byRoom[room], r)
	}
	return rows
}

// insertSorted keeps a room list ordered by row index (= creation order).
func insertSorted(s []int, v int) []int {
	i := sort.SearchInts(s, v)
	s = append(s, 0)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

// Stats reports truncation, dropping and padding.
func (b *Batcher) Stats() Stats { return b.stats }

// NumBatches is the number of batches per epoch.
func (b *Batcher) NumBatches() int { return b.numBatches() }

// NumRows is the number of rows an epoch holds: one per example, or one per packed bin.
func (b *Batcher) NumRows() int { return len(b.rows) }

// Rows collates the given rows (indices in 0..NumRows()-1, in the order given) into one batch
// padded to its length bucket. The training loop owns the shuffle and hands row indices here.
func (b *Batcher) Rows(idx []int) (*Batch, error) {
	rows, err := b.pick(idx)
	if err != nil {
		return nil, err
	}
	return b.fill(rows)
}
