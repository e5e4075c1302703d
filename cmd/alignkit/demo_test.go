package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/demo"
)

// TestDemoBadOut checks that a bad --out (or --configs) is refused with one clear line before
// anything is written, and that nothing of the user's is removed.
func TestDemoBadOut(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file.txt")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	precious := filepath.Join(full, "notes.txt")
	if err := os.WriteFile(precious, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"out is a file", []string{"demo", "--out", file}, "alignkit: --out " + file + ": is a file, not a directory"},
		{"out is a file, forced", []string{"demo", "--out", file, "--force"}, "alignkit: --out " + file + ": is a file, not a directory"},
		{"out not empty", []string{"demo", "--out", full},
			"alignkit: --out " + full + ": directory is not empty: pass --force to replace a previous demo's output, or choose another --out"},
		{"out not a demo's", []string{"demo", "--out", full, "--force"},
			"alignkit: --out " + full + ": --force only replaces a previous demo's output, and this directory has no demo.json: remove it yourself or choose another --out"},
		{"configs missing", []string{"demo", "--out", filepath.Join(dir, "new"), "--configs", filepath.Join(dir, "nowhere")},
			"alignkit: --configs " + filepath.Join(dir, "nowhere") + ": no sft.yaml there: run from the repository root, or point --configs at configs/demo"},
		{"extra argument", []string{"demo", "now"}, `alignkit: unknown command "now" for "alignkit demo"`},
		{"no seeds", []string{"demo", "--out", filepath.Join(dir, "new"), "--seeds", "0"}, "alignkit: --seeds 0: want >= 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, tc.args...)
			if res.Code != 1 || res.ErrorLine() != tc.want {
				t.Errorf("exit %d, error line\n %q\nwant\n %q", res.Code, res.ErrorLine(), tc.want)
			}
		})
	}
	for _, p := range []string{file, precious} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "keep" {
			t.Errorf("%s was touched: %q, %v", p, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Errorf("a refused run created its --out: %v", err)
	}
}

// TestDemoQuick runs `alignkit demo --quick` end to end, as `make demo-quick` does in CI: every
// stage runs its real job and the results are written. About two minutes on two idle cores.
func TestDemoQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole quick demo takes minutes; skipped with -short (make demo-quick runs it)")
	}
	out := filepath.Join(t.TempDir(), "demo-quick")
	res := runCLI(t, "demo", "--quick", "--out", out)
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.ErrorLine())
	}
	var timings []demo.Timing
	b, err := os.ReadFile(filepath.Join(out, demo.TimingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &timings); err != nil {
		t.Fatal(err)
	}
	// Fifteen stages (world, init, sft, reward, reward-safety, rlhf-sample, rs-sft, ppo, dpo, grpo,
	// gatt-synth, gatt-sft, gatt-eval, rm-eval, export) and the total.
	if len(timings) != 16 {
		t.Errorf("%d timings: %+v", len(timings), timings)
	}
	if _, err := os.Stat(filepath.Join(out, demo.ResultsFile)); err != nil {
		t.Error(err)
	}
}
