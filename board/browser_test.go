package board

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromium finds a headless-capable Chromium: $ALIGNKIT_CHROMIUM, then chromium or chromium-browser
// on PATH, then Debian's /usr/bin/chromium.
func chromium() string {
	if p := os.Getenv("ALIGNKIT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// dumpDOM loads url in headless Chromium, lets virtual time run for budget (so the page's timers
// and polls fire), and returns the DOM as serialized after that.
func dumpDOM(t *testing.T, bin, url string, budget time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget="+strconv.Itoa(int(budget/time.Millisecond)),
		"--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, stderr.String())
	}
	return string(out)
}

// TestBrowser loads the board in headless Chromium over two runs and checks the DOM: both runs
// listed, one chart per metric with a line per run of the right length, and, after the server
// appends a line to run-a's metrics.jsonl behind the page's first metrics request, the curve one
// point longer with the per-poll history showing the growth within one page load.
func TestBrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("chromium not found (install Debian's chromium, or set ALIGNKIT_CHROMIUM): skipping the headless-browser test")
	}
	root := t.TempDir()
	write(t, root, "run-a/metrics.jsonl", `{"step":1,"loss":2.5,"learning_rate":0.001}`+"\n"+`{"step":2,"loss":2,"learning_rate":0.001}`+"\n"+`{"step":3,"loss":1.5,"learning_rate":0.0005}`+"\n")
	write(t, root, "run-a/run_config.json", `{"learning_rate":0.001,"beta":0.1}`)
	write(t, root, "sweep/run-b/metrics.jsonl", `{"step":1,"loss":3}`+"\n"+"oops\n"+`{"step":2,"loss":2.75,"eval_loss":2.8}`+"\n")
	write(t, root, "sweep/run-b/run_config.json", `{"learning_rate":0.002,"beta":0.1}`)
	write(t, root, "sweep/run-b/summary.json", `{"rounds":[{"round":1,"mean_reward":0.5,"sft_examples":null},{"round":2,"mean_reward":0.75,"sft_examples":8}]}`)
	write(t, root, "gatt-eval/gatt_eval.json", `{"turns":1,"models":[{"label":"base","model":"m","turns":[{"turn":1,"checked":2,"adherent":1,"percent":50}]}]}`)
	write(t, root, "sweep/run-b/gatt_eval.json", `{"turns":2,"models":[{"label":"gatt","model":"m","turns":[{"turn":1,"checked":4,"adherent":4,"percent":100},{"turn":2,"checked":4,"adherent":3,"percent":75}]}]}`)
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	// Append run-a's 4th line once its first metrics request has been answered.
	var once sync.Once
	h := s.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/api/runs/run-a/metrics" {
			once.Do(func() {
				f, err := os.OpenFile(filepath.Join(root, "run-a", "metrics.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
				if err == nil {
					_, err = f.WriteString(`{"step":4,"loss":1.25,"learning_rate":0.0005}` + "\n")
					f.Close()
				}
				if err != nil {
					t.Errorf("appending a line: %v", err)
				}
			})
		}
	}))
	defer ts.Close()

	dom := dumpDOM(t, bin, ts.URL+"/", 7*time.Second)
	if !strings.Contains(dom, "<h1>alignkit board</h1>") {
		t.Fatalf("the page did not load:\n%s", dom)
	}
	find := func(re string) []string {
		m := regexp.MustCompile(re).FindStringSubmatch(dom)
		if m == nil {
			t.Errorf("DOM has no match for %s", re)
			return make([]string, 4)
		}
		return m
	}
	for _, id := range []string{"gatt-eval", "run-a", "sweep/run-b"} {
		find(`<li class="run" data-run="` + regexp.QuoteMeta(id) + `"`)
	}
	// One chart per metric (step is the x axis), a line per run that logs it.
	want := map[string]map[string]string{
		"loss":          {"run-a": "4", "sweep/run-b": "2"},
		"learning_rate": {"run-a": "4"},
		"eval_loss":     {"sweep/run-b": "1"},
	}
	charts := regexp.MustCompile(`(?s)<div class="chart" data-metric="([^"]+)">(.*?)</div>`).FindAllStringSubmatch(dom, -1)
	got := map[string]map[string]string{}
	for _, c := range charts {
		got[c[1]] = map[string]string{}
		for _, l := range regexp.MustCompile(`<polyline class="series" data-run="([^"]+)" data-points="(\d+)"`).FindAllStringSubmatch(c[2], -1) {
			got[c[1]][l[1]] = l[2]
		}
	}
	if len(got) != len(want) {
		t.Errorf("charts %v, want %v", got, want)
	}
	for metric, lines := range want {
		for run, n := range lines {
			if got[metric][run] != n {
				t.Errorf("chart %s, run %s: %q points, want %s (charts %v)", metric, run, got[metric][run], n, got)
			}
		}
	}
	// The history: the first poll saw run-a's 3 lines, a later one 4, all in one page load.
	hist := find(`<body data-polls="(\d+)" data-history="([^"]*)"`)
	polls := strings.Split(hist[2], ";")
	if len(polls) < 2 || polls[0] != "gatt-eval:0,run-a:3,sweep/run-b:2" || polls[len(polls)-1] != "gatt-eval:0,run-a:4,sweep/run-b:2" || hist[1] != strconv.Itoa(len(polls)) {
		t.Errorf("poll history %q (%s polls), want gatt-eval:0,run-a:3,sweep/run-b:2 first and gatt-eval:0,run-a:4,sweep/run-b:2 last", hist[2], hist[1])
	}
	// The malformed line of run-b is reported under its run.
	find(`<li class="error">metrics.jsonl line 2: not a JSON object: invalid character 'o' looking for beginning of value</li>`)
	// Evals and configs.
	find(`<div class="chart" data-eval="gatt_eval.json" data-run="sweep/run-b"><h3>GAtt adherence by turn \(%\)</h3>.*?data-points="2"`)
	find(`<td>75.0 \(3/4\)</td>`)
	find(`<div class="eval" data-file="gatt_eval.json"><h4>gatt_eval.json</h4><table class="gatt"><tr><th>turn</th><th>base % adherent</th></tr><tr><td>1</td><td>50.0 \(1/2\)</td></tr></table>`)
	find(`<div>rounds</div><table class="rows" data-key="rounds"><tr><th>round</th><th>mean_reward</th><th>sft_examples</th></tr><tr><td>1</td><td>0.5</td><td>—</td></tr><tr><td>2</td><td>0.75</td><td>8</td></tr></table>`)
	find(`<tr data-key="learning_rate" style="background: rgb\(255, 244, 208\);"><td>learning_rate</td><td>0.001</td><td>0.002</td></tr>`)
	find(`<tr data-key="beta"><td>beta</td><td>0.1</td><td>0.1</td></tr>`)
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	// ?runs= picks the runs compared: only run-a's lines are drawn, and run-b stays listed, unchecked.
	dom = dumpDOM(t, bin, ts.URL+"/?runs=run-a", 3*time.Second)
	if !regexp.MustCompile(`<li class="run" data-run="sweep/run-b" data-points="2"><input type="checkbox" id="cb-sweep/run-b">`).MatchString(dom) {
		t.Errorf("?runs=run-a: run-b not listed")
	}
	lines := regexp.MustCompile(`<polyline class="series" data-run="([^"]+)"`).FindAllStringSubmatch(dom, -1)
	var drawn []string
	for _, l := range lines {
		drawn = append(drawn, l[1])
	}
	if strings.Join(drawn, " ") != "run-a run-a" { // learning_rate and loss; eval_loss is run-b's only
		t.Errorf("?runs=run-a drew %v, want run-a on learning_rate and loss\n%s", drawn, dom)
	}
}
