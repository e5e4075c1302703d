package board

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// write creates root/rel with its directories.
func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixture is a board root with two runs, a run too deep to list, and three ways out of the root:
// a symlinked directory, a symlinked metrics.jsonl and a symlinked run_config.json. It returns the
// root and the directory outside it.
func fixture(t *testing.T) (root, outside string) {
	t.Helper()
	tmp := t.TempDir()
	root, outside = filepath.Join(tmp, "root"), filepath.Join(tmp, "outside")
	write(t, outside, "metrics.jsonl", `{"step":1,"secret":1}`+"\n")
	write(t, outside, "run_config.json", `{"secret":true}`)
	write(t, root, "run-a/metrics.jsonl", `{"step":1,"loss":2.5}`+"\n"+`{"step":2,"loss":2,"eval_loss":2.25}`+"\n")
	write(t, root, "run-a/run_config.json", `{"learning_rate": 0.001, "output_dir": "run-a"}`+"\n")
	write(t, root, "run-a/gatt_eval.json", `{"turns":2,"models":[{"label":"m","model":"m","turns":[{"turn":1,"checked":2,"adherent":1,"percent":50}]}]}`)
	write(t, root, "run-a/reward_vs_k.json", `{"temperature":1,"n":[1,2],"expected_max":[0.5,0.75],"median":[0.5,0.5]}`)
	// run-b: a malformed line, a null (NaN), a string value, and a last line still being written.
	write(t, root, "group/run-b/metrics.jsonl", `{"step":1,"loss":3}`+"\nnot json\n"+`{"step":3,"loss":null}`+"\n"+`{"step":4,"loss":"x"}`+"\n"+`{"step":5`)
	write(t, root, "group/run-b/summary.json", `{"win_rate": 0.5`)         // truncated
	write(t, root, "gatt-eval/gatt_eval.json", `{"turns":1,"models":[]}`)  // an eval-only run
	write(t, root, "done-only/training_complete.json", `{"train_loss":1}`) // not a run by itself
	write(t, root, "a/b/c/d/e/metrics.jsonl", `{"step":1}`+"\n")           // depth 5: not a run
	for _, l := range []struct{ target, link string }{
		{outside, filepath.Join(root, "linked")},
		{filepath.Join(outside, "metrics.jsonl"), filepath.Join(root, "run-c", "metrics.jsonl")},
		{filepath.Join(outside, "run_config.json"), filepath.Join(root, "group", "run-b", "run_config.json")},
	} {
		if err := os.MkdirAll(filepath.Dir(l.link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(l.target, l.link); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

func startBoard(t *testing.T, root string) string {
	t.Helper()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	root, _ := fixture(t)
	base := startBoard(t, root)
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		code       int
		body       string
	}{
		{"runs", "/api/runs", 200, `{"root":"` + real + `","runs":[` +
			`{"id":"gatt-eval","files":["gatt_eval.json"]},` +
			`{"id":"group/run-b","files":["metrics.jsonl","summary.json"]},` +
			`{"id":"run-a","files":["metrics.jsonl","run_config.json","gatt_eval.json","reward_vs_k.json"]}]}`},
		{"metrics", "/api/runs/run-a/metrics", 200, `{"run":"run-a","from":0,"next":2,"points":[` +
			`{"line":0,"values":{"loss":2.5,"step":1}},{"line":1,"values":{"eval_loss":2.25,"loss":2,"step":2}}],"errors":[]}`},
		{"metrics from", "/api/runs/run-a/metrics?from=1", 200, `{"run":"run-a","from":1,"next":2,"points":[` +
			`{"line":1,"values":{"eval_loss":2.25,"loss":2,"step":2}}],"errors":[]}`},
		{"metrics at end", "/api/runs/run-a/metrics?from=2", 200, `{"run":"run-a","from":2,"next":2,"points":[],"errors":[]}`},
		{"metrics past end keeps from", "/api/runs/run-a/metrics?from=7", 200, `{"run":"run-a","from":7,"next":7,"points":[],"errors":[]}`},
		{"malformed lines reported", "/api/runs/group%2Frun-b/metrics", 200, `{"run":"group/run-b","from":0,"next":4,"points":[` +
			`{"line":0,"values":{"loss":3,"step":1}},{"line":2,"values":{"loss":null,"step":3}}],"errors":[` +
			`{"line":1,"error":"metrics.jsonl line 2: not a JSON object: invalid character 'o' in literal null (expecting 'u')"},` +
			`{"line":3,"error":"metrics.jsonl line 4: key \"loss\": want a number or null, got \"x\""}]}`},
		{"eval-only run has no metrics yet", "/api/runs/gatt-eval/metrics?from=3", 200, `{"run":"gatt-eval","from":3,"next":3,"points":[],"errors":[]}`},
		{"eval-only run's evals", "/api/runs/gatt-eval/evals", 200, `{"run":"gatt-eval","evals":{"gatt_eval.json":{"turns":1,"models":[]}},"errors":[]}`},
		{"training_complete.json alone", "/api/runs/done-only/evals", 404, `{"error":"run \"done-only\": not a run under the board's root (no metrics.jsonl or eval result)"}`},
		{"bad from", "/api/runs/run-a/metrics?from=-1", 400, `{"error":"from: want a line number \u003e= 0, got \"-1\""}`},
		{"config", "/api/runs/run-a/config", 200, `{"run":"run-a","config":{"learning_rate":0.001,"output_dir":"run-a"}}`},
		{"evals", "/api/runs/run-a/evals", 200, `{"run":"run-a","evals":{` +
			`"gatt_eval.json":{"turns":2,"models":[{"label":"m","model":"m","turns":[{"turn":1,"checked":2,"adherent":1,"percent":50}]}]},` +
			`"reward_vs_k.json":{"temperature":1,"n":[1,2],"expected_max":[0.5,0.75],"median":[0.5,0.5]}},"errors":[]}`},
		{"malformed eval reported", "/api/runs/group%2Frun-b/evals", 200, `{"run":"group/run-b","evals":{},"errors":["summary.json: not valid JSON: unexpected end of JSON input"]}`},
		{"no config", "/api/runs/group%2Frun-b/config", 404, `{"error":"run \"group/run-b\": no run_config.json"}`},
		{"unknown run", "/api/runs/nope/metrics", 404, `{"error":"run \"nope\": not a run under the board's root (no metrics.jsonl or eval result)"}`},
		{"too deep", "/api/runs/a%2Fb%2Fc%2Fd%2Fe/metrics", 400, `{"error":"run id \"a/b/c/d/e\": deeper than 4 directories"}`},
		// Ways out of the root.
		{"dotdot", "/api/runs/..%2Foutside/metrics", 400, `{"error":"run id \"../outside\": must not contain \"..\""}`},
		{"dotdot inside", "/api/runs/run-a%2F..%2F..%2Foutside/config", 400, `{"error":"run id \"run-a/../../outside\": must be a clean path"}`},
		{"dotdot alone", "/api/runs/..%2F/metrics", 400, `{"error":"run id \"../\": must be a clean path"}`},
		{"absolute", "/api/runs/%2Fetc/metrics", 400, `{"error":"run id \"/etc\": must be relative to the board's root"}`},
		{"absolute outside", "/api/runs/" + strings.ReplaceAll(root, "/", "%2F") + "%2F..%2Foutside/config", 400,
			`{"error":"run id \"` + root + `/../outside\": must be relative to the board's root"}`},
		{"symlinked dir", "/api/runs/linked/metrics", 404, `{"error":"run \"linked\": not a run under the board's root (no metrics.jsonl or eval result)"}`},
		{"symlinked metrics", "/api/runs/run-c/metrics", 404, `{"error":"run \"run-c\": not a run under the board's root (no metrics.jsonl or eval result)"}`},
		{"symlinked config", "/api/runs/group%2Frun-b/config", 404, `{"error":"run \"group/run-b\": no run_config.json"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, base+tc.path)
			if code != tc.code || strings.TrimSpace(body) != tc.body {
				t.Errorf("GET %s = %d\n%s\nwant %d\n%s", tc.path, code, body, tc.code, tc.body)
			}
		})
	}
}

// A run at the root itself has id "."; the page asks for it as %2E, which the mux does not clean away.
func TestRootRun(t *testing.T) {
	root := t.TempDir()
	write(t, root, "metrics.jsonl", `{"step":1}`+"\n")
	base := startBoard(t, root)
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, body string }{
		{"/api/runs", `{"root":"` + real + `","runs":[{"id":".","files":["metrics.jsonl"]}]}`},
		{"/api/runs/%2E/metrics", `{"run":".","from":0,"next":1,"points":[{"line":0,"values":{"step":1}}],"errors":[]}`},
	} {
		if code, body := get(t, base+tc.path); code != 200 || strings.TrimSpace(body) != tc.body {
			t.Errorf("GET %s = %d %s, want 200 %s", tc.path, code, body, tc.body)
		}
	}
}

// A request naming another host (DNS rebinding: a page whose name resolves to 127.0.0.1) is refused.
func TestForeignHostRefused(t *testing.T) {
	root, _ := fixture(t)
	base := startBoard(t, root)
	for _, tc := range []struct {
		host string
		code int
	}{
		{"evil.example:6006", 403},
		{"10.0.0.1", 403},
		{"localhost:6006", 200},
		{"127.0.0.1:6006", 200},
		{"[::1]:6006", 200},
	} {
		req, err := http.NewRequest("GET", base+"/api/runs", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tc.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := `{"error":"host \"` + tc.host + `\" is not loopback: the board answers only requests to localhost, 127.0.0.1 or [::1]"}`
		if resp.StatusCode != tc.code || (tc.code == 403 && strings.TrimSpace(string(b)) != want) {
			t.Errorf("Host %s: %d %s, want %d", tc.host, resp.StatusCode, b, tc.code)
		}
	}
}

// An unescaped ".." never reaches a handler: the mux cleans the path and redirects, and the
// cleaned path is not under /api/runs/{id}/.
func TestAPIRawDotDot(t *testing.T) {
	root, _ := fixture(t)
	base := startBoard(t, root)
	code, body := get(t, base+"/api/runs/../../outside/metrics")
	if code < 400 || code > 499 || strings.Contains(body, "secret") {
		t.Errorf("GET /api/runs/../../outside/metrics = %d %q, want a 4xx without the outside file", code, body)
	}
}

func TestPage(t *testing.T) {
	root, _ := fixture(t)
	base := startBoard(t, root)
	for _, p := range []string{"/", "/board.js", "/board.css"} {
		code, body := get(t, base+p)
		if code != 200 || len(body) < 100 {
			t.Errorf("GET %s = %d, %d bytes", p, code, len(body))
		}
	}
	if _, body := get(t, base+"/"); !strings.Contains(body, `<script src="board.js">`) {
		t.Errorf("index.html does not load board.js:\n%s", body)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:6006", true},
		{"127.0.0.1:0", true},
		{"[::1]:6006", true},
		{"localhost:6006", true},
		{":6006", false},
		{"0.0.0.0:6006", false},
		{"192.168.1.2:6006", false},
		{"[::]:6006", false},
		{"example.com:6006", false},
		{"127.0.0.1", false},
	} {
		err := CheckAddr(tc.addr)
		if tc.ok && err != nil {
			t.Errorf("CheckAddr(%q) = %v, want nil", tc.addr, err)
		}
		if !tc.ok {
			want := "board: " + tc.addr + " is not a loopback address; the board serves files and has no authentication, so it listens only on 127.0.0.1, ::1 or localhost"
			if err == nil || err.Error() != want {
				t.Errorf("CheckAddr(%q) = %v, want %q", tc.addr, err, want)
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "file", "x")
	if _, err := New(filepath.Join(dir, "file")); err == nil || err.Error() != "board: "+filepath.Join(dir, "file")+" is not a directory" {
		t.Errorf("New(file) = %v", err)
	}
	if _, err := New(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("New(missing) = %v", err)
	}
}

// A line longer than the limit is reported and stops the read there, without reading it whole.
func TestReadMetricsLongLine(t *testing.T) {
	in := `{"step":1}` + "\n" + `{"x":"` + strings.Repeat("a", maxLineBytes) + `"}` + "\n" + `{"step":3}` + "\n"
	points, errs, next, err := ReadMetrics(strings.NewReader(in), "m.jsonl", 0)
	if err != nil || len(points) != 1 || next != 1 || len(errs) != 1 || errs[0].Error != "m.jsonl line 2: longer than 1048576 bytes" {
		t.Errorf("ReadMetrics = %v, %v, %d, %v", points, errs, next, err)
	}
}
