// Package board serves a run dashboard: a web page on loopback that lists every training run under a
// directory and draws its metrics.jsonl curves as they grow, its run_config.json, and its eval
// results (gatt_eval.json, reward_vs_k.json, win-rate and summary JSON), with runs overlaid for
// comparison.
//
// The JSON API the page polls:
//
//	GET /api/runs                          {"root": DIR, "runs": [{"id", "path", "files": [...]}]}
//	GET /api/runs/{id}/metrics?from=N      {"run", "from", "next", "points": [{"line", "values"}], "errors": [{"line", "error"}]}
//	GET /api/runs/{id}/config              {"run", "config": {...}}
//	GET /api/runs/{id}/evals               {"run", "evals": {"gatt_eval.json": {...}, ...}, "errors": [...]}
//
// A run is a directory holding metrics.jsonl or an eval result, found at most MaxDepth directories below DIR; its id is
// its slash-separated path relative to DIR (URL-escaped in the path, so "a/b" is "a%2Fb"). Every
// file the server reads is resolved through symlinks and must lie inside DIR, so neither "..", an
// absolute id nor a symlink can make it serve a file from elsewhere.
package board

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// File names the board reads in a run directory.
const (
	MetricsFile = "metrics.jsonl"   // train.Run's log: one JSON object per logged step
	ConfigFile  = "run_config.json" // train.WithConfig's record of the run's config
)

// MaxDepth is how many directories below the root a run may lie (root/a/b/c/d is depth 4).
const MaxDepth = 4

// Limits on what one request reads, so a huge or corrupt file cannot exhaust memory.
const (
	maxLineBytes = 1 << 20  // one metrics.jsonl line
	maxJSONBytes = 16 << 20 // one config or eval file
)

// evalFiles are the eval results the board shows when a run directory holds them.
var evalFiles = []string{"gatt_eval.json", "reward_vs_k.json", "sample_complete.json", "training_complete.json", "summary.json", "results.json", "eval.json", "gatt_summary.json", "win_rate.json", "win_rates.json"}

//go:embed page
var pageFS embed.FS

// Server serves one root directory's runs. It holds no state besides the root: every request reads
// the files afresh, so a run that appears or grows is seen on the next poll.
type Server struct {
	root string // absolute, symlinks resolved
}

// New returns a Server over dir, which must be an existing directory.
func New(dir string) (*Server, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("board: %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("board: %w", err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("board: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("board: %s is not a directory", dir)
	}
	return &Server{root: real}, nil
}

// Root is the directory served (absolute, symlinks resolved).
func (s *Server) Root() string { return s.root }

// Handler serves the page at / and the JSON API under /api/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	page, err := fs.Sub(pageFS, "page")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux.Handle("GET /", http.FileServerFS(page))
	mux.HandleFunc("GET /api/runs", s.handleRuns)
	mux.HandleFunc("GET /api/runs/{id}/metrics", s.handleMetrics)
	mux.HandleFunc("GET /api/runs/{id}/config", s.handleConfig)
	mux.HandleFunc("GET /api/runs/{id}/evals", s.handleEvals)
	return loopbackHost(mux)
}

// loopbackHost refuses a request whose Host header is not a loopback name or address. The board
// listens on loopback only, but a web page elsewhere could still reach it through DNS rebinding (its
// own name resolving to 127.0.0.1); the browser then sends that name as Host, so it is refused here.
func loopbackHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		ip := net.ParseIP(strings.Trim(host, "[]"))
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			fail(w, http.StatusForbidden, "host %q is not loopback: the board answers only requests to localhost, 127.0.0.1 or [::1]", r.Host)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// IsLoopback reports whether addr (host:port) listens only on loopback: localhost or a loopback IP.
// An empty host (all interfaces) is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckAddr refuses an address that is not loopback: the board serves the files under its root to
// whoever can reach it, and has no authentication.
func CheckAddr(addr string) error {
	if !IsLoopback(addr) {
		return fmt.Errorf("board: %s is not a loopback address; the board serves files and has no authentication, so it listens only on 127.0.0.1, ::1 or localhost", addr)
	}
	return nil
}

// Run is one run directory in /api/runs.
type Run struct {
	ID    string   `json:"id"`    // slash path relative to the root ("." for the root itself)
	Files []string `json:"files"` // the board files present: metrics.jsonl, run_config.json, eval files
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...)})
}

