package data

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

func TestSplitIndices(t *testing.T) {
	tr, ev, err := SplitIndices(999, 0.05, 7)
	if err != nil {
		t.Fatal(err)
	}
	// round(999 * 0.05) = round(49.95) = 50.
	if len(ev) != 50 || len(tr) != 949 || !slices.IsSorted(ev) || !slices.IsSorted(tr) {
		t.Fatalf("%d eval, %d train", len(ev), len(tr))
	}
	all := append(slices.Clone(tr), ev...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("split is not a partition of 0..998")
		}
	}
	tr2, ev2, _ := SplitIndices(999, 0.05, 7)
	if !slices.Equal(ev, ev2) || !slices.Equal(tr, tr2) {
		t.Fatal("same seed, different split")
	}
	_, ev3, _ := SplitIndices(999, 0.05, 8)
	if slices.Equal(ev, ev3) {
		t.Fatal("seed does not change the split")
	}
	if _, ev, _ := SplitIndices(10, 0.01, 1); len(ev) != 1 {
		t.Fatalf("a positive split of 10 rows gives %d eval rows, want 1", len(ev))
	}
	for _, tc := range []struct {
		n    int
		frac float64
		want string
	}{
		{10, 1, "eval_split 1: want 0 <= eval_split < 1"},
		{10, -0.1, "eval_split -0.1: want 0 <= eval_split < 1"},
		{1, 0.5, "eval_split 0.5 of 1 rows leaves no training rows"},
	} {
		if _, _, err := SplitIndices(tc.n, tc.frac, 0); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
}

func TestLoadSplit(t *testing.T) {
	dir := filepath.Join(sharedtest.Dir(t), "data")
	alpaca := Source{Path: filepath.Join(dir, "alpaca_en_demo.parquet")}
	train, eval, err := LoadSplit(SplitConfig{Train: alpaca, EvalSplit: 0.05, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 949 || eval.Len() != 50 {
		t.Fatalf("%d train, %d eval", train.Len(), eval.Len())
	}
	seen := map[int]bool{}
	for _, r := range train.Records {
		seen[r.Row] = true
	}
	for _, r := range eval.Records {
		if seen[r.Row] {
			t.Fatalf("row %d in both splits", r.Row)
		}
	}
	// Eval from its own file.
	own := filepath.Join(t.TempDir(), "eval.jsonl")
	os.WriteFile(own, []byte(`{"instruction": "a", "input": "", "output": "b"}`+"\n"), 0o644)
	train, eval, err = LoadSplit(SplitConfig{Train: alpaca, Eval: &Source{Path: own}})
	if err != nil || train.Len() != 999 || eval.Len() != 1 {
		t.Fatalf("%v", err)
	}
	hh := Source{Path: filepath.Join(dir, "hh_rlhf_harmless_base_test.parquet")}
	if _, _, err := LoadSplit(SplitConfig{Train: alpaca, Eval: &hh}); err == nil || err.Error() != "data: eval file "+hh.Path+" has format preference, training file "+alpaca.Path+" has alpaca" {
		t.Fatalf("got %v", err)
	}
	if _, _, err := LoadSplit(SplitConfig{Train: alpaca, Eval: &hh, EvalSplit: 0.1}); err == nil || err.Error() != "data: set either eval_split or an eval file, not both" {
		t.Fatalf("got %v", err)
	}
}
