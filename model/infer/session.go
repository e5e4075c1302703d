package infer

import (
	"errors"
	"fmt"
	"slices"
)

// kvCache holds every layer's keys and values of one sequence, laid out (KV, capacity, HD) per layer so
// that one KV head's keys are a contiguous (tokens, HD) matrix. With a sliding window W it is Mistral's
// rolling buffer: W slots, position p in slot p mod W.
type kvCache struct {
	ring     int // W, or 0 for one slot per position
	limit    int // the most slots it may ever need
	capacity int // slots allocated so far (grows by doubling up to limit)
	k, v     [][]float32
}

// cached is how many slots hold tokens the next row may attend to, given start tokens so far.
func (c *kvCache) cached(start int) int {
	if c == nil {
		return 0
	}
	if c.ring > 0 {
		return min(start, c.ring)
	}
	return start
}

func (c *kvCache) slot(pos int) int {
	if c.ring > 0 {
		return pos % c.ring
	}
	return pos
}

// ensure grows the cache to hold need slots (at most limit), keeping what it holds.
func (c *kvCache) ensure(need int, e *Engine) {
	need = min(need, c.limit)
	if need <= c.capacity {
		return
	}
	newCap := min(c.limit, max(need, 2*c.capacity, 16))
	HD := e.HD
	for l := range c.k {
		for _, kv := range []*[]float32{&c.k[l], &c.v[l]} {
			old := *kv
			buf := make([]float32, e.KV*newCap*HD)
			for g := 0; g < e.KV && c.capacity > 0; g++ {
				copy(buf[g*newCap*HD:], old[g*c.capacity*HD:(g+1)*c.capacity*HD])
			}
			*kv = buf
		}
	}
	c.capacity = newCap
}

// Session is one sequence's incremental decoding state (its KV cache). It is not safe for concurrent
// use; separate Sessions over one Engine are.
type Session struct {
	e      *Engine
	maxLen int
	n      int
	cache  *kvCache
	ws     *work
}

// NewSession starts an empty sequence that may grow to maxLen tokens (maxLen <= 0, or more than
// max_position_embeddings, means max_position_embeddings). The cache grows as tokens arrive; with a
// sliding window it never exceeds W slots per layer and KV head.
func (e *Engine) NewSession(maxLen int) *Session {
	mp := e.cfg.MaxPositionEmbeddings
	if maxLen <= 0 || maxLen > mp {
		maxLen = mp
	}
	c := &kvCache{limit: maxLen, k: make([][]float32, len(e.layers)), v: make([][]float32, len(e.layers))}
	if e.window > 0 {
		c.ring = e.window
		c.limit = min(maxLen, e.window)
	}
	return &Session{e: e, maxLen: maxLen, cache: c, ws: &work{}}
}

// Fork returns an independent copy of the session: the same tokens and cache contents (so the same
// logits for whatever is appended next, bit for bit), its own storage and scratch. It lets several
// continuations of one prefilled prompt share the prefill.
func (s *Session) Fork() *Session {
	c := *s.cache
	c.k = make([][]float32, len(s.cache.k))
	c.v = make([][]float32, len(s.cache.v))
	for l := range c.k {
		c.k[l] = slices.Clone(s.cache.k[l])
		c.v[l] = slices.Clone(s.cache.v[l])
	}
	return &Session{e: s.e, maxLen: s.maxLen, n: s.n, cache: &c, ws: &work{}}
}

// Len is the number of tokens in the cache.
func (s *Session) Len() int { return s.n }

// MaxLen is the most tokens the session can hold.
func (s *Session) MaxLen() int { return s.maxLen }

// defaultChunk is the prefill chunk when the caller gives none.
const defaultChunk = 512

// Prefill appends tokens to the sequence, chunk tokens per pass (chunk <= 0: 512, clamped to the
// sliding window), and returns the logits after the last one, (V).
func (s *Session) Prefill(tokens []int32, chunk int) ([]float32, error) {
	e := s.e
	if err := e.needLMHead(); err != nil {
		return nil, err
	}
	if len(tokens) == 0 {
		return nil, errors.New("prefill: no tokens")
	}
	if err := s.checkAppend(tokens); err != nil {
		return nil, err
	}
	if chunk <= 0 {
		chunk = defaultChunk
		if e.window > 0 {
			chunk = min(chunk, e.window)
		}
	}
	var h []float32
	for i := 0; i < len(tokens); i += chunk {
		part := tokens[i:min(i+chunk, len(tokens))]
		var outRows []int
		if i+len(part) == len(tokens) {
			outRows = []int{len(part) - 1}
		}
		h = s.advance(part, outRows)
	}
	return e.logits(h, 1)[0], nil
}

// Step appends one token and returns the logits after it, (V).
func (s *Session) Step(token int32) ([]float32, error) {
	if err := s.e.needLMHead(); err != nil {
		return nil, err
	}
	toks := []int32{token}
	if err := s.checkAppend(toks); err != nil {
		return nil, err
	}
	return s.e.logits(s.advance(toks, []int{0}), 1)[0], nil
}

func (s *Session) checkAppend(tokens []int32) error {
	if err := s.e.checkTokens(tokens, s.n); err != nil {
		return err
	}
	if s.n+len(tokens) > s.maxLen {
		return fmt.Errorf("session holds %d tokens and %d more would exceed its limit of %d", s.n, len(tokens), s.maxLen)
	}
	return nil
}

// advance runs validated tokens through the model at positions s.n.., caching them.
func (s *Session) advance(tokens []int32, outRows []int) []float32 {
	pos := make([]int32, len(tokens))
	for i := range pos {
		pos[i] = int32(s.n + i)
	}
	s.cache.ensure(s.n+len(tokens), s.e)
	h := s.e.run(s.ws, tokens, pos, []seg{{row0: 0, n: len(tokens), start: s.n, cache: s.cache}}, outRows)
	s.n += len(tokens)
	return h
}

// stepBatch appends one validated token to each session in a single batched pass (one row each) and
// returns each session's next-token logits. ws is the caller's scratch, and holds the logits: the
// next stepBatch with ws overwrites them.
func (e *Engine) stepBatch(ws *work, sessions []*Session, tokens []int32) [][]float32 {
	B := len(sessions)
	pos := make([]int32, B)
	segs := make([]seg, B)
	rows := make([]int, B)
	for i, s := range sessions {
		s.cache.ensure(s.n+1, e)
		pos[i] = int32(s.n)
		segs[i] = seg{row0: i, n: 1, start: s.n, cache: s.cache}
		rows[i] = i
	}
	h := e.run(ws, tokens, pos, segs, rows)
	for _, s := range sessions {
		s.n++
	}
	ws.logits = grow(ws.logits, B*e.V)
	return e.logitsInto(ws.logits, h, B)
}
