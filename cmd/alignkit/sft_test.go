package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"

	"github.com/parquet-go/parquet-go"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/sft"
)

// TestSFTShippedConfig runs configs/sft/stories260k.yaml as a user would from the repository root,
// shortened to 20 steps: the data summary comes first, evaluation runs at steps 10 and 20, and
// output_dir ends up holding a finished HF model with its tokenizer and chat template.
func TestSFTShippedConfig(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/no_robots_test_sft.parquet")
	out := t.TempDir()
	r := runCLI(t, "sft", "--config", "configs/sft/stories260k.yaml", "--set", "output_dir="+out,
		"--set", "max_steps=20", "--set", "eval_steps=10", "--set", "save_steps=10", "--set", "report_plots=false")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	want := "sft data: no_robots_test_sft.parquet (conversation, loss on assistant_only): 377 examples, 404 truncated to max_length 256 (252005 tokens cut), 98 dropped with no trained token left, 90833 tokens, 48292 trained, padding efficiency 94.1% (batches of 4 in file order); eval: 20 examples, 22 truncated, 5 dropped, 2536 trained tokens"
	if first, _, _ := strings.Cut(r.Stderr, "\n"); first != want {
		t.Errorf("first stderr line:\n got %s\nwant %s", first, want)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json", "chat_template.jinja",
		"metrics.jsonl", "trainer_state.json", "training_complete.json", "checkpoint-10", "checkpoint-20"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("output_dir lacks %s", f)
		}
	}
	var evals []float64
	for _, m := range testutil.ReadMetrics(t, out) {
		if v, ok := m["eval_loss"]; ok {
			evals = append(evals, v)
		}
	}
	if len(evals) != 2 || !(evals[1] < evals[0]) {
		t.Errorf("eval_loss at steps 10 and 20: %v, want two, falling", evals)
	}
}

