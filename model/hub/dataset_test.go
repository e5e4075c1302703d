package hub_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/hub"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
)

// TestDatasetSplits lays out the split conventions of real Hub datasets and checks which files
// each split picks.
func TestDatasetSplits(t *testing.T) {
	nr := sharedtest.Path(t, "data", "no_robots_test_sft.parquet")
	cap := sharedtest.Path(t, "data", "capybara_test.parquet")
	cache := t.TempDir()
	// push_to_hub: data/<split>-NNNNN-of-NNNNN.parquet, two train shards.
	pushed := putRepo(t, cache, "datasets", "HuggingFaceH4/no_robots", "main", commitMain, map[string]string{
		"data/train-00000-of-00002.parquet": nr,
		"data/train-00001-of-00002.parquet": cap,
		"data/test-00000-of-00001.parquet":  cap,
		"README.md":                         nr, // not a data file: never picked
	})
	// The same repo at another revision, with one train file only.
	pushedV1 := putRepo(t, cache, "datasets", "HuggingFaceH4/no_robots", "v1", commitV1, map[string]string{
		"data/train-00000-of-00001.parquet": nr,
	})
	// The parquet converter: <config>/<split>/NNNN.parquet; and custom split names.
	conv := putRepo(t, cache, "datasets", "trl-lib/Capybara", "main", commitMain, map[string]string{
		"default/train/0000.parquet":      cap,
		"default/validation/0000.parquet": nr,
	})
	custom := putRepo(t, cache, "datasets", "HuggingFaceH4/ultrachat_200k", "main", commitMain, map[string]string{
		"data/train_sft-00000-of-00001.parquet": nr,
		"data/test_sft-00000-of-00001.parquet":  cap,
		"data/train_gen-00000-of-00001.parquet": cap,
	})
	// Keywords only (the datasets library's synonyms): dev for validation, eval for test.
	kw := putRepo(t, cache, "datasets", "someone/kw", "main", commitMain, map[string]string{
		"my_dev_set.jsonl":   nr,
		"eval_2024.parquet":  cap,
		"training.parquet":   nr,
		"notes/other.jsonl2": nr,
	})
	// No split names at all: everything is train.
	flat := putRepo(t, cache, "datasets", "someone/flat", "main", commitMain, map[string]string{
		"part1.parquet": nr,
		"part2.parquet": cap,
	})
	loc := hub.Locations{HubCache: cache}
	for _, tc := range []struct {
		name, split string
		want        []string
	}{
		{"HuggingFaceH4/no_robots", "train", []string{pushed + "/data/train-00000-of-00002.parquet", pushed + "/data/train-00001-of-00002.parquet"}},
		{"HuggingFaceH4/no_robots", "", []string{pushed + "/data/train-00000-of-00002.parquet", pushed + "/data/train-00001-of-00002.parquet"}},
		{"HuggingFaceH4/no_robots", "test", []string{pushed + "/data/test-00000-of-00001.parquet"}},
		{"HuggingFaceH4/no_robots@v1", "train", []string{pushedV1 + "/data/train-00000-of-00001.parquet"}},
		{"trl-lib/Capybara", "train", []string{conv + "/default/train/0000.parquet"}},
		{"trl-lib/Capybara", "validation", []string{conv + "/default/validation/0000.parquet"}},
		{"HuggingFaceH4/ultrachat_200k", "train_sft", []string{custom + "/data/train_sft-00000-of-00001.parquet"}},
		{"HuggingFaceH4/ultrachat_200k", "test_sft", []string{custom + "/data/test_sft-00000-of-00001.parquet"}},
		{"someone/kw", "validation", []string{kw + "/my_dev_set.jsonl"}},
		{"someone/kw", "test", []string{kw + "/eval_2024.parquet"}},
		{"someone/kw", "train", []string{kw + "/training.parquet"}},
		{"someone/flat", "train", []string{flat + "/part1.parquet", flat + "/part2.parquet"}},
	} {
		got, err := loc.Dataset(tc.name, tc.split)
		if err != nil || strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("Dataset(%q, %q) = %q, %v\nwant %q", tc.name, tc.split, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ name, split, want string }{
		{"someone/flat", "test", `someone/flat: no data files for split "test" in ` + flat + " (files: part1.parquet, part2.parquet)"},
		{"HuggingFaceH4/ultrachat_200k", "validation", `HuggingFaceH4/ultrachat_200k: no data files for split "validation" in ` + custom +
			" (files: data/test_sft-00000-of-00001.parquet, data/train_gen-00000-of-00001.parquet, data/train_sft-00000-of-00001.parquet)"},
		{"Anthropic/hh-rlhf", "train", "Anthropic/hh-rlhf: not a local path, and not in the Hugging Face cache " + cache +
			" (no datasets--Anthropic--hh-rlhf) (fetch it with: huggingface-cli download --repo-type dataset Anthropic/hh-rlhf)"},
		{"HuggingFaceH4/no_robots@v9", "train", `HuggingFaceH4/no_robots@v9: revision "v9" is neither a ref nor a snapshot in ` +
			filepath.Join(cache, "datasets--HuggingFaceH4--no_robots") + " (fetch it with: huggingface-cli download --repo-type dataset HuggingFaceH4/no_robots --revision v9)"},
	} {
		_, err := loc.Dataset(tc.name, tc.split)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Dataset(%q, %q) error:\n got %v\nwant %s", tc.name, tc.split, err, tc.want)
		}
	}
}