// Runs lists the runs under the root, sorted by id. Symlinked directories are not followed, and a
// metrics.jsonl that resolves outside the root is not a run.
func (s *Server) Runs() ([]Run, error) {
	var runs []Run
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == s.root {
				return err
			}
			return nil // an unreadable subdirectory hides its runs, not everyone's
		}
		if !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(s.root, p)
		depth := 0
		if rel != "." {
			depth = strings.Count(rel, string(filepath.Separator)) + 1
		}
		if depth > MaxDepth {
			return fs.SkipDir
		}
		if files := s.runFiles(p); files != nil {
			runs = append(runs, Run{ID: filepath.ToSlash(rel), Files: files})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("board: listing runs under %s: %w", s.root, err)
	}
	slices.SortFunc(runs, func(a, b Run) int { return strings.Compare(a.ID, b.ID) })
	return runs, nil
}

// inside resolves p through symlinks and returns it when it is a regular file inside the root.
func (s *Server) inside(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(s.root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%s is outside the board's root", p)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", p)
	}
	return real, nil
}

// runFiles lists the board files dir holds inside the root, or nil when dir is not a run: a run has
// metrics.jsonl (a training run) or an eval result (an eval's output_dir, such as gatt eval's,
// has no metrics.jsonl); training_complete.json alone does not make one.
func (s *Server) runFiles(dir string) []string {
	var files []string
	isRun := false
	for _, name := range append([]string{MetricsFile, ConfigFile}, evalFiles...) {
		if _, err := s.inside(filepath.Join(dir, name)); err == nil {
			files = append(files, name)
			isRun = isRun || (name != ConfigFile && name != "training_complete.json")
		}
	}
	if !isRun {
		return nil
	}
	return files
}

// runDir checks a run id from a URL and returns the run's directory and its files. It writes the
// error response (400 for a malformed id, 404 for a directory that is not a run under the root) and
// returns ok=false when the id is refused.
func (s *Server) runDir(w http.ResponseWriter, id string) (dir string, files []string, ok bool) {
	if err := checkID(id); err != nil {
		fail(w, http.StatusBadRequest, "run id %q: %v", id, err)
		return "", nil, false
	}
	dir = filepath.Join(s.root, filepath.FromSlash(id))
	if files = s.runFiles(dir); files == nil {
		fail(w, http.StatusNotFound, "run %q: not a run under the board's root (no %s or eval result)", id, MetricsFile)
		return "", nil, false
	}
	return dir, files, true
}

// runFile is runDir's answer for one file of the run: its path resolved inside the root, or a 404
// when the run lacks it.
func (s *Server) runFile(w http.ResponseWriter, id, name string) (string, bool) {
	dir, files, ok := s.runDir(w, id)
	if !ok {
		return "", false
	}
	real, err := s.inside(filepath.Join(dir, name))
	if err != nil || !slices.Contains(files, name) {
		fail(w, http.StatusNotFound, "run %q: no %s", id, name)
		return "", false
	}
	return real, true
}