// TestSFTMistralConfig checks that the 7B config is a valid sft config with the Llama 2 recipe's
// numbers: 64 sequences of 4096 tokens per step, lr 2e-5 cosine, weight decay 0.1, 2 epochs.
func TestSFTMistralConfig(t *testing.T) {
	cfg := sft.DefaultConfig()
	if err := conf.Load(filepath.Join(sharedtest.RepoRoot(t), "configs", "sft", "mistral-7b.yaml"), nil, &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Defaults()
	got := []any{c.PerDeviceTrainBatchSize * c.GradientAccumulationSteps, c.Data.MaxLength, c.Data.Packing,
		c.LearningRate, c.LRSchedulerType, c.WeightDecay, c.NumTrainEpochs, c.Data.ChatTemplate, c.Data.LossMask}
	want := []any{64, 4096, true, 2e-5, "cosine", 0.1, 2.0, "zephyr", "assistant_only"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

// TestSFTBadInput feeds the command bad configs and bad data. Each fails with exit status 1 and one
// error line naming the file, row and column or key, and leaves no model in output_dir.
func TestSFTBadInput(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/no_robots_test_sft.parquet")
	dir := t.TempDir()
	noRobots := filepath.Join(shared, "data", "no_robots_test_sft.parquet")
	emptyConv := filepath.Join(dir, "empty.jsonl")
	writeFile(t, emptyConv, `{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
{"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]}
{"messages": []}
`)
	legacy := filepath.Join(dir, "legacy.parquet")
	writeLegacyItemParquet(t, legacy)

	// config writes a YAML file: a short run of stories260K on dataset, plus extra lines.
	config := func(name, dataset, extra string) (path, out string) {
		out = filepath.Join(dir, name+"-out")
		path = filepath.Join(dir, name+".yaml")
		writeFile(t, path, "model_name_or_path: "+filepath.Join(shared, "models", "stories260K")+"\n"+
			"dataset_name: "+dataset+"\nchat_template: llama-2\nmax_length: 128\nmax_steps: 3\n"+
			"per_device_train_batch_size: 2\nreport_plots: false\noutput_dir: "+out+"\n"+extra)
		return path, out
	}
	tests := []struct {
		name    string
		dataset string
		extra   string
		sets    []string
		want    func(cfg string) string
	}{
		{"unknown key", noRobots, "learning_rat: 0.001\n", nil,
			func(cfg string) string { return cfg + `: unknown key "learning_rat" (did you mean "learning_rate"?)` }},
		{"wrong type", noRobots, "packing: sometimes\n", nil,
			func(cfg string) string { return cfg + `: key "packing" must be bool, got string` }},
		{"mapped column missing", noRobots, "", []string{"columns.messages=conversation"},
			func(string) string {
				return noRobots + `: row 0: missing column "conversation" (mapped from "messages")`
			}},
		// Row 0 of the legacy file is a good conversation: a reader that lost pyarrow's "item" lists
		// would report row 0 empty instead.
		{"legacy item list", legacy, "", nil,
			func(string) string { return legacy + `: row 1: column "messages": message 0: missing content` }},
		{"empty conversation", emptyConv, "", nil,
			func(string) string { return emptyConv + `: row 2: column "messages": empty conversation` }},
		// learning_rate 1e30 moves every weight by about 1e30 in step 1 (AdamW's step is about lr
		// whatever the gradient): step 2's forward pass overflows float32.
		{"NaN loss", noRobots, "", []string{"learning_rate=1e30"},
			func(string) string { return "step 2: loss is NaN; last good checkpoint: none" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, out := config(strings.ReplaceAll(tc.name, " ", "-"), tc.dataset, tc.extra)
			args := []string{"sft", "--config", cfg}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			r := runCLI(t, args...)
			want := "alignkit: " + tc.want(cfg)
			if r.Code != 1 || r.ErrorLine() != want {
				t.Errorf("exit %d, error line:\n got %s\nwant %s", r.Code, r.ErrorLine(), want)
			}
			if n := strings.Count(r.Stderr, "alignkit: "); n != 1 {
				t.Errorf("%d error lines in stderr:\n%s", n, r.Stderr)
			}
			for _, f := range []string{"config.json", "model.safetensors", "training_complete.json"} {
				if _, err := os.Stat(filepath.Join(out, f)); err == nil {
					t.Errorf("output_dir holds %s after a failed run", f)
				}
			}
			// Config and data errors are found before training: output_dir is not even created.
			if _, err := os.Stat(out); err == nil && tc.name != "NaN loss" {
				t.Errorf("output_dir %s was created", out)
			}
		})
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// legacyList is a LIST-annotated group whose repeated group holds an element named "item", as
// pyarrow before 13 wrote lists (data's reader handles it; parquet-go's struct reader returns the
// lists empty).
type legacyList struct{ parquet.Group }

func (legacyList) Type() parquet.Type { return parquet.List(parquet.String()).Type() }

// writeLegacyItemParquet writes a two-row conversation file with "item" list elements, through
// parquet-go's low-level API (explicit schema, values with repetition and definition levels): row 0
// is [user "Hi", assistant "Hello"], row 1 one user message whose content is null.
func writeLegacyItemParquet(t *testing.T, path string) {
	t.Helper()
	schema := parquet.NewSchema("schema", parquet.Group{
		"messages": parquet.Optional(legacyList{parquet.Group{
			"list": parquet.Repeated(parquet.Group{
				"item": parquet.Optional(parquet.Group{
					"content": parquet.Optional(parquet.String()),
					"role":    parquet.Optional(parquet.String()),
				}),
			}),
		}}),
	})
	// Leaf columns in schema order: 0 messages.list.item.content, 1 messages.list.item.role.
	// Definition levels: 1 messages present, 2 the list has an entry, 3 item present, 4 leaf
	// present. Repetition level 1 continues the list.
	v := func(x any, rep, def, col int) parquet.Value {
		if x == nil {
			return parquet.Value{}.Level(rep, def, col)
		}
		return parquet.ValueOf(x).Level(rep, def, col)
	}
	rows := []parquet.Row{
		{v("Hi", 0, 4, 0), v("Hello", 1, 4, 0), v("user", 0, 4, 1), v("assistant", 1, 4, 1)},
		{v(nil, 0, 3, 0), v("user", 0, 4, 1)},
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewWriter(f, schema)
	if _, err := w.WriteRows(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
