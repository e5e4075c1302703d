package dpo

import (
	"context"
	"fmt"
	"slices"

	"github.com/alignkit/alignkit/data"
)

// pairSet is one split (train or eval) tokenized, filtered and ready to collate.
type pairSet struct {
	name    string // "train" or "eval", for messages
	batcher *data.PairBatcher
	rows    []int // source row of each kept pair, for messages
	dropped int   // pairs whose prompt leaves no room for an answer
	// ref holds the precomputed reference log-probs, one per kept pair; nil when the reference
	// runs per batch (or not at all).
	ref []pairLogps
}

// pairLogps is what the reference model says about one pair: the summed log-probs of the two
// answers and the number of answer tokens they were summed over.
type pairLogps struct {
	Chosen, Rejected             float64
	ChosenTokens, RejectedTokens uint32
}

// colName names a canonical column as the file names it, as data's errors do.
func colName(cols map[string]string, canon string) string {
	if f, ok := cols[canon]; ok && f != canon {
		return fmt.Sprintf("%q (mapped from %q)", f, canon)
	}
	return fmt.Sprintf("%q", canon)
}

// checkPair rejects rows DPO cannot learn from. data accepts them because they are valid
// preference rows in general (a reward model could use a tie; an SFT-style trainer a trailing
// user turn), but DPO needs two different answers that each end the conversation.
func checkPair(p *data.Pair, cols map[string]string) error {
	same := p.Chosen == p.Rejected
	if p.Conversational {
		same = slices.Equal(p.ChosenMessages, p.RejectedMessages)
	}
	if same {
		return fmt.Errorf("%s: row %d: columns %s and %s are identical: DPO needs two different answers to prefer one over the other",
			p.Source, p.Row, colName(cols, "chosen"), colName(cols, "rejected"))
	}
	if p.Conversational {
		for _, side := range []struct {
			canon string
			msgs  []data.Message
		}{{"chosen", p.ChosenMessages}, {"rejected", p.RejectedMessages}} {
			if last := side.msgs[len(side.msgs)-1]; last.Role != "assistant" {
				return fmt.Errorf("%s: row %d: column %s: the last message is from the %s, want assistant: the compared answer must end the conversation",
					p.Source, p.Row, colName(cols, side.canon), last.Role)
			}
		}
	}
	return nil
}

// tokenizePairs validates and tokenizes a dataset's pairs and drops those whose prompt, after the
// max_prompt_length cut, would leave no token of max_length for the answers. It is an error when
// that drops every pair: the message names the first row and its prompt length.
func tokenizePairs(ctx context.Context, ds *data.Dataset, tok *data.Tokenizer, cols map[string]string, maxLength, maxPromptLength int) (kept []data.PairExample, dropped int, err error) {
	if ds.Format != data.FormatPreference {
		return nil, 0, fmt.Errorf("%s: format %s: DPO needs preference rows (chosen and rejected columns, with or without prompt)", ds.Source, ds.Format)
	}
	firstRow, firstLen := -1, 0
	for i := range ds.Pairs {
		p := &ds.Pairs[i]
		if err := data.CheckStop(ctx, i, len(ds.Pairs), ds.Source); err != nil {
			return nil, 0, err
		}
		if err := checkPair(p, cols); err != nil {
			return nil, 0, err
		}
		ex, err := tok.PairExample(p)
		if err != nil {
			return nil, 0, err
		}
		n := len(ex.Prompt)
		if maxPromptLength > 0 && n > maxPromptLength {
			n = maxPromptLength
		}
		if n >= maxLength {
			if firstRow < 0 {
				firstRow, firstLen = p.Row, len(ex.Prompt)
			}
			dropped++
			continue
		}
		kept = append(kept, ex)
	}
	if len(kept) == 0 {
		return nil, dropped, fmt.Errorf("%s: row %d: the prompt is %d tokens, which leaves no room for the answers in max_length %d, and so does every other row's: raise max_length or lower max_prompt_length",
			ds.Source, firstRow, firstLen, maxLength)
	}
	return kept, dropped, nil
}

// newPairSet tokenizes one split and makes its batcher. The batcher does not shuffle: the training
// loop hands it the epoch's indices.
func newPairSet(ctx context.Context, name string, ds *data.Dataset, tok *data.Tokenizer, cfg Config, batchSize int, pad, eos int32) (*pairSet, error) {
	exs, dropped, err := tokenizePairs(ctx, ds, tok, cfg.Data.Columns, cfg.Data.MaxLength, cfg.MaxPromptLength)
	if err != nil {
		return nil, err
	}
	b, err := data.NewPairBatcher(exs, eos, data.PairBatchConfig{
		BatchSize: batchSize, MaxLength: cfg.Data.MaxLength, MaxPromptLength: cfg.MaxPromptLength, PadID: pad,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ds.Source, err)
	}
	s := &pairSet{name: name, batcher: b, dropped: dropped}
	for _, ex := range exs {
		s.rows = append(s.rows, ex.Row)
	}
	return s, nil
}

// report is the split's truncation line for the log.
func (s *pairSet) report() string {
	st := s.batcher.Stats()
	return fmt.Sprintf("dpo: %s: %d pairs (%d dropped: prompt fills max_length), %d prompts truncated from the left (%d tokens), %d answers truncated (%d tokens), %d batches",
		s.name, st.Pairs, s.dropped, st.PromptTruncated, st.PromptTruncatedTokens, st.AnswerTruncated, st.AnswerTruncatedTokens, st.BatchesPerEpoch)
}
