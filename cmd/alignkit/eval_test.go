package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// logitsNLL is the hand computation: -Σ_{i>=1} log p(ids[i]) read from `alignkit logits --json` with
// the whole vocabulary printed (--top 512), and the ids it scored.
func logitsNLL(t *testing.T, model string, args ...string) (float64, []int32) {
	t.Helper()
	r := runCLI(t, append([]string{"logits", "--model", model, "--top", "512", "--json"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("logits: %s", r.Stderr)
	}
	var out struct {
		IDs       []int32        `json:"ids"`
		Positions [][][2]float64 `json:"positions"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatal(err)
	}
	var nll float64
	for i := 1; i < len(out.IDs); i++ {
		found := false
		for _, p := range out.Positions[i-1] {
			if int32(p[0]) == out.IDs[i] {
				nll -= p[1]
				found = true
			}
		}
		if !found {
			t.Fatalf("id %d missing from position %d", out.IDs[i], i-1)
		}
	}
	return nll, out.IDs
}

func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

// TestEvalBPBMatchesLogits: bits per byte, overall and per component, equals Σ NLL / ln 2 / Σ bytes
// computed from `alignkit logits` on stories260K; a text longer than the 512-token context is scored
// in two windows sharing one token, each checked through `logits --tokens`.
func TestEvalBPBMatchesLogits(t *testing.T) {
	model := sharedtest.Path(t, "models", "stories260K")
	long := strings.Repeat("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ", 30)
	texts := []struct{ text, comp string }{
		{"Once upon a time", "stories"},
		{"The cat sat on the mat. It was happy.", "stories"},
		{"Ünïcode bytes — count as UTF-8!", "odd"},
		{long, "long"},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "eval.jsonl")
	var b strings.Builder
	for _, tx := range texts {
		line, _ := json.Marshal(map[string]string{"content": tx.text, "source": tx.comp})
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	nll := map[string]float64{}
	bytes := map[string]int{}
	var totalNLL float64
	var totalBytes int
	for _, tx := range texts {
		var n float64
		if tx.text == long {
			// All ids via tokenize, then the two windows [0, 512) and [511, end) via --tokens.
			r := runCLI(t, "tokenize", "--model", model, "--text", tx.text, "--json")
			var tk struct{ IDs []int32 }
			if err := json.Unmarshal([]byte(r.Stdout), &tk); err != nil {
				t.Fatal(err)
			}
			if len(tk.IDs) <= 512 || len(tk.IDs) > 1023 {
				t.Fatalf("long text has %d tokens; want two windows", len(tk.IDs))
			}
			n1, _ := logitsNLL(t, model, "--tokens", joinIDs(tk.IDs[:512]))
			n2, _ := logitsNLL(t, model, "--tokens", joinIDs(tk.IDs[511:]))
			n = n1 + n2
		} else {
			n, _ = logitsNLL(t, model, "--text", tx.text)
		}
		nll[tx.comp] += n
		bytes[tx.comp] += len(tx.text)
		totalNLL += n
		totalBytes += len(tx.text)
	}

	r := runCLI(t, "eval", "bpb", "--model", model, "--data", path, "--text-column", "content", "--component-column", "source", "--json")
	if r.Code != 0 {
		t.Fatalf("eval bpb: %s", r.Stderr)
	}
	var res struct {
		Overall struct {
			Rows  int
			Bytes int
			NLL   float64 `json:"nll_nats"`
			BPB   float64 `json:"bits_per_byte"`
		}
		Components []struct {
			Name  string
			Rows  int
			Bytes int
			BPB   float64 `json:"bits_per_byte"`
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatal(err)
	}
	want := totalNLL / math.Ln2 / float64(totalBytes)
	if res.Overall.Rows != 4 || res.Overall.Bytes != totalBytes || math.Abs(res.Overall.BPB-want) > 1e-9*want {
		t.Errorf("overall: %+v; want %d bytes, bpb %.12f", res.Overall, totalBytes, want)
	}
	if len(res.Components) != 3 {
		t.Fatalf("components: %+v", res.Components)
	}
	for i, name := range []string{"long", "odd", "stories"} { // sorted by name
		c := res.Components[i]
		w := nll[name] / math.Ln2 / float64(bytes[name])
		if c.Name != name || c.Bytes != bytes[name] || math.Abs(c.BPB-w) > 1e-9*w {
			t.Errorf("component %d: %+v; want %s, %d bytes, bpb %.12f", i, c, name, bytes[name], w)
		}
	}
	if bytes["odd"] == len([]rune(texts[2].text)) {
		t.Fatal("the odd text should have multi-byte characters")
	}

	// Bad input: a missing column names the file, row and column.
	r = runCLI(t, "eval", "bpb", "--model", model, "--data", path)
	if want := "alignkit: " + path + `: row 0: missing column "text"`; r.Code == 0 || r.ErrorLine() != want {
		t.Errorf("missing column: %q, want %q", r.ErrorLine(), want)
	}
}
