package data

import (
	"fmt"
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
	got, err := b.Batch(0, 0)
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
	got, err := b.Batch(0, 0)
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
	for i := 0; i < b.NumBatches(); i++ {
		bt, err := b.Batch(0, i)
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
		{BatchConfig{BatchSize: 2, MaxLength: 8, DropLast: true}, "1 rows make no full batch of 2"},
	}
	for _, tc := range tests {
		if _, err := NewBatcher(exs, 2, tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: got %v, want %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewBatcher([]Example{ex(4, seqIDs(1, 3))}, 2, BatchConfig{BatchSize: 1, MaxLength: 8}); err == nil || err.Error() != "f: row 4: no token carries loss" {
		t.Errorf("got %v", err)
	}
}

// TestShuffleAndResume: epochs are permutations fixed by the seed, and an
// iterator restarted from a saved position continues identically.
func TestShuffleAndResume(t *testing.T) {
	var exs []Example
	for i := 0; i < 23; i++ {
		exs = append(exs, ex(i, seqIDs(int32(100*i+100), 2+i%5), 1))
	}
	cfg := BatchConfig{BatchSize: 4, MaxLength: 16, PadID: 0, Shuffle: true, Seed: 42}
	b, err := NewBatcher(exs, 2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b.NumBatches() != 6 {
		t.Fatalf("%d batches", b.NumBatches())
	}
	it := b.Iterator(Position{})
	var seq [][]int
	var positions []Position
	epochRows := map[int][]int{}
	for i := 0; i < 15; i++ {
		bt, at, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, bt.Rows)
		positions = append(positions, at)
		epochRows[at.Epoch] = append(epochRows[at.Epoch], bt.Rows...)
	}
	if positions[6] != (Position{Epoch: 1, Index: 0}) || it.Position() != (Position{Epoch: 2, Index: 3}) {
		t.Fatalf("positions %v, next %v", positions, it.Position())
	}
	for e := 0; e < 2; e++ {
		rows := slices.Clone(epochRows[e])
		slices.Sort(rows)
		for i, r := range rows {
			if r != i {
				t.Fatalf("epoch %d does not hold each row once: %v", e, epochRows[e])
			}
		}
	}
	if slices.Equal(epochRows[0], epochRows[1]) {
		t.Fatal("epochs 0 and 1 have the same order")
	}
	// A fresh batcher, resumed at (1, 2), replays the rest exactly.
	b2, _ := NewBatcher(exs, 2, cfg)
	it2 := b2.Iterator(Position{Epoch: 1, Index: 2})
	for i := 8; i < 15; i++ {
		bt, at, err := it2.Next()
		if err != nil {
			t.Fatal(err)
		}
		if at != positions[i] || !slices.Equal(bt.Rows, seq[i]) {
			t.Fatalf("resumed batch %d at %v: rows %v, want %v at %v", i, at, bt.Rows, seq[i], positions[i])
		}
	}
	// Another seed, another order.
	cfg.Seed = 43
	b3, _ := NewBatcher(exs, 2, cfg)
	bt, _ := b3.Batch(0, 0)
	if slices.Equal(bt.Rows, seq[0]) {
		t.Fatal("seed does not change the order")
	}
	if _, err := b.Batch(0, 6); err == nil || err.Error() != "batch 6 of epoch 0: want 0 <= index < 6" {
		t.Fatalf("got %v", err)
	}
	// Without shuffling, dataset order.
	cfg.Shuffle = false
	b4, _ := NewBatcher(exs, 2, cfg)
	bt, _ = b4.Batch(3, 1)
	if !slices.Equal(bt.Rows, []int{4, 5, 6, 7}) {
		t.Fatalf("unshuffled rows %v", bt.Rows)
	}
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
	got, err := b.Batch(0, 0)
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
	got, _ := b.Batch(0, 0)
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
	got, _ = b.Batch(0, 0)
	if !slices.Equal(got.Tokens, []int32{107, 108, 109, 20, 107, 108, 109, 30}) || got.TrainedTokens() != 2 {
		t.Fatalf("tokens %v", got.Tokens)
	}
}

// TestRowsMatchesBatch checks that collating the rows of an epoch's batch by index gives the same
// batch as the batcher's own iteration, so the training loop's shuffle and the batcher's agree on layout.
func TestRowsMatchesBatch(t *testing.T) {
	var exs []Example
	for i := 0; i < 7; i++ {
		ids := make([]int32, 3+i)
		mask := make([]bool, len(ids))
		for j := range ids {
			ids[j] = int32(10 + j)
			mask[j] = j > 0
		}
		exs = append(exs, Example{IDs: ids, Mask: mask, Row: i})
	}
	b, err := NewBatcher(exs, 2, BatchConfig{BatchSize: 3, MaxLength: 16, PadID: 0})
	if err != nil {
		t.Fatal(err)
	}
	want, err := b.Batch(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Rows([]int{3, 4, 5})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Rows gave\n%v\nBatch gave\n%v", got, want)
	}
	if _, err := b.Rows([]int{7}); err == nil || err.Error() != "row 7: want 0 <= row < 7" {
		t.Fatalf("got %v", err)
	}
}
