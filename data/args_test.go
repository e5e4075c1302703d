package data

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestArgsDefaults(t *testing.T) {
	if got := (Args{}).Defaults().MaxLength; got != DefaultMaxLength || DefaultMaxLength != 1024 {
		t.Errorf("default max_length %d, want 1024 (TRL's SFTConfig)", got)
	}
	if got := (Args{MaxLength: 77}).Defaults().MaxLength; got != 77 {
		t.Errorf("max_length 77 became %d", got)
	}
	a := Args{DatasetName: "x.jsonl"}.Defaults()
	if !reflect.DeepEqual(a, a.Defaults()) {
		t.Error("Defaults is not idempotent")
	}
}

func TestArgsValidate(t *testing.T) {
	ok := Args{DatasetName: "train.parquet"}
	tests := []struct {
		name string
		edit func(*Args)
		want string
	}{
		{"valid", func(*Args) {}, ""},
		{"valid everything", func(a *Args) {
			a.EvalSplit, a.LossMask, a.Packing, a.MaxTrainSamples, a.MaxEvalSamples = 0.05, "last_turn_only", true, 10, 5
			a.Columns = map[string]string{"messages": "conversation"}
		}, ""},
		{"no dataset", func(a *Args) { a.DatasetName = "" }, "dataset_name: must be set (a .parquet, .jsonl or .json file)"},
		{"split too big", func(a *Args) { a.EvalSplit = 1 }, "eval_split: must be in [0, 1), got 1"},
		{"split negative", func(a *Args) { a.EvalSplit = -0.1 }, "eval_split: must be in [0, 1), got -0.1"},
		{"both evals", func(a *Args) { a.EvalSplit, a.EvalDatasetName = 0.1, "eval.jsonl" },
			"eval_split: set either eval_split (0.1) or eval_dataset_name (eval.jsonl), not both"},
		{"max_length", func(a *Args) { a.MaxLength = 1 }, "max_length: must be >= 2, got 1"},
		{"max_length negative", func(a *Args) { a.MaxLength = -5 }, "max_length: must be >= 2, got -5"},
		{"loss_mask", func(a *Args) { a.LossMask = "prompt" },
			`loss_mask: unknown "prompt" (want all, completion_only, assistant_only or last_turn_only)`},
		{"max_train_samples", func(a *Args) { a.MaxTrainSamples = -1 }, "max_train_samples: must be >= 0 (0: all rows), got -1"},
		{"max_eval_samples", func(a *Args) { a.MaxEvalSamples = -2 }, "max_eval_samples: must be >= 0 (0: all rows), got -2"},
		{"unknown column", func(a *Args) { a.Columns = map[string]string{"conversation": "messages"} },
			`columns: unknown column name "conversation" (want one of text, messages, prompt, completion, instruction, input, output, chosen, rejected, margin, score_chosen, score_rejected, rating, trained_turn)`},
		{"empty column", func(a *Args) { a.Columns = map[string]string{"messages": ""} }, `columns: "messages" maps to an empty column name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := ok
			tc.edit(&a)
			err := a.Defaults().Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestArgsLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) string {
		var sb strings.Builder
		for i := range n {
			sb.WriteString(`{"conversation": [{"role": "user", "content": "q` + string(rune('a'+i)) + `"}, {"role": "assistant", "content": "a"}]}` + "\n")
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	trainPath, evalPath := write("train.jsonl", 20), write("eval.jsonl", 6)
	cols := map[string]string{"messages": "conversation"}
	firstPrompt := func(d *Dataset) string { return d.Records[0].Messages[0].Content }
	tests := []struct {
		name                string
		args                Args
		wantTrain, wantEval int // rows; -1: no eval set
		check               func(t *testing.T, tr, ev *Dataset)
	}{
		{"train only", Args{DatasetName: trainPath, Columns: cols}, 20, -1, nil},
		{"eval file", Args{DatasetName: trainPath, EvalDatasetName: evalPath, Columns: cols}, 20, 6, nil},
		// round(20 * 0.25) = 5 rows held out; the two sets are disjoint and cover the file.
		{"split", Args{DatasetName: trainPath, EvalSplit: 0.25, Columns: cols}, 15, 5, func(t *testing.T, tr, ev *Dataset) {
			seen := map[int]bool{}
			for _, d := range []*Dataset{tr, ev} {
				for _, r := range d.Records {
					if seen[r.Row] {
						t.Errorf("row %d in both sets", r.Row)
					}
					seen[r.Row] = true
				}
			}
			if len(seen) != 20 {
				t.Errorf("%d distinct rows, want 20", len(seen))
			}
		}},
		// Caps keep the first rows after the split, as transformers' max_train_samples does.
		{"caps", Args{DatasetName: trainPath, EvalDatasetName: evalPath, Columns: cols, MaxTrainSamples: 3, MaxEvalSamples: 2}, 3, 2,
			func(t *testing.T, tr, ev *Dataset) {
				if firstPrompt(tr) != "qa" || tr.Records[2].Row != 2 || ev.Records[1].Row != 1 {
					t.Errorf("caps did not keep the first rows: %+v", tr.Records)
				}
			}},
		{"cap above size", Args{DatasetName: trainPath, Columns: cols, MaxTrainSamples: 100}, 20, -1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, ev, err := tc.args.Load(7)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Len() != tc.wantTrain || tr.Format != FormatConversation {
				t.Errorf("train: %d rows of %s, want %d of conversation", tr.Len(), tr.Format, tc.wantTrain)
			}
			if (ev == nil) != (tc.wantEval < 0) || ev != nil && ev.Len() != tc.wantEval {
				t.Errorf("eval: %v, want %d rows", ev, tc.wantEval)
			}
			if tc.check != nil {
				tc.check(t, tr, ev)
			}
		})
	}

	// The same seed gives the same split; another seed, another one.
	a := Args{DatasetName: trainPath, EvalSplit: 0.25, Columns: cols}
	_, e1, _ := a.Load(7)
	_, e2, _ := a.Load(7)
	_, e3, _ := a.Load(8)
	rows := func(d *Dataset) (r []int) {
		for _, x := range d.Records {
			r = append(r, x.Row)
		}
		return r
	}
	if !reflect.DeepEqual(rows(e1), rows(e2)) || reflect.DeepEqual(rows(e1), rows(e3)) {
		t.Errorf("split rows: seed 7 %v and %v, seed 8 %v", rows(e1), rows(e2), rows(e3))
	}

	// A column mapping that the file lacks is an error naming file, row and both names.
	_, _, err := Args{DatasetName: trainPath, Columns: map[string]string{"messages": "msgs"}}.Load(1)
	want := trainPath + `: row 0: missing column "msgs" (mapped from "messages")`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestArgsBatchConfig(t *testing.T) {
	got := Args{Packing: true}.BatchConfig(4, 0)
	want := BatchConfig{BatchSize: 4, MaxLength: 1024, PadID: 0, Packing: true, DropUntrained: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if c := (Args{MaxLength: 64}).BatchConfig(1, 3); c.MaxLength != 64 || c.PadID != 3 || c.Packing {
		t.Errorf("got %+v", c)
	}
}
