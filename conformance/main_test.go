package conformance

// The harness: the alignkit binary (built once), llama.cpp through logprobs.mjs, `alignkit logits`
// made dense, the comparisons, and the summary printed after all tests.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// tol is the largest log-prob difference allowed between llama.cpp on an f32 export and alignkit on
// the source checkpoint. Both compute in float32 with different summation orders; measured
// differences are around 1e-6, and an exporter bug (a Q/K permutation, a swapped expert, a wrong
// norm epsilon) moves log-probs by 1e-2 or more.
const tol = 1e-4

// underflow is the log-prob below which a float32 probability is subnormal: llama.cpp returns
// probabilities, and below e^-87.3 their logs lose precision (and below e^-103.3 they are 0). Entries
// where alignkit's log-prob is this low are not compared; the tests count them.
const underflow = -87.0

// harness is the state every test shares: where the built CLI lives and the summary lines.
type harness struct {
	tmp string

	buildOnce sync.Once
	cli       string
	buildErr  error

	mu      sync.Mutex
	summary []string
}

var h harness

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "alignkit-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	h.tmp = tmp
	code := m.Run()
	if len(h.summary) > 0 {
		sort.Strings(h.summary)
		fmt.Println("conformance summary (max |Δ log p| between llama.cpp on the export and alignkit on the source):")
		for _, line := range h.summary {
			fmt.Println("  " + line)
		}
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

// report logs a result line and keeps it for the summary.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	h.mu.Lock()
	h.summary = append(h.summary, t.Name()+": "+line)
	h.mu.Unlock()
}

// requireLlamaCpp skips the test unless node and node-llama-cpp are installed, and returns the path of
// logprobs.mjs.
func requireLlamaCpp(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("llama.cpp conformance skipped: node is not on PATH")
	}
	dir := filepath.Join(sharedtest.RepoRoot(t), "conformance", "llamacpp")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-llama-cpp")); err != nil {
		t.Skipf("llama.cpp conformance skipped: %s lacks node_modules/node-llama-cpp; `make conformance/llamacpp/node_modules` installs it", dir)
	}
	return filepath.Join(dir, "logprobs.mjs")
}

// alignkitBinary returns the CLI to run: $ALIGNKIT_CLI when set, else a binary built once from
// ./cmd/alignkit with this test binary's BLAS tag.
func alignkitBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ALIGNKIT_CLI"); p != "" {
		return p
	}
	h.buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			h.buildErr = fmt.Errorf("building the alignkit CLI: %w", err)
			return
		}
		out := filepath.Join(h.tmp, "alignkit")
		args := []string{"build", "-o", out}
		env := os.Environ()
		if openblas {
			args = append(args, "-tags", "openblas")
			if !strings.Contains(os.Getenv("CGO_LDFLAGS"), "-lopenblas") {
				env = append(env, "CGO_LDFLAGS="+strings.TrimSpace(os.Getenv("CGO_LDFLAGS")+" -lopenblas"))
			}
		}
		cmd := exec.Command(goBin, append(args, "./cmd/alignkit")...)
		cmd.Dir, cmd.Env = sharedtest.RepoRoot(t), env
		if msg, err := cmd.CombinedOutput(); err != nil {
			h.buildErr = fmt.Errorf("go %s: %v: %s", strings.Join(cmd.Args[1:], " "), err, msg)
			return
		}
		h.cli = out
	})
	if h.buildErr != nil {
		t.Fatal(h.buildErr)
	}
	return h.cli
}

// cli runs `alignkit args...` from the repository root (so the shipped configs' relative paths
// resolve) and returns its stdout; a failure fails the test with the error line.
func cli(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(alignkitBinary(t), args...)
	cmd.Dir = sharedtest.RepoRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("alignkit %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out)
}

// tokenize is `alignkit tokenize --json`: the text's ids, with BOS as the tokenizer says.
func tokenize(t testing.TB, modelPath, text string) []int32 {
	t.Helper()
	var out struct {
		IDs []int32 `json:"ids"`
	}
	if err := json.Unmarshal([]byte(cli(t, "tokenize", "--model", modelPath, "--text", text, "--json")), &out); err != nil {
		t.Fatalf("alignkit tokenize --json: %v", err)
	}
	return out.IDs
}

// logProbs is `alignkit logits --json` with every vocabulary entry listed (--top larger than any
// vocabulary), made dense: rows[i][id] = log p(id | tokens[:i+1]).
func logProbs(t testing.TB, modelPath string, tokens []int32) [][]float64 {
	t.Helper()
	var out struct {
		IDs       []int32        `json:"ids"`
		Positions [][][2]float64 `json:"positions"`
	}
	raw := cli(t, "logits", "--model", modelPath, "--tokens", joinIDs(tokens), "--top", "1000000000", "--json")
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("alignkit logits --json: %v", err)
	}
	if len(out.Positions) != len(tokens) {
		t.Fatalf("alignkit logits: %d positions for %d tokens", len(out.Positions), len(tokens))
	}
	rows := make([][]float64, len(out.Positions))
	for i, pos := range out.Positions {
		rows[i] = make([]float64, len(pos))
		seen := make([]bool, len(pos))
		for _, p := range pos {
			id := int(p[0])
			if id < 0 || id >= len(pos) || seen[id] {
				t.Fatalf("alignkit logits: position %d lists id %v twice or outside the vocabulary", i, p[0])
			}
			rows[i][id], seen[id] = p[1], true
		}
	}
	return rows
}

