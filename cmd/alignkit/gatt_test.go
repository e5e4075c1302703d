package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/gatt"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/tokenizer"
	"github.com/alignkit/alignkit/sft"
	"github.com/alignkit/alignkit/train"
)

// TestGattEndToEnd runs the shipped GAtt configs at a small scale, as a user would from the
// repository root: synthesis from Capybara with stories260K as the sampler, a resumed rerun, a few
// SFT steps on gatt.parquet, and the consistency eval of both models side by side.
func TestGattEndToEnd(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/capybara_test.parquet")
	dir := t.TempDir()
	synthOut := filepath.Join(dir, "synth")

	// Synthesis: the first three Capybara rows that give two turns within stories260K's 512 tokens.
	// Rows 0-2 and 4-6 have one user turn; row 7's first message alone is about 2000 tokens.
	args := []string{"gatt", "synth", "--config", "configs/gatt/synth-stories260k.yaml", "--set", "output_dir=" + synthOut,
		"--set", "max_dialogues=3", "--set", "max_turns=2", "--set", "max_new_tokens=8"}
	r := runCLI(t, args...)
	if r.Code != 0 {
		t.Fatalf("synth: exit %d: %s", r.Code, r.Stderr)
	}
	want := "gatt synth: 3 dialogues, 3 samples (%d terse) from 200 source rows (0 resumed); skipped: 6 fewer_than_2_user_turns, 1 too_long; instruction in the system message; wrote " + synthOut + "/gatt.parquet\n"
	rows, err := gatt.ReadRows(filepath.Join(synthOut, gatt.ParquetFile))
	if err != nil {
		t.Fatal(err)
	}
	terse := 0
	for _, row := range rows {
		if row.Terse {
			terse++
		}
	}
	if r.Stdout != strings.Replace(want, "%d", string(rune('0'+terse)), 1) {
		t.Errorf("synth stdout:\n got %q\nwant %q", r.Stdout, want)
	}
	src, err := data.Load(data.Source{Path: filepath.Join(shared, "data", "capybara_test.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range rows {
		if row.SourceRow != []int{3, 8, 9}[i] || len(row.Messages) != 5 || row.TrainedTurn != 4 {
			t.Fatalf("row %d: source row %d, %d messages, trained turn %d", i, row.SourceRow, len(row.Messages), row.TrainedTurn)
		}
		inst, _ := gatt.InstructionFor(42, row.SourceRow, gatt.DefaultLists())
		if row.Instruction != inst.Text() || row.Messages[0].Role != "system" || row.Messages[0].Content != inst.Text() {
			t.Errorf("row %d: first message %+v, want the system instruction %q", i, row.Messages[0], inst.Text())
		}
		// The user turns are the source's, without the instruction.
		var srcUsers []string
		for _, m := range src.Records[row.SourceRow].Messages {
			if m.Role == "user" {
				srcUsers = append(srcUsers, m.Content)
			}
		}
		if row.Messages[1].Content != srcUsers[0] || row.Messages[3].Content != srcUsers[1] {
			t.Errorf("row %d: user turns differ from source row %d", i, row.SourceRow)
		}
	}

	// The loss mask of the synthesised rows, tokenized as sft tokenizes them: exactly the last
	// reply's tokens and its EOS; the first reply, like every other earlier token, carries none.
	tok, err := tokenizer.Load(filepath.Join(shared, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	dt, err := lm.ChatTokenizer(tok, "llama-2")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Load(data.Source{Path: filepath.Join(synthOut, gatt.ParquetFile)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ds.Records {
		ex, err := dt.Example(&ds.Records[i], data.MaskLastTurnOnly)
		if err != nil {
			t.Fatal(err)
		}
		// Render the conversation up to the trained reply's header: everything up to there is context.
		prompt, err := dt.Template().Render(rows[i].Messages[:4], true)
		if err != nil {
			t.Fatal(err)
		}
		head := len(tok.EncodeSpans([]tokenizer.Span{{Text: prompt, Special: true}}, false))
		trained := 0
		for k, m := range ex.Mask {
			if m {
				trained++
				if k < head {
					t.Errorf("row %d: token %d (%q) of the context carries loss", i, k, tok.DecodeToken(ex.IDs[k]))
				}
			}
		}
		if last := len(ex.IDs) - 1; !ex.Mask[last] || ex.IDs[last] != tok.EOS() {
			t.Errorf("row %d: the closing EOS does not carry loss", i)
		}
		if got := strings.TrimSpace(tok.Decode(ex.IDs[len(ex.IDs)-trained : len(ex.IDs)-1])); got != rows[i].Messages[4].Content {
			t.Errorf("row %d: trained tokens %q, want the last reply %q", i, got, rows[i].Messages[4].Content)
		}
	}

	// A rerun finds every dialogue in the journal and regenerates none.
	r = runCLI(t, args...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "(3 resumed)") {
		t.Fatalf("rerun: exit %d: %s %s", r.Code, r.Stdout, r.Stderr)
	}
	again, _ := gatt.ReadRows(filepath.Join(synthOut, gatt.ParquetFile))
	if !reflect.DeepEqual(again, rows) {
		t.Error("the rerun changed gatt.parquet")
	}

	// A few SFT steps on gatt.parquet, unchanged, with the shipped GAtt SFT config.
	sftOut := filepath.Join(dir, "sft")
	cfg := sft.DefaultConfig()
	if err := conf.Load(filepath.Join(sharedtest.RepoRoot(t), "configs", "gatt", "sft-stories260k.yaml"), []string{
		"model_name_or_path=" + filepath.Join(shared, "models", "stories260K"), "dataset_name=" + filepath.Join(synthOut, gatt.ParquetFile),
		"output_dir=" + sftOut, "max_steps=3", "per_device_train_batch_size=3", "logging_steps=1", "save_steps=3", "report_plots=false",
	}, &cfg); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	res, err := sft.Run(context.Background(), cfg, train.WithLogWriter(&log))
	if err != nil {
		t.Fatalf("sft: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "loss on last_turn_only") || res.Steps != 3 {
		t.Errorf("sft: step %d, log:\n%s", res.Steps, log.String())
	}
	// The three examples make one batch, seen three times: its loss falls.
	var losses []float64
	for _, m := range testutil.ReadMetrics(t, sftOut) {
		if v, ok := m["loss"]; ok {
			losses = append(losses, v)
		}
	}
	if len(losses) != 3 || !(losses[2] < losses[0]) {
		t.Errorf("sft losses %v: want 3, falling", losses)
	}

	// The eval of both models, base and GAtt-tuned, side by side.
	evalOut := filepath.Join(dir, "eval")
	r = runCLI(t, "gatt", "eval", "--config", "configs/gatt/eval-stories260k.yaml", "--set", "output_dir="+evalOut,
		"--set", "models=["+filepath.Join(shared, "models", "stories260K")+", "+sftOut+"]",
		"--set", "num_dialogues=3", "--set", "turns=4", "--set", "max_new_tokens=8")
	if r.Code != 0 {
		t.Fatalf("eval: exit %d: %s", r.Code, r.Stderr)
	}
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	if len(lines) != 6 || lines[0] != "| Turn | base | gatt |" || !strings.HasPrefix(lines[5], "| 4 | ") {
		t.Errorf("eval table:\n%s", r.Stdout)
	}
	b, err := os.ReadFile(filepath.Join(evalOut, gatt.EvalJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Turns  int
		Models []struct {
			Label string
			Turns []struct{ Turn, Checked, Adherent int }
		}
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Turns != 4 || len(raw.Models) != 2 || raw.Models[1].Label != "gatt" || len(raw.Models[0].Turns) != 4 {
		t.Errorf("eval json: %s", b)
	}
	for _, m := range raw.Models {
		for _, tt := range m.Turns {
			if tt.Checked < 1 || tt.Checked > 3 || tt.Adherent > tt.Checked {
				t.Errorf("%s turn %d: %d/%d", m.Label, tt.Turn, tt.Adherent, tt.Checked)
			}
		}
	}
	for _, f := range []string{gatt.EvalMarkdownFile, gatt.EvalPlotFile, gatt.EvalTranscriptsFile} {
		if st, err := os.Stat(filepath.Join(evalOut, f)); err != nil || st.Size() == 0 {
			t.Errorf("eval output %s: %v", f, err)
		}
	}
}

// TestGattBadInput checks the one error line of each bad input, before any model is loaded.
func TestGattBadInput(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"gatt", "eval", "--config", "configs/gatt/eval-stories260k.yaml", "--set", "checkers=[keyword, regex]"},
			`alignkit: --set checkers: checkers: unknown checker "regex": want one of judge, keyword, language, reward`},
		{[]string{"gatt", "eval", "--config", "configs/gatt/eval-stories260k.yaml", "--set", "constraints.figures=[]"},
			"alignkit: configs/gatt/eval-stories260k.yaml: constraints: gatt figures list is empty: cannot sample a figure constraint"},
		{[]string{"gatt", "synth", "--config", "configs/gatt/synth-stories260k.yaml", "--set", "constraints.hobbies=[]"},
			"alignkit: configs/gatt/synth-stories260k.yaml: constraints: gatt hobbies list is empty: cannot sample a hobby constraint"},
		{[]string{"gatt", "synth", "--config", "configs/gatt/synth-stories260k.yaml", "--set", "samples=first_turn"},
			`alignkit: configs/gatt/synth-stories260k.yaml: samples "first_turn": want last_turn or every_turn`},
		{[]string{"gatt", "lists", "--generate"}, "alignkit: --generate needs --model DIR (or --backend openai --base-url URL)"},
	}
	for _, tc := range cases {
		r := runCLI(t, tc.args...)
		if r.Code != 1 || r.ErrorLine() != tc.want {
			t.Errorf("%v: exit %d, error line\n got %q\nwant %q", tc.args, r.Code, r.ErrorLine(), tc.want)
		}
	}
}

// TestGattLists: without --generate the defaults come out as a config fragment a synth config loads;
// stories260K, asked for lists, tells a story instead, which is one clear error.
func TestGattLists(t *testing.T) {
	r := runCLI(t, "gatt", "lists")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "constraints:\n    hobbies:\n        - Tennis\n") {
		t.Fatalf("lists: exit %d: %q %s", r.Code, r.Stdout, r.Stderr)
	}
	path := filepath.Join(t.TempDir(), "lists.yaml")
	os.WriteFile(path, []byte(r.Stdout), 0o644)
	cfg := gatt.DefaultSynthConfig()
	if err := conf.Load(path, []string{"dataset_name=d.jsonl", "output_dir=o", "model_name_or_path=m"}, &cfg); err != nil ||
		!reflect.DeepEqual(cfg.Constraints, gatt.DefaultLists()) {
		t.Errorf("lists YAML loads back as %+v, %v", cfg.Constraints, err)
	}
	shared := sharedtest.Dir(t, "models/stories260K/model.safetensors")
	r = runCLI(t, "gatt", "lists", "--generate", "--model", filepath.Join(shared, "models", "stories260K"), "--chat-template", "llama-2", "--max-new-tokens", "24")
	if r.Code != 1 || !strings.HasPrefix(r.ErrorLine(), "alignkit: gatt lists: the model proposed no hobbies: its reply \"") || !strings.HasSuffix(r.ErrorLine(), "\" holds no list item") {
		t.Errorf("stories260K lists: exit %d: %s", r.Code, r.ErrorLine())
	}
}
