package data

import (
	"reflect"
	"slices"
	"testing"
)

func ex(row int, ids []int32, trained ...int) Example {
	e := Example{IDs: ids, Mask: make([]bool, len(ids)), Row: row, Source: "f"}
	for _, i := range trained {
		e.Mask[i] = true
	}
	return e
}

// seqIDs makes n ids starting at base.
func seqIDs(base int32, n int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = base + int32(i)
	}
	return ids
}

func TestBatchPadded(t *testing.T) {
	const P = 0
	exs := []Example{
		ex(10, []int32{1, 10, 11, 2}, 1, 2, 3),
		ex(11, []int32{1, 20, 21, 22, 23, 2}, 3, 4, 5),
	}
	b, err := NewBatcher(exs, 2, BatchConfig{BatchSize: 2, MaxLength: 8, PadID: P, Buckets: []int{4, 8}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Rows([]int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	// T is the bucket 8 (the longest row has 6 tokens). Targets are the
	// tokens shifted left within each example; Weights[j] is the mask of
	// token j+1, so row 1's mask on tokens 3..5 becomes weights 2..4.
	want := &Batch{
		B: 2, T: 8,
		Tokens:    []int32{1, 10, 11, 2, P, P, P, P, 1, 20, 21, 22, 23, 2, P, P},
		Targets:   []int32{10, 11, 2, -1, -1, -1, -1, -1, 20, 21, 22, 23, 2, -1, -1, -1},
		Weights:   []float32{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0},
		Positions: []int32{0, 1, 2, 3, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0},
		Segments:  []int32{1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0},
		LastIndex: []int32{3, 5},
		Rows:      []int{10, 11},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	st := b.Stats()
	if st.Examples != 2 || st.Tokens != 10 || st.TrainedTokens != 6 || st.PadTokens != 6 || st.BatchesPerEpoch != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBatchPacked(t *testing.T) {
	// Lengths 5, 3, 4, 2, 6 into rows of 8, best-fit decreasing:
	//   6 (row 10 of the data) opens row A (room 2);
	//   5 (data row 0) fits nowhere: row B (room 3);
	//   4 (data row 2) fits nowhere: row C (room 4);
	//   3 (data row 1) goes to the fullest row with room: B (room 3 -> 0);
	//   2 (data row 3) goes to A (room 2 -> 0).
	exs := []Example{
		ex(0, seqIDs(100, 5), 4), ex(1, seqIDs(200, 3), 2), ex(2, seqIDs(300, 4), 3),
		ex(3, seqIDs(400, 2), 1), ex(10, seqIDs(500, 6), 5),
	}
	b, err := NewBatcher(exs, 2, BatchConfig{BatchSize: 3, MaxLength: 8, PadID: 0, Packing: true, Buckets: []int{8}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Rows([]int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	want := &Batch{
		B: 3, T: 8,
		Tokens: []int32{
			500, 501, 502, 503, 504, 505, 400, 401,
			100, 101, 102, 103, 104, 200, 201, 202,
			300, 301, 302, 303, 0, 0, 0, 0,
		},
		// No target crosses from one example into the next.
		Targets: []int32{
			501, 502, 503, 504, 505, -1, 401, -1,
			101, 102, 103, 104, -1, 201, 202, -1,
			301, 302, 303, -1, -1, -1, -1, -1,
		},
		Weights: []float32{
			0, 0, 0, 0, 1, 0, 1, 0,
			0, 0, 0, 1, 0, 0, 1, 0,
			0, 0, 1, 0, 0, 0, 0, 0,
		},
		Positions: []int32{
			0, 1, 2, 3, 4, 5, 0, 1,
			0, 1, 2, 3, 4, 0, 1, 2,
			0, 1, 2, 3, 0, 0, 0, 0,
		},
		Segments: []int32{
			1, 1, 1, 1, 1, 1, 2, 2,
			1, 1, 1, 1, 1, 2, 2, 2,
			1, 1, 1, 1, 0, 0, 0, 0,
		},
		LastIndex: []int32{7, 7, 3},
		Rows:      []int{10, 3, 0, 1, 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if st := b.Stats(); st.RowsPerEpoch != 3 || st.PadTokens != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBatchBucketsAndTruncation(t *testing.T) {
	exs := []Example{
		ex(0, seqIDs(100, 3), 2),   // T bucket 16
		ex(1, seqIDs(200, 20), 19), // bucket 32
		ex(2, seqIDs(300, 50), 5),  // truncated to 40: keeps its trained token 5
	}
	b, err := NewBatcher(exs, 2, BatchConfig{BatchSize: 1, MaxLength: 40, PadID: 0})
	if err != nil {
		t.Fatal(err)
	}
	var ts []int
	for i := 0; i < b.NumRows(); i++ {
		bt, err := b.Rows([]int{i})
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, bt.T)
	}
	// Default buckets for max length 40: 16, 32, 40.
	if !slices.Equal(ts, []int{16, 32, 40}) {
		t.Fatalf("T per batch %v", ts)
	}
	st := b.Stats()
	if st.Truncated != 1 || st.TruncatedTokens != 10 || st.Tokens != 63 {
		t.Fatalf("stats %+v", st)
	}

	// A trained token past max_length: an error naming the row, or dropped
	// and counted when asked.
	lost := []Example{ex(0, seqIDs(100, 3), 2), ex(7, seqIDs(200, 50), 45)}
	_, err = NewBatcher(lost, 2, BatchConfig{BatchSize: 1, MaxLength: 40, PadID: 0})
	if want := "f: row 7: no token carries loss after truncation to max_length 40 (the example has 50 tokens); raise max_length or drop such rows"; err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	b, err = NewBatcher(lost, 2, BatchConfig{BatchSize: 1, MaxLength: 40, PadID: 0, DropUntrained: true})
	if err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Dropped != 1 || st.Examples != 1 || st.Truncated != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBatchConfigErrors(t *testing.T) {
	exs := []Example{ex(0, seqIDs(100, 3), 2)}
	tests := []struct {
		cfg  BatchConfig
		want string
	}{
		{BatchConfig{BatchSize: 1, MaxLength: 8, PadID: 2}, "pad id 2 is the EOS id: padding must not be EOS; choose another pad id (e.g. unk)"},
		{BatchConfig{BatchSize: 0, MaxLength: 8}, "batch size 0: want at least 1"},
		{BatchConfig{BatchSize: 1, MaxLength: 1}, "max length 1: want at least 2"},
		{BatchConfig{BatchSize: 1, MaxLength: 8, Buckets: []int{8, 4}}, "buckets [8 4]: want ascending positive lengths"},
		{BatchConfig{BatchSize: 1, MaxLength: 8, PadID: -1}, "pad id -1: want a token id >= 0"},
	}
	for _, tc := range tests {
		if _, err := NewBatcher(exs, 2, tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: got %v, want %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewBatcher([]Example{ex(4, seqIDs(1, 3))}, 2, BatchConfig{BatchSize: 1, MaxLength: 8}); err == nil || err.Error() != "f: row 4: no token carries loss" {
		t.Errorf("got %v", err)
	}
	short := Example{IDs: seqIDs(1, 3), Mask: []bool{false, true}, Row: 5, Source: "f"}
	if _, err := NewBatcher([]Example{short}, 2, BatchConfig{BatchSize: 1, MaxLength: 8}); err == nil || err.Error() != "f: row 5: example has 3 ids but 2 mask entries" {
		t.Errorf("got %v", err)
	}
	// Every example dropped leaves nothing to batch.
	untrained := BatchConfig{BatchSize: 1, MaxLength: 8, DropUntrained: true}
	if _, err := NewBatcher([]Example{ex(4, seqIDs(1, 3))}, 2, untrained); err == nil || err.Error() != "no examples to batch" {
		t.Errorf("got %v", err)
	}
}

// TestEpochStats: a partial last batch counts, and padding is that of
// batches taken in dataset order.
func TestEpochStats(t *testing.T) {
	var exs []Example
	for i := 0; i < 23; i++ {
		exs = append(exs, ex(i, seqIDs(int32(100*i+100), 2+i%5), 1))
	}
	b, err := NewBatcher(exs, 2, BatchConfig{BatchSize: 4, MaxLength: 16, PadID: 0, Buckets: []int{4, 8, 16}})
	if err != nil {
		t.Fatal(err)
	}
	// 23 rows of 4: five full batches and one of 3.
	if b.NumBatches() != 6 || b.NumRows() != 23 || b.Stats().BatchesPerEpoch != 6 {
		t.Fatalf("%d batches, %d rows, stats %+v", b.NumBatches(), b.NumRows(), b.Stats())
	}
	// Lengths cycle 2,3,4,5,6 (89 tokens). Batches in order hold lengths
	// {2,3,4,5} {6,2,3,4} {5,6,2,3} {4,5,6,2} {3,4,5,6} {2,3,4}: buckets
	// 8 (5 of them) and 4, so padding is 5*4*8 + 3*4 - 89 = 83.
	pad := 0
	for lo := 0; lo < b.NumRows(); lo += 4 {
		var idx []int
		for i := lo; i < min(lo+4, b.NumRows()); i++ {
			idx = append(idx, i)
		}
		bt, err := b.Rows(idx)
		if err != nil {
			t.Fatal(err)
		}
		pad += bt.B*bt.T - countNonPad(bt)
	}
	if st := b.Stats(); st.Tokens != 89 || st.PadTokens != 83 || pad != 83 {
		t.Fatalf("stats %+v, collated padding %d", st, pad)
	}
}

// countNonPad counts the tokens of a batch that belong to an example.
func countNonPad(b *Batch) int {
	n := 0
	for _, s := range b.Segments {
		if s != 0 {
			n++
		}
	}
	return n
}

func TestPairBatch(t *testing.T) {
	pairs := []PairExample{
		{Prompt: []int32{1, 10, 11}, Chosen: []int32{20, 2}, Rejected: []int32{30, 31, 2}, Margin: 1, HasMargin: true, Row: 5, Source: "f"},
		{Prompt: []int32{1, 12}, Chosen: []int32{21, 22, 23, 2}, Rejected: []int32{32, 2}, ScoreChosen: 9, ScoreRejected: 4, HasScores: true, Row: 6, Source: "f"},
	}
	b, err := NewPairBatcher(pairs, 2, PairBatchConfig{BatchSize: 2, MaxLength: 8, PadID: 0, Buckets: []int{8}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Pairs([]int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	// Rows: chosen 1, chosen 2, rejected 1, rejected 2. The answer's tokens
	// are the targets with weight: the last prompt token's target is the
	// first answer token.
	want := &PairBatch{
		Batch: Batch{
			B: 4, T: 8,
			Tokens: []int32{
				1, 10, 11, 20, 2, 0, 0, 0,
				1, 12, 21, 22, 23, 2, 0, 0,
				1, 10, 11, 30, 31, 2, 0, 0,
				1, 12, 32, 2, 0, 0, 0, 0,
			},
			Targets: []int32{
				10, 11, 20, 2, -1, -1, -1, -1,
				12, 21, 22, 23, 2, -1, -1, -1,
				10, 11, 30, 31, 2, -1, -1, -1,
				12, 32, 2, -1, -1, -1, -1, -1,
			},
			Weights: []float32{
				0, 0, 1, 1, 0, 0, 0, 0,
				0, 1, 1, 1, 1, 0, 0, 0,
				0, 0, 1, 1, 1, 0, 0, 0,
				0, 1, 1, 0, 0, 0, 0, 0,
			},
			Positions: []int32{
				0, 1, 2, 3, 4, 0, 0, 0,
				0, 1, 2, 3, 4, 5, 0, 0,
				0, 1, 2, 3, 4, 5, 0, 0,
				0, 1, 2, 3, 0, 0, 0, 0,
			},
			Segments: []int32{
				1, 1, 1, 1, 1, 0, 0, 0,
				1, 1, 1, 1, 1, 1, 0, 0,
				1, 1, 1, 1, 1, 1, 0, 0,
				1, 1, 1, 1, 0, 0, 0, 0,
			},
			LastIndex: []int32{4, 5, 5, 3},
			Rows:      []int{5, 6, 5, 6},
		},
		N: 2, Margins: []float32{1, 0}, ScoresChosen: []float32{0, 9}, ScoresRejected: []float32{0, 4},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// Rows of 5, 6, 6 and 4 tokens in one batch of T 8: 32 - 21 pad tokens.
	if st := b.Stats(); st.Pairs != 2 || st.Tokens != 21 || st.PadTokens != 11 || st.BatchesPerEpoch != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPairTruncation(t *testing.T) {
	pairs := []PairExample{{
		Prompt:   seqIDs(100, 10),
		Chosen:   []int32{20, 21, 22, 23, 2},
		Rejected: []int32{30, 2},
		Row:      1, Source: "f",
	}}
	// The prompt keeps its last 4 tokens (106..109); rows are cut to 7, so
	// the chosen answer keeps 3 tokens and loses 2 (its EOS among them).
	b, err := NewPairBatcher(pairs, 2, PairBatchConfig{BatchSize: 1, MaxLength: 7, MaxPromptLength: 4, PadID: 0})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := b.Pairs([]int{0})
	if got.T != 7 || !slices.Equal(got.Tokens[:7], []int32{106, 107, 108, 109, 20, 21, 22}) ||
		!slices.Equal(got.Tokens[7:], []int32{106, 107, 108, 109, 30, 2, 0}) {
		t.Fatalf("tokens %v (T %d)", got.Tokens, got.T)
	}
	st := b.Stats()
	if st.PromptTruncated != 1 || st.PromptTruncatedTokens != 6 || st.AnswerTruncated != 1 || st.AnswerTruncatedTokens != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A prompt longer than max_length is cut so each answer keeps a token.
	b, err = NewPairBatcher(pairs, 2, PairBatchConfig{BatchSize: 1, MaxLength: 4, PadID: 0})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = b.Pairs([]int{0})
	if !slices.Equal(got.Tokens, []int32{107, 108, 109, 20, 107, 108, 109, 30}) || got.TrainedTokens() != 2 {
		t.Fatalf("tokens %v", got.Tokens)
	}
}

// TestRowsByIndex: the training loop hands row indices in its shuffled
// order; the batch holds those rows in that order, padded to the bucket of
// the longest, and bad indices are refused.
func TestRowsByIndex(t *testing.T) {
	var exs []Example
	for i := 0; i < 7; i++ {
		exs = append(exs, ex(i, seqIDs(10, 3+i), 1))
	}
	b, err := NewBatcher(exs, 2, BatchConfig{BatchSize: 3, MaxLength: 16, PadID: 0, Buckets: []int{4, 8, 16}})
	if err != nil {
		t.Fatal(err)
	}
	// Rows 5 and 2 have 8 and 5 tokens: bucket 8.
	got, err := b.Rows([]int{5, 2})
	if err != nil {
		t.Fatal(err)
	}
	if got.B != 2 || got.T != 8 || !slices.Equal(got.Rows, []int{5, 2}) || !slices.Equal(got.LastIndex, []int32{7, 4}) ||
		!slices.Equal(got.Tokens[8:], []int32{10, 11, 12, 13, 14, 0, 0, 0}) {
		t.Fatalf("batch %+v", got)
	}
	for _, tc := range []struct {
		idx  []int
		want string
	}{
		{[]int{7}, "row 7: want 0 <= row < 7"},
		{[]int{0, -1}, "row -1: want 0 <= row < 7"},
		{nil, "no rows to collate"},
	} {
		if _, err := b.Rows(tc.idx); err == nil || err.Error() != tc.want {
			t.Errorf("Rows(%v): got %v, want %s", tc.idx, err, tc.want)
		}
	}
}

func TestPairErrors(t *testing.T) {
	ok := PairExample{Prompt: []int32{1, 10}, Chosen: []int32{20, 2}, Rejected: []int32{30, 2}, Row: 3, Source: "f"}
	cfg := PairBatchConfig{BatchSize: 1, MaxLength: 8, PadID: 0}
	tests := []struct {
		pairs []PairExample
		want  string
	}{
		{nil, "no pairs to batch"},
		{[]PairExample{ok, {Prompt: []int32{1}, Chosen: []int32{20, 2}, Row: 4, Source: "f"}}, "f: row 4: empty chosen or rejected answer"},
		{[]PairExample{{Chosen: []int32{2}, Rejected: []int32{30, 2}, Row: 5, Source: "f"}},
			"f: row 5: no token carries loss: empty prompt and one-token answer"},
	}
	for _, tc := range tests {
		if _, err := NewPairBatcher(tc.pairs, 2, cfg); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
	if _, err := NewPairBatcher([]PairExample{ok}, 2, PairBatchConfig{BatchSize: 1, MaxLength: 8, PadID: 2}); err == nil ||
		err.Error() != "pad id 2 is the EOS id: padding must not be EOS; choose another pad id (e.g. unk)" {
		t.Errorf("got %v", err)
	}
	b, err := NewPairBatcher([]PairExample{ok, ok}, 2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sel  []int
		want string
	}{
		{[]int{2}, "pair 2: want 0 <= pair < 2"},
		{[]int{-1}, "pair -1: want 0 <= pair < 2"},
		{nil, "no pairs to collate"},
	} {
		if _, err := b.Pairs(tc.sel); err == nil || err.Error() != tc.want {
			t.Errorf("Pairs(%v): got %v, want %s", tc.sel, err, tc.want)
		}
	}
}