// TestDataArgsReadNames: the trainers' data keys read a cached dataset by name, the split chosen by
// dataset_train_split and dataset_test_split, rows counted as ../shared/README.md lists them.
func TestDataArgsReadNames(t *testing.T) {
	nr := sharedtest.Path(t, "data", "no_robots_test_sft.parquet")
	cap := sharedtest.Path(t, "data", "capybara_test.parquet")
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	putRepo(t, cache, "datasets", "HuggingFaceH4/no_robots", "main", commitMain, map[string]string{
		"data/train-00000-of-00002.parquet": nr,  // 500 rows
		"data/train-00001-of-00002.parquet": cap, // 200 rows
		"data/test-00000-of-00001.parquet":  cap,
	})
	a := data.Args{DatasetName: "HuggingFaceH4/no_robots", EvalDatasetName: "HuggingFaceH4/no_robots"}.Defaults()
	tr, ev, err := a.Load(1)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 700 || ev.Len() != 200 {
		t.Errorf("train %d rows, eval %d; want 700 and 200", tr.Len(), ev.Len())
	}
	// A row keeps its own shard and row number.
	if r := tr.Records[650]; !strings.HasSuffix(r.Source, "train-00001-of-00002.parquet") || r.Row != 150 {
		t.Errorf("record 650 from %s row %d", r.Source, r.Row)
	}
	a.DatasetTrainSplit = "test"
	a.EvalDatasetName = ""
	if tr, _, err = a.Load(1); err != nil || tr.Len() != 200 {
		t.Errorf("dataset_train_split test: %v rows, %v", tr, err)
	}
	a.DatasetTrainSplit = "validation"
	want := `reading HuggingFaceH4/no_robots: no data files for split "validation" in ` + filepath.Join(cache, "datasets--HuggingFaceH4--no_robots", "snapshots", commitMain) +
		" (files: data/test-00000-of-00001.parquet, data/train-00000-of-00002.parquet, data/train-00001-of-00002.parquet)"
	if _, _, err := a.Load(1); err == nil || err.Error() != want {
		t.Errorf("missing split:\n got %v\nwant %s", err, want)
	}
	// A local file named like a repo id wins.
	wd := t.TempDir()
	t.Chdir(wd)
	b, _ := os.ReadFile(cap)
	mustWrite(t, filepath.Join(wd, "HuggingFaceH4", "no_robots.parquet"), b)
	if tr, _, err := (data.Args{DatasetName: "HuggingFaceH4/no_robots.parquet"}).Load(1); err != nil || tr.Len() != 200 {
		t.Errorf("local file: %v, %v", tr, err)
	}
}

// TestLoadersReadNames: the rlhf prompt loader and the reward model's pair loader, which read rows
// themselves, take dataset names and splits too.
func TestLoadersReadNames(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	putRepo(t, cache, "datasets", "HuggingFaceH4/no_robots", "main", commitMain, map[string]string{
		"data/train-00000-of-00001.parquet": sharedtest.Path(t, "data", "no_robots_test_sft.parquet"),
		"data/test-00000-of-00001.parquet":  sharedtest.Path(t, "data", "capybara_test.parquet"),
	})
	putRepo(t, cache, "datasets", "Intel/orca_dpo_pairs", "main", commitMain, map[string]string{
		"validation/0000.parquet": sharedtest.Path(t, "data", "orca_dpo_pairs_validation_chat.parquet"),
	})
	for split, want := range map[string]int{"train": 500, "test": 200} {
		ps, err := rlhf.LoadPromptsSplit("HuggingFaceH4/no_robots", split, nil)
		if err != nil || len(ps) != want {
			t.Errorf("prompts, split %s: %d, %v; want %d", split, len(ps), err, want)
		}
	}
	pairs, err := reward.LoadPairsSplit("Intel/orca_dpo_pairs", "validation", nil, "", nil)
	if err != nil || pairs.Len() != 284 {
		t.Errorf("pairs: %v", err)
	}
}
