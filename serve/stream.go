package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/alignkit/alignkit/model/infer"
	"github.com/alignkit/alignkit/rlhf"
)

// errAllStopped ends an engine call early once every choice it decodes has hit a stop string.
var errAllStopped = errors.New("every choice hit a stop string")

// chunkFunc builds one SSE chunk: a text delta of choice index, or its finish (finish non-nil).
type chunkFunc func(index int, delta string, finish any) map[string]any

// liveChoice is one choice being streamed.
type liveChoice struct {
	prompt rlhf.Prompt
	ids    []int32 // prompt ids
	gen    []int32
	sent   int  // bytes of the decoded text sent so far
	done   bool // finish chunk sent
}

// streamer writes a streamed request's Server-Sent Events as the engine samples tokens.
type streamer struct {
	s      *Server
	gen    *rlhf.Local // the engine the request's model names
	w      http.ResponseWriter
	fl     http.Flusher
	stops  []string
	chunk  chunkFunc
	cs     []*liveChoice
	lo, hi int // the choices the running engine call decodes
}

func (st *streamer) send(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(st.w, "data: %s\n\n", b)
	if st.fl != nil {
		st.fl.Flush()
	}
}

// text sends choice i's text up to byte l of its decoded text.
func (st *streamer) text(i int, text string, l int) {
	c := st.cs[i]
	if l <= c.sent {
		return
	}
	st.send(st.chunk(i, text[c.sent:l], nil))
	c.sent = l
	if st.s.afterChunk != nil {
		st.s.afterChunk()
	}
}

func (st *streamer) finish(i int, reason string) {
	st.cs[i].done = true
	st.send(st.chunk(i, "", reason))
}

// token is the engine's OnToken: it decodes choice i's text so far and sends what is settled. Text is
// held back while it ends inside a multi-byte character or with the start of a stop string; a stop
// string that is complete (and that no earlier, still open stop string could precede) finishes the
// choice at once.
func (st *streamer) token(i int, id int32) error {
	c := st.cs[i]
	if c.done {
		return nil // past a stop string: nothing more to send
	}
	c.gen = append(c.gen, id)
	text := st.gen.DecodeCompletion(c.prompt, c.ids, c.gen)
	cut := stopIndex(text, st.stops)
	// open is where the earliest trailing partial stop string starts.
	open := len(text)
	for _, s := range st.stops {
		for k := min(len(s)-1, len(text)); k > 0; k-- {
			if strings.HasSuffix(text, s[:k]) {
				open = min(open, len(text)-k)
				break
			}
		}
	}
	if cut >= 0 && cut <= open {
		st.text(i, text, cut)
		st.finish(i, "stop")
		if !slices.ContainsFunc(st.cs[st.lo:st.hi], func(c *liveChoice) bool { return !c.done }) {
			return errAllStopped
		}
		return nil
	}
	l := open
	if cut >= 0 {
		l = min(l, cut)
	}
	// Back up over an unfinished UTF-8 sequence at the end of what would be sent.
	for k := l - 1; k >= 0 && k >= l-utf8.UTFMax; k-- {
		if utf8.RuneStart(text[k]) {
			if !utf8.FullRuneInString(text[k:l]) {
				l = k
			}
			break
		}
	}
	st.text(i, text, l)
	return nil
}

// end sends the rest of choice i's text, cut at a stop string, and its finish chunk.
func (st *streamer) end(i int, eos []int32) {
	c := st.cs[i]
	if c.done {
		return
	}
	text, cut := cutStop(st.gen.DecodeCompletion(c.prompt, c.ids, c.gen), st.stops)
	st.text(i, text, len(text))
	reason := "length"
	if cut || (len(c.gen) > 0 && slices.Contains(eos, c.gen[len(c.gen)-1])) {
		reason = "stop"
	}
	st.finish(i, reason)
}

// stream answers a streamed request: it validates and queues like a plain one, then writes an
// optional opening chunk per choice and each choice's text as the engine samples it (choice i·n+j
// is sample j of prompt i, with seed Seed + i·n + j as rlhf.Local gives it), a finish chunk per
// choice, then [DONE]. Errors found before generation starts are plain JSON errors.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, gen *rlhf.Local, prompts []rlhf.Prompt, n int, sp rlhf.Sampling, stops []string, chunk chunkFunc, open func(index int) map[string]any) {
	ids, _, sp, err := s.prepare(gen, prompts, sp)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	if !s.acquire(r.Context()) {
		return
	}
	defer s.release()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	st := &streamer{s: s, gen: gen, w: w, fl: fl, stops: stops, chunk: chunk}
	for i, p := range prompts {
		for range n {
			st.cs = append(st.cs, &liveChoice{prompt: p, ids: ids[i]})
		}
	}
	if open != nil {
		for i := range st.cs {
			st.send(open(i))
		}
	}
	eos := gen.Tokenizer().EOSIDs()
	per := max(1, gen.Batch/n) // prompts per engine call, as rlhf.Local batches them
	for i0 := 0; i0 < len(prompts); i0 += per {
		i1 := min(len(prompts), i0+per)
		var batch [][]int32
		for i := i0; i < i1; i++ {
			for range n {
				batch = append(batch, ids[i])
			}
		}
		st.lo, st.hi = i0*n, i1*n
		_, err := gen.Engine().Generate(r.Context(), batch, infer.Sampling{
			Temperature: sp.Temperature, TopP: sp.TopP, TopK: sp.TopK, MaxNewTokens: sp.MaxNewTokens,
			Seed: sp.Seed + uint64(i0*n), StopIDs: eos,
			OnToken: func(seq int, id int32) error { return st.token(i0*n+seq, id) },
		})
		if err != nil && !errors.Is(err, errAllStopped) {
			if r.Context().Err() == nil {
				st.send(map[string]any{"error": map[string]any{"message": err.Error(), "type": "server_error", "param": nil, "code": nil}})
			}
			return
		}
		for i := st.lo; i < st.hi; i++ {
			st.end(i, eos)
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}
