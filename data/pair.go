package data

import "fmt"

// PairBatchConfig configures a PairBatcher.
type PairBatchConfig struct {
	// BatchSize is the number of pairs per batch; the batch has twice as
	// many rows.
	BatchSize int
	// MaxLength is the longest prompt+answer row.
	MaxLength int
	// MaxPromptLength, when > 0, cuts longer prompts from the left, keeping
	// their end (where the question and the generation prompt are).
	MaxPromptLength int
	// PadID fills padding; it must not be the EOS id.
	PadID   int32
	Buckets []int // as in BatchConfig
}

// PairStats counts what a PairBatcher did.
type PairStats struct {
	Pairs                 int
	PromptTruncated       int // prompts cut from the left (MaxPromptLength, or to fit MaxLength)
	PromptTruncatedTokens int
	AnswerTruncated       int // answers (chosen or rejected) cut to fit MaxLength
	AnswerTruncatedTokens int
	Tokens                int // tokens in all rows, without padding
	BatchesPerEpoch       int
	PadTokens             int // padding in one epoch, batches taken in dataset order
}

func (s PairStats) String() string {
	return fmt.Sprintf("%d pairs, %d prompts truncated (%d tokens), %d answers truncated (%d tokens), %d tokens, %d batches per epoch, %d pad tokens per epoch",
		s.Pairs, s.PromptTruncated, s.PromptTruncatedTokens, s.AnswerTruncated, s.AnswerTruncatedTokens, s.Tokens, s.BatchesPerEpoch, s.PadTokens)
}

// PairBatch is a batch of N preference pairs as B = 2N rows: the chosen rows
// c_1..c_N, then the rejected rows r_1..r_N, so that one forward pass scores
// both. Each row is prompt+answer with loss on the answer's targets only;
// LastIndex points at each answer's last token (its EOS unless truncated).
type PairBatch struct {
	Batch
	N int
	// Margins holds each pair's margin column, 0 when it has none. (N)
	Margins []float32
	// ScoresChosen and ScoresRejected hold the score columns, 0 when absent.
	// (N)
	ScoresChosen, ScoresRejected []float32
}

// PairBatcher cuts preference pairs into batches, deterministically.
type PairBatcher struct {
	shaper
	pairs []PairExample
	stats PairStats
}

// NewPairBatcher truncates pairs (the prompt from the left, answers from the
// right) and prepares the epochs. eos is the tokenizer's EOS id.
func NewPairBatcher(pairs []PairExample, eos int32, cfg PairBatchConfig) (*PairBatcher, error) {
	buckets, err := checkShape(cfg.BatchSize, cfg.MaxLength, cfg.PadID, eos, cfg.Buckets)
	if err != nil {
		return nil, err
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("no pairs to batch")
	}
	b := &PairBatcher{shaper: shaper{batchSize: cfg.BatchSize, maxLength: cfg.MaxLength, pad: cfg.PadID, buckets: buckets}}
	// A shaper row here is one pair: [chosen row, rejected row]; batches
	// regroup them as all chosen rows then all rejected rows.
	for i := range pairs {
		p := pairs[i]
		if len(p.Chosen) == 0 || len(p.Rejected) == 0 {
			return nil, rowError(p.Source, p.Row, "empty chosen or rejected answer")
		}
		prompt := p.Prompt
		cut := 0
		if cfg.MaxPromptLength > 0 && len(prompt) > cfg.MaxPromptLength {
			cut = len(prompt) - cfg.MaxPromptLength
		}
		// Each answer keeps at least one token, so a prompt that leaves no
		// room is cut further.
		if room := cfg.MaxLength - 1; len(prompt)-cut > room {
			cut = len(prompt) - room
		}
		if cut > 0 {
			b.stats.PromptTruncated++
			b.stats.PromptTruncatedTokens += cut
			prompt = prompt[cut:]
		}
		c := b.answerRow(&p, prompt, p.Chosen, cfg.MaxLength)
		r := b.answerRow(&p, prompt, p.Rejected, cfg.MaxLength)
		if len(prompt) == 0 && (len(c.ids) < 2 || len(r.ids) < 2) {
			return nil, rowError(p.Source, p.Row, "no token carries loss: empty prompt and one-token answer")
		}
		b.stats.Tokens += len(c.ids) + len(r.ids)
		b.rows = append(b.rows, []unit{c, r})
		b.pairs = append(b.pairs, p)
	}
	b.stats.Pairs = len(pairs)
	b.stats.BatchesPerEpoch = b.numBatches()
	b.stats.PadTokens = b.padTokens(true)
	return b, nil
}

// answerRow is prompt+answer with loss on the answer, cut to maxLength.
func (b *PairBatcher) answerRow(p *PairExample, prompt, answer []int32, maxLength int) unit {
	if over := len(prompt) + len(answer) - maxLength; over > 0 {
		b.stats.AnswerTruncated++
		b.stats.AnswerTruncatedTokens += over
		answer = answer[:len(answer)-over]
	}
	u := unit{ids: make([]int32, 0, len(prompt)+len(answer)), row: p.Row, src: p.Source}
	u.ids = append(append(u.ids, prompt...), answer...)
	u.mask = make([]bool, len(u.ids))
	for i := len(prompt); i < len(u.ids); i++ {
		u.mask[i] = i > 0
	}
	return u
}

// Stats reports truncation and padding.
func (b *PairBatcher) Stats() PairStats { return b.stats }

// NumBatches is the number of batches per epoch.
func (b *PairBatcher) NumBatches() int { return b.numBatches() }

// NumPairs is the number of pairs the batcher holds.
func (b *PairBatcher) NumPairs() int { return len(b.rows) }

// Pairs collates the given pairs (indices in 0..NumPairs()-1) into one batch: chosen rows first,
// then rejected rows, padded to one length bucket. The training loop owns the shuffle.
func (b *PairBatcher) Pairs(sel []int) (*PairBatch, error) {
	if len(sel) == 0 {
		return nil, fmt.Errorf("no pairs to collate")
	}
	for _, pi := range sel {
		if pi < 0 || pi >= len(b.rows) {
			return nil, fmt.Errorf("pair %d: want 0 <= pair < %d", pi, len(b.rows))
		}
	}
	n := len(sel)
	rows := make([][]unit, 2*n)
	pb := &PairBatch{N: n, Margins: make([]float32, n), ScoresChosen: make([]float32, n), ScoresRejected: make([]float32, n)}
	for i, pi := range sel {
		rows[i] = b.rows[pi][:1]
		rows[n+i] = b.rows[pi][1:]
		p := &b.pairs[pi]
		if p.HasMargin {
			pb.Margins[i] = float32(p.Margin)
		}
		if p.HasScores {
			pb.ScoresChosen[i], pb.ScoresRejected[i] = float32(p.ScoreChosen), float32(p.ScoreRejected)
		}
	}
	batch, err := b.fill(rows)
	if err != nil {
		return nil, err
	}
	pb.Batch = *batch
	return pb, nil
}