// llamaRun is one line of logprobs.mjs's output: the log-softmax after each input position (JSON null
// is a probability that underflowed to 0) and the greedy continuation.
type llamaRun struct {
	Logprobs [][]*float64 `json:"logprobs"`
	Greedy   []int32      `json:"greedy"`
}

// llamaCpp runs llama.cpp once on the GGUF for every token list (each from an empty cache) and
// returns one result per list, with a greedy continuation of the given length after each.
func llamaCpp(t testing.TB, ggufPath string, seqs [][]int32, greedy int) []llamaRun {
	t.Helper()
	script := requireLlamaCpp(t)
	args := []string{script, "--model", ggufPath, "--greedy", fmt.Sprint(greedy)}
	for _, s := range seqs {
		args = append(args, "--tokens", joinIDs(s))
	}
	cmd := exec.Command("node", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("llama.cpp on %s: %v: %s", ggufPath, err, strings.TrimSpace(stderr.String()))
	}
	var runs []llamaRun
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<30)
	for sc.Scan() {
		var r llamaRun
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("llama.cpp output line %d: %v", len(runs)+1, err)
		}
		runs = append(runs, r)
	}
	if len(runs) != len(seqs) {
		t.Fatalf("llama.cpp printed %d results for %d token lists", len(runs), len(seqs))
	}
	for i, r := range runs {
		if len(r.Logprobs) != len(seqs[i]) || len(r.Greedy) != greedy {
			t.Fatalf("llama.cpp list %d: %d rows and %d greedy ids for %d tokens and --greedy %d", i+1, len(r.Logprobs), len(r.Greedy), len(seqs[i]), greedy)
		}
	}
	t.Logf("llama.cpp: %d lists on %s in %.1fs", len(seqs), filepath.Base(ggufPath), time.Since(start).Seconds())
	return runs
}

// diff is how far llama.cpp's log-probs are from alignkit's over every position and vocabulary entry.
type diff struct {
	Max           float64
	Seq, Pos, ID  int // where Max is
	Compared      int // entries compared
	Skipped       int // entries below underflow in alignkit's output
	Top1, Top1Pos int // positions where the most likely token agrees, of Top1Pos
}

// add folds one sequence's comparison into d.
func (d *diff) add(seq int, ours [][]float64, theirs llamaRun) {
	for pos, row := range ours {
		for id, want := range row {
			if want < underflow {
				d.Skipped++
				continue
			}
			got := math.Inf(-1)
			if p := theirs.Logprobs[pos][id]; p != nil {
				got = *p
			}
			d.Compared++
			if e := math.Abs(got - want); e > d.Max || math.IsNaN(e) {
				d.Max, d.Seq, d.Pos, d.ID = e, seq, pos, id
				if math.IsNaN(e) {
					d.Max = math.Inf(1)
				}
			}
		}
		d.Top1Pos++
		if argmax(row) == argmaxLlama(theirs.Logprobs[pos]) {
			d.Top1++
		}
	}
}

func (d diff) String() string {
	return fmt.Sprintf("max |Δ log p| %.3g (list %d, position %d, token %d) over %d entries (%d below e^%g skipped); top-1 agrees at %d/%d positions",
		d.Max, d.Seq+1, d.Pos, d.ID, d.Compared, d.Skipped, underflow, d.Top1, d.Top1Pos)
}

// compareAll runs alignkit logits on modelPath for every list and compares with llama.cpp's runs.
func compareAll(t testing.TB, modelPath string, seqs [][]int32, runs []llamaRun) diff {
	t.Helper()
	var d diff
	for i, s := range seqs {
		d.add(i, logProbs(t, modelPath, s), runs[i])
	}
	return d
}

// argmax is the most likely id of a row, the lowest id on ties.
func argmax(row []float64) int {
	best := 0
	for id, v := range row {
		if v > row[best] {
			best = id
		}
	}
	return best
}

func argmaxLlama(row []*float64) int {
	best, bestV := 0, math.Inf(-1)
	for id, p := range row {
		if p != nil && *p > bestV {
			best, bestV = id, *p
		}
	}
	return best
}

func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

// firstN returns the first n ids, failing when there are fewer.
func firstN(t testing.TB, ids []int32, n int) []int32 {
	t.Helper()
	if len(ids) < n {
		t.Fatalf("the text has %d tokens, want at least %d", len(ids), n)
	}
	return ids[:n]
}
