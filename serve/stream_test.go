package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/alignkit/alignkit/rlhf"
)

// textChunk is a /v1/completions stream chunk.
type textChunk struct {
	Choices []struct {
		Index        int     `json:"index"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// collect adds up a completions stream's texts and finish reasons by choice index.
func collect(t *testing.T, events []string) (map[int]string, map[int]string) {
	t.Helper()
	texts, finishes := map[int]string{}, map[int]string{}
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", events)
	}
	for _, ev := range events[:len(events)-1] {
		var c textChunk
		if err := json.Unmarshal([]byte(ev), &c); err != nil || len(c.Choices) != 1 {
			t.Fatalf("chunk %s: %v", ev, err)
		}
		ch := c.Choices[0]
		if _, ok := finishes[ch.Index]; ok {
			t.Errorf("choice %d: chunk %s after its finish", ch.Index, ev)
		}
		texts[ch.Index] += ch.Text
		if ch.FinishReason != nil {
			finishes[ch.Index] = *ch.FinishReason
		}
	}
	return texts, finishes
}

// The first text chunk reaches the client while the engine is still decoding: the test hook blocks
// the generator after the first flushed chunk, and the client reads that chunk before releasing it.
// Without live streaming the read could only return after generation, which the blocked hook never
// lets finish. The whole stream then adds up to the non-streamed answer.
func TestStreamIsLive(t *testing.T) {
	s, _ := newTestServer(t, "", false)
	reached, proceed := make(chan struct{}), make(chan struct{})
	var release sync.Once
	var chunks atomic.Int64
	s.afterChunk = func() {
		if chunks.Add(1) == 1 {
			close(reached)
			<-proceed
		}
	}
	base := startServer(t, s)
	t.Cleanup(func() { release.Do(func() { close(proceed) }) }) // runs before the server's shutdown
	req := map[string]any{"prompt": "Once upon a time", "n": 2, "seed": 77, "temperature": 0.9, "max_tokens": 40}
	_, body := post(t, base+"/v1/completions", req)
	want := decodeJSON[completionResponse](t, body)
	if n := chunks.Load(); n != 0 {
		t.Fatalf("a plain request flushed %d stream chunks", n)
	}
	if len(want.Choices) != 2 {
		t.Fatalf("plain answer: %s", body)
	}

	req["stream"] = true
	enc, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard: a buffered stream fails here, not hangs
	defer cancel()
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/completions", strings.NewReader(string(enc)))
	res, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	rd := bufio.NewReader(res.Body)
	readEvent := func() string {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		if blank, _ := rd.ReadString('\n'); blank != "\n" {
			t.Fatalf("event %q not followed by a blank line", line)
		}
		return strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "data: ")
	}
	first := readEvent()
	// The hook runs just after the flush, so it may trail the read by a moment; once it has run, the
	// generator is parked in it until proceed closes.
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("the first chunk arrived but the hook never ran")
	}
	if n := chunks.Load(); n != 1 {
		t.Fatalf("%d chunks flushed while the generator is held at the first", n)
	}
	var c textChunk
	if err := json.Unmarshal([]byte(first), &c); err != nil || len(c.Choices) != 1 || c.Choices[0].Text == "" || c.Choices[0].FinishReason != nil {
		t.Fatalf("first event %s (%v): want a text chunk", first, err)
	}
	if !strings.HasPrefix(want.Choices[c.Choices[0].Index].Text, c.Choices[0].Text) {
		t.Errorf("first chunk %q does not start choice %d's answer %q", c.Choices[0].Text, c.Choices[0].Index, want.Choices[c.Choices[0].Index].Text)
	}
	release.Do(func() { close(proceed) })
	events := []string{first}
	for {
		ev := readEvent()
		events = append(events, ev)
		if ev == "[DONE]" {
			break
		}
	}
	texts, finishes := collect(t, events)
	for j, w := range want.Choices {
		if texts[j] != w.Text || finishes[j] != w.FinishReason {
			t.Errorf("choice %d: streamed %q (%s), plain %q (%s)", j, texts[j], finishes[j], w.Text, w.FinishReason)
		}
	}
	if n := chunks.Load(); n < 10 {
		t.Errorf("%d text chunks for two 40-token answers: tokens were not streamed one by one", n)
	}
}

// Stop strings in a stream: text is cut where the plain answer is cut, a choice that hits one
// finishes with "stop", and text that might begin a stop string (".QQ" after every ".") is held
// back, not lost, when the stop string does not follow.
func TestStreamStopStrings(t *testing.T) {
	s, _ := newTestServer(t, "", false)
	base := startServer(t, s)
	req := map[string]any{"prompt": "Lily saw a cat", "n": 3, "seed": 9, "temperature": 1, "max_tokens": 48}
	_, body := post(t, base+"/v1/completions", req)
	free := decodeJSON[completionResponse](t, body)
	words := strings.Fields(free.Choices[0].Text)
	if len(words) < 4 {
		t.Fatalf("answer too short to pick a stop string: %q", free.Choices[0].Text)
	}
	for _, stops := range [][]string{
		{" " + words[3], "zzzz-never"},
		{".QQ", ",QQ"},
		{words[1], " " + words[3], "e"},
	} {
		req["stop"] = stops
		delete(req, "stream")
		_, body := post(t, base+"/v1/completions", req)
		want := decodeJSON[completionResponse](t, body)
		req["stream"] = true
		_, body = post(t, base+"/v1/completions", req)
		texts, finishes := collect(t, sseEvents(t, body))
		for j, w := range want.Choices {
			if texts[j] != w.Text || finishes[j] != w.FinishReason {
				t.Errorf("stop %q: choice %d: streamed %q (%s), plain %q (%s)", stops, j, texts[j], finishes[j], w.Text, w.FinishReason)
			}
		}
		if stops[0] == " "+words[3] && (finishes[0] != "stop" || strings.Contains(texts[0], stops[0])) {
			t.Errorf("stop %q: choice 0 %q finished %q", stops[0], texts[0], finishes[0])
		}
	}
}

// A character split over byte-fallback tokens is sent once complete, never as a broken UTF-8 piece.
func TestStreamHoldsSplitCharacters(t *testing.T) {
	s, gen := newTestServer(t, "", false)
	tok := gen.Tokenizer()
	ids := tok.Encode("日!", false) // stories260K has no "日" piece: byte pieces E6 97 A5
	var bytePieces int
	for _, id := range ids {
		if p := tok.DecodeToken(id); len(p) == 1 && p[0] >= 0x80 {
			bytePieces++
		}
	}
	if bytePieces != 3 {
		t.Fatalf("\"日!\" encodes as %v: want three byte pieces for 日", ids)
	}
	prompt := rlhf.Prompt{Text: "Hi"}
	pids, err := gen.Encode(prompt)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	st := &streamer{s: s, gen: gen, w: rec, chunk: func(index int, delta string, finish any) map[string]any {
		return map[string]any{"text": delta, "finish_reason": finish}
	}, cs: []*liveChoice{{prompt: prompt, ids: pids}}, hi: 1}
	var sent []string
	for _, id := range ids {
		if err := st.token(0, id); err != nil {
			t.Fatal(err)
		}
		if rec.Body.Len() == 0 {
			continue // held back
		}
		for _, ev := range sseEvents(t, rec.Body.Bytes()) {
			var c struct{ Text string }
			if err := json.Unmarshal([]byte(ev), &c); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, c.Text)
		}
		rec.Body.Reset()
	}
	// One chunk per token, except that the three byte pieces make one chunk together.
	full := gen.DecodeCompletion(prompt, pids, ids)
	if strings.Join(sent, "") != full || len(sent) != len(ids)-2 || !slices.Contains(sent, "日") && !slices.Contains(sent, " 日") {
		t.Errorf("chunks %q for tokens %v, want %d chunks adding up to %q with 日 whole", sent, ids, len(ids)-2, full)
	}
	for _, c := range sent {
		if !utf8.ValidString(c) {
			t.Errorf("chunk %q is not valid UTF-8", c)
		}
	}
}