// checkID accepts a clean relative slash path of at most MaxDepth elements, or ".".
func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("empty")
	case id == ".":
		return nil
	case strings.HasPrefix(id, "/") || strings.Contains(id, `\`) || filepath.IsAbs(id):
		return errors.New("must be relative to the board's root")
	case path.Clean(id) != id:
		return errors.New("must be a clean path")
	}
	elems := strings.Split(id, "/")
	if slices.Contains(elems, "..") {
		return errors.New(`must not contain ".."`)
	}
	if len(elems) > MaxDepth {
		return fmt.Errorf("deeper than %d directories", MaxDepth)
	}
	return nil
}

func (s *Server) handleRuns(w http.ResponseWriter, _ *http.Request) {
	runs, err := s.Runs()
	if err != nil {
		fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if runs == nil {
		runs = []Run{}
	}
	writeJSON(w, http.StatusOK, struct {
		Root string `json:"root"`
		Runs []Run  `json:"runs"`
	}{s.root, runs})
}

// Point is one metrics.jsonl line: its 0-based line number and its values (null for NaN, as
// train.Run writes it).
type Point struct {
	Line   int                 `json:"line"`
	Values map[string]*float64 `json:"values"`
}

// LineError reports a metrics.jsonl line that is not a JSON object of numbers.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// Metrics is the answer to /api/runs/{id}/metrics?from=N: the complete lines from N on. Next is the
// from= of the following poll. A last line without its newline is still being written and waits.
type Metrics struct {
	Run    string      `json:"run"`
	From   int         `json:"from"`
	Next   int         `json:"next"`
	Points []Point     `json:"points"`
	Errors []LineError `json:"errors"`
}

// ReadMetrics reads the complete lines of a metrics.jsonl stream from line from on. A malformed line
// becomes a LineError (line numbers in its text are 1-based, as an editor shows them); a line longer
// than the limit stops the read there with an error, so Next does not pass it.
func ReadMetrics(r io.Reader, name string, from int) ([]Point, []LineError, int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	points, errs := []Point{}, []LineError{}
	for n := 0; ; n++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return points, errs, n, nil // a partial last line (no newline) is not consumed
		}
		if errors.Is(err, errLineTooLong) {
			errs = append(errs, LineError{n, fmt.Sprintf("%s line %d: longer than %d bytes", name, n+1, maxLineBytes)})
			return points, errs, n, nil
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("reading %s: %w", name, err)
		}
		if n < from {
			continue
		}
		vals, perr := parseLine(line)
		if perr != nil {
			errs = append(errs, LineError{n, fmt.Sprintf("%s line %d: %v", name, n+1, perr)})
			continue
		}
		points = append(points, Point{n, vals})
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next newline-terminated line without its newline; io.EOF when no complete
// line is left.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLineBytes+1 {
			// Skip the rest so that the caller could go on; it stops instead, as the line is corrupt.
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

// parseLine decodes one metrics line: a JSON object whose values are numbers or null.
func parseLine(line []byte) (map[string]*float64, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if raw == nil {
		return nil, errors.New("not a JSON object: null")
	}
	vals := make(map[string]*float64, len(raw))
	for k, v := range raw {
		if string(v) == "null" {
			vals[k] = nil
			continue
		}
		var f float64
		if err := json.Unmarshal(v, &f); err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("key %q: want a number or null, got %s", k, v)
		}
		vals[k] = &f
	}
	return vals, nil
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	from := 0
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fail(w, http.StatusBadRequest, "from: want a line number >= 0, got %q", v)
			return
		}
		from = n
	}
	dir, files, ok := s.runDir(w, id)
	if !ok {
		return
	}
	if !slices.Contains(files, MetricsFile) {
		// An eval-only run, or a run whose first step is not logged yet: nothing so far.
		writeJSON(w, http.StatusOK, Metrics{Run: id, From: from, Next: from, Points: []Point{}, Errors: []LineError{}})
		return
	}
	p, err := s.inside(filepath.Join(dir, MetricsFile))
	if err != nil {
		fail(w, http.StatusNotFound, "run %q: no %s", id, MetricsFile)
		return
	}
	f, err := os.Open(p)
	if err != nil {
		fail(w, http.StatusInternalServerError, "run %q: %v", id, err)
		return
	}
	defer f.Close()
	points, errs, next, err := ReadMetrics(f, MetricsFile, from)
	if err != nil {
		fail(w, http.StatusInternalServerError, "run %q: %v", id, err)
		return
	}
	if next < from {
		next = from // the file shrank (a resume rewrote it): keep the client's place
	}
	writeJSON(w, http.StatusOK, Metrics{Run: id, From: from, Next: next, Points: points, Errors: errs})
}

// readJSON reads a JSON file of at most maxJSONBytes and checks that it is JSON.
func readJSON(p, name string) (json.RawMessage, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJSONBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxJSONBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxJSONBytes)
	}
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return nil, fmt.Errorf("%s: not valid JSON: %v", name, err)
	}
	return json.RawMessage(bytes.TrimSpace(b)), nil
}

func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, ok := s.runFile(w, id, ConfigFile)
	if !ok {
		return
	}
	raw, err := readJSON(p, ConfigFile)
	if err != nil {
		fail(w, http.StatusUnprocessableEntity, "run %q: %v", id, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Run    string          `json:"run"`
		Config json.RawMessage `json:"config"`
	}{id, raw})
}

func (s *Server) handleEvals(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	dir, _, ok := s.runDir(w, id)
	if !ok {
		return
	}
	evals := map[string]json.RawMessage{}
	errs := []string{}
	for _, name := range evalFiles {
		p, err := s.inside(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		raw, err := readJSON(p, name)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		evals[name] = raw
	}
	writeJSON(w, http.StatusOK, struct {
		Run    string                     `json:"run"`
		Evals  map[string]json.RawMessage `json:"evals"`
		Errors []string                   `json:"errors"`
	}{id, evals, errs})
}
