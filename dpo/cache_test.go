package dpo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"weak"

	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
)

// cacheConfig precomputes the reference log-probs of 8 orca pairs (2 forward passes of 4 pairs) and
// 4 eval pairs (1 pass).
func cacheConfig(t *testing.T) Config {
	c := storiesConfig(t, "orca_dpo_pairs_validation_chat.parquet")
	c.PrecomputeRefLogProbs = true
	c.MaxSteps = 2
	c.Data.MaxTrainSamples = 8
	c.Data.EvalSplit = 0.05
	c.Data.MaxEvalSamples = 4
	return c
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestRefCacheReuse: the first run scores every pair once, before training, and never runs the
// reference again; a second run into another output_dir reads the cache and runs no reference
// pass at all, and its metrics are bit-identical; changing beta (a loss key) reuses the cache too.
func TestRefCacheReuse(t *testing.T) {
	c := cacheConfig(t)
	var first counter
	if err := runHooked(c, io.Discard, first.option()); err != nil {
		t.Fatal(err)
	}
	if first.passes != 3 || first.pairs != 12 {
		t.Errorf("first run: %d reference passes over %d pairs, want 3 over 12 (precompute only)", first.passes, first.pairs)
	}
	files := cacheFiles(t, c.RefCacheDir)
	if len(files) != 1 || !strings.HasSuffix(files[0], ".bin") || len(files[0]) != 64+4 {
		t.Fatalf("cache dir holds %v, want one <sha256>.bin (no temporary files)", files)
	}
	want := testutil.ReadMetrics(t, c.OutputDir)

	c2 := c
	c2.OutputDir = filepath.Join(t.TempDir(), "again")
	var second counter
	var log bytes.Buffer
	if err := runHooked(c2, &log, second.option()); err != nil {
		t.Fatal(err)
	}
	if second.passes != 0 {
		t.Errorf("second run: %d reference passes, want 0 (cache hit)", second.passes)
	}
	if !strings.Contains(log.String(), "reference log-probs of 12 pairs read from "+filepath.Join(c.RefCacheDir, files[0])) {
		t.Errorf("second run's log does not report the cache hit:\n%s", log.String())
	}
	got := testutil.ReadMetrics(t, c2.OutputDir)
	for i := range want {
		for _, k := range []string{"loss", "rewards/chosen", "rewards/margins", "eval_loss", "eval_rewards/margins"} {
			if got[i][k] != want[i][k] {
				t.Errorf("step %d %s: cached %v, computed %v", i+1, k, got[i][k], want[i][k])
			}
		}
	}

	c3 := c
	c3.Beta = 0.5
	c3.OutputDir = filepath.Join(t.TempDir(), "beta")
	var third counter
	if err := runHooked(c3, io.Discard, third.option()); err != nil {
		t.Fatal(err)
	}
	if third.passes != 0 {
		t.Errorf("beta 0.5: %d reference passes, want 0: beta does not change the reference log-probs", third.passes)
	}
	if n := len(cacheFiles(t, c.RefCacheDir)); n != 1 {
		t.Errorf("%d cache files after changing beta, want 1", n)
	}
}

// copyDir copies a flat directory (a model).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// smallPairs are explicit-prompt text pairs for the stories vocabulary.
func smallPairs() []map[string]any {
	var rows []map[string]any
	for _, s := range []string{"a cat", "a dog", "a bird", "a fish"} {
		rows = append(rows, map[string]any{
			"prompt":   "Once upon a time there was " + s + ".",
			"chosen":   " It was happy and played all day.",
			"rejected": " It was sad.",
			"other":    " It ran to the park with its mom.",
		})
	}
	return rows
}

// TestRefCacheInvalidation: every input of the reference log-probs is part of the cache key, so
// changing any of them recomputes (a reference pass runs and a second cache file appears), while a
// rerun of the unchanged config reads the first file. The reference weights are keyed by value:
// ref_model_name_or_path pointing at the policy's own checkpoint reuses the cache written for the
// copied initial weights.
func TestRefCacheInvalidation(t *testing.T) {
	base := cacheConfig(t)
	base.Data.EvalSplit, base.Data.MaxEvalSamples = 0, 0
	base.Data.DatasetName = testutil.WriteJSONL(t, "pairs.jsonl", smallPairs()...)

	editedData := smallPairs()
	editedData[3]["rejected"] = " It was very sad."
	// The same weights as stories260K except one value.
	ck, err := checkpoint.Open(base.ModelNameOrPath)
	if err != nil {
		t.Fatal(err)
	}
	ck.Weights.Tensors["model.norm.weight"].Data[0] += 0.25
	perturbed := filepath.Join(t.TempDir(), "perturbed")
	if err := checkpoint.Save(perturbed, ck, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	// The same tokenizer read from differently formatted files: the key covers the file bytes.
	retok := copyDir(t, base.ModelNameOrPath)
	var tc map[string]any
	b, err := os.ReadFile(filepath.Join(retok, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tc); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(tc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(retok, "tokenizer_config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		mod   func(c *Config)
		fresh bool // the key changes
	}{
		{"unchanged", func(c *Config) {}, false},
		{"beta", func(c *Config) { c.Beta = 0.3 }, false},
		{"loss type", func(c *Config) { c.LossType = IPO }, false},
		{"learning rate", func(c *Config) { c.LearningRate = 1 }, false},
		{"ref path to the same weights", func(c *Config) { c.RefModelNameOrPath = c.ModelNameOrPath }, false},
		{"dataset bytes", func(c *Config) { c.Data.DatasetName = testutil.WriteJSONL(t, "pairs.jsonl", editedData...) }, true},
		{"column mapping", func(c *Config) { c.Data.Columns = map[string]string{"chosen": "other"} }, true},
		{"chat template", func(c *Config) {
			// A conversational dataset renders through the template; the text pairs above do not, but
			// the template's source is still part of the tokenization settings.
			c.Data.ChatTemplate = "chatml"
		}, true},
		{"max_length", func(c *Config) { c.Data.MaxLength = 80 }, true},
		{"max_prompt_length", func(c *Config) { c.MaxPromptLength = 40 }, true},
		{"tokenizer files", func(c *Config) { c.ModelNameOrPath = retok }, true},
		{"reference weights", func(c *Config) { c.RefModelNameOrPath = perturbed }, true},
	}
	var n counter
	if _, err := newTestTask(base, io.Discard, n.option()); err != nil {
		t.Fatal(err)
	}
	if n.passes != 1 {
		t.Fatalf("first task: %d reference passes, want 1", n.passes)
	}
	files := 1
	for _, tc := range cases {
		c := base
		tc.mod(&c)
		var k counter
		if _, err := newTestTask(c, io.Discard, k.option()); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.fresh {
			files++
		}
		if (k.passes > 0) != tc.fresh {
			t.Errorf("%s: %d reference passes, want recomputation %v", tc.name, k.passes, tc.fresh)
		}
		if got := len(cacheFiles(t, base.RefCacheDir)); got != files {
			t.Errorf("%s: %d cache files, want %d", tc.name, got, files)
		}
	}
}

// TestRefCacheCorrupt: a damaged cache file (one flipped bit) fails its checksum, is reported and
// recomputed, and the rewritten file is used by the next run.
func TestRefCacheCorrupt(t *testing.T) {
	c := cacheConfig(t)
	c.Data.EvalSplit, c.Data.MaxEvalSamples = 0, 0
	if _, err := newTestTask(c, io.Discard); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.RefCacheDir, cacheFiles(t, c.RefCacheDir)[0])
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	good := append([]byte(nil), b...)
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	var k counter
	if _, err := newTestTask(c, &log, k.option()); err != nil {
		t.Fatal(err)
	}
	if want := "dpo: invalid reference cache file " + path + ": checksum mismatch; recomputing"; !strings.Contains(log.String(), want) {
		t.Errorf("log %q does not contain %q", log.String(), want)
	}
	if k.passes != 2 {
		t.Errorf("%d reference passes after corruption, want 2", k.passes)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, good) {
		t.Error("the recomputed cache file differs from the original one")
	}
}

// TestRefFreedAfterPrecompute: with precompute_ref_log_probs the reference weights are unreachable
// once the task is built (the GC reclaims them), while per-batch scoring keeps them.
func TestRefFreedAfterPrecompute(t *testing.T) {
	for _, pre := range []bool{true, false} {
		c := cacheConfig(t)
		c.Data.EvalSplit, c.Data.MaxEvalSamples = 0, 0
		c.PrecomputeRefLogProbs = pre
		var wp weak.Pointer[float32]
		grab := func(h *hooks) {
			h.refLoaded = func(m *lm.Model) { wp = weak.Make(&m.Weights().Tensors["model.embed_tokens.weight"].Data[0]) }
		}
		task, err := newTestTask(c, io.Discard, grab)
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		runtime.GC()
		if freed := wp.Value() == nil; freed != pre {
			t.Errorf("precompute %v: reference weights freed %v", pre, freed)
		}
		if (task.ref == nil) != pre {
			t.Errorf("precompute %v: task holds reference %v", pre, task.ref != nil)
		}
		runtime.KeepAlive(task)
	}
	// A cache hit builds no reference model at all: the key needs only the weights' hash.
	c := cacheConfig(t)
	c.Data.EvalSplit, c.Data.MaxEvalSamples = 0, 0
	built := 0
	count := func(h *hooks) { h.refLoaded = func(*lm.Model) { built++ } }
	for i := 0; i < 2; i++ {
		if _, err := newTestTask(c, io.Discard, count); err != nil {
			t.Fatal(err)
		}
	}
	if built != 1 {
		t.Errorf("%d reference models built over a miss and a hit, want 1", built)
	}
}

// TestCacheFileRoundTrip checks the file format on its own: values survive bit for bit, and a file
// for another key or another number of pairs is refused rather than misread.
func TestCacheFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key := strings.Repeat("ab", 32)
	path := filepath.Join(dir, key+".bin")
	tr := []pairLogps{{-12.5, -30.25, 7, 9}, {-1e-300, -0.1, 1, 1}}
	ev := []pairLogps{{-3, -4, 2, 3}}
	if err := writeCache(path, key, tr, ev); err != nil {
		t.Fatal(err)
	}
	gt, ge, err := readCache(path, key, 2, 1)
	if err != nil || !reflect.DeepEqual(gt, tr) || !reflect.DeepEqual(ge, ev) {
		t.Fatalf("round trip: %v %v %v", gt, ge, err)
	}
	if _, _, err := readCache(path, strings.Repeat("cd", 32), 2, 1); err == nil || !isInvalid(err) || !strings.HasSuffix(err.Error(), "written for another key") {
		t.Errorf("other key: %v", err)
	}
	if _, _, err := readCache(path, key, 3, 1); err == nil || !strings.HasSuffix(err.Error(), "2 train and 1 eval pairs, want 3 and 1") {
		t.Errorf("other size: %v", err)
	}
	if a, b, err := readCache(filepath.Join(dir, "absent.bin"), key, 2, 1); a != nil || b != nil || err != nil {
		t.Errorf("absent file: %v %v %v", a, b, err)
	}
	if names := cacheFiles(t, dir); len(names) != 1 {
		t.Errorf("dir holds %v, want only the cache file", names)
	}
}

// TestRefPrecomputeStops: a context that ends during precompute_ref_log_probs (here after the
// first forward pass of 4 pairs) stops the scoring before the next pass, with an error naming the
// split and the pairs done, and writes no cache.
func TestRefPrecomputeStops(t *testing.T) {
	c := cacheConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	passes := 0
	h := hooks{refForward: func(int) { passes++; cancel() }}
	_, err := newTask(ctx, c, h, io.Discard)
	want := "reference log-probs of train pairs: context canceled after 4 of 8 pairs"
	if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want %s", err, want)
	}
	if passes != 1 {
		t.Errorf("%d reference passes, want 1", passes)
	}
	if entries, _ := os.ReadDir(c.RefCacheDir); len(entries) != 0 {
		t.Errorf("cache dir holds %v after the stop", cacheFiles(t, c.RefCacheDir))
	}
}
