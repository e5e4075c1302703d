package hub

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// splitKeywords are the names the datasets library takes as the same split when it infers splits
// from file and directory names (datasets.data_files.SPLIT_KEYWORDS; the Hub's "File names and
// splits" guide: train/training, validation/valid/val/dev, test/testing/eval/evaluation).
var splitKeywords = map[string][]string{
	"train":      {"train", "training"},
	"validation": {"validation", "valid", "val", "dev"},
	"test":       {"test", "testing", "eval", "evaluation"},
}

// dataExts are the data files a split is read from.
var dataExts = map[string]bool{".parquet": true, ".jsonl": true, ".ndjson": true}

// Dataset resolves a dataset repo id (org/name[@revision]) and a split to the split's data files,
// sorted by their path in the repo (shard order). A local path that exists is returned alone.
//
// A file belongs to split S when, in this order of preference:
//  1. a directory of its path is named S, or its file name is S followed by '-' or '.'
//     (push_to_hub's data/S-00000-of-00001.parquet, the parquet converter's config/S/0000.parquet);
//  2. else, as the datasets library infers splits, one of S's keywords (train/training, ...) is
//     delimited by non-word characters ('-', '_', '.', ' ', digits, '/') in its path;
//  3. else, for S = train only, when no file names any split, every data file is train.
func (l Locations) Dataset(name, split string) ([]string, error) {
	if exists(name) {
		return []string{name}, nil
	}
	r, ok := ParseRepo(name)
	if !ok {
		return nil, fmt.Errorf("%s: no such file or directory (and not a Hugging Face org/name)", name)
	}
	if split == "" {
		split = "train"
	}
	snap, err := l.snapshot("datasets", r, fetchDataset(r))
	if err != nil {
		return nil, err
	}
	var rel []string
	err = filepath.WalkDir(snap, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !dataExts[strings.ToLower(filepath.Ext(p))] {
			return nil
		}
		if _, err := os.Stat(p); err != nil { // a snapshot file is a symlink into blobs/
			return fmt.Errorf("%s: a broken link (an incomplete download?): %w", p, err)
		}
		rp, _ := filepath.Rel(snap, p)
		rel = append(rel, filepath.ToSlash(rp))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.ID(), err)
	}
	sort.Strings(rel)
	if len(rel) == 0 {
		return nil, fmt.Errorf("%s: snapshot %s holds no .parquet or .jsonl files", r.ID()+revSuffix(r), snap)
	}
	picked := pickSplit(rel, split)
	if len(picked) == 0 {
		show := rel
		if len(show) > 5 {
			show = append(show[:5:5], fmt.Sprintf("... %d more", len(rel)-5))
		}
		return nil, fmt.Errorf("%s: no data files for split %q in %s (files: %s)", r.ID()+revSuffix(r), split, snap, strings.Join(show, ", "))
	}
	out := make([]string, len(picked))
	for i, p := range picked {
		out[i] = filepath.Join(snap, filepath.FromSlash(p))
	}
	return out, nil
}

// pickSplit chooses split's files among rel (slash-separated paths in the repo).
func pickSplit(rel []string, split string) []string {
	var exact []string
	for _, p := range rel {
		dirs := strings.Split(p, "/")
		base := dirs[len(dirs)-1]
		hit := strings.HasPrefix(base, split+"-") || strings.HasPrefix(base, split+".")
		for _, d := range dirs[:len(dirs)-1] {
			hit = hit || d == split
		}
		if hit {
			exact = append(exact, p)
		}
	}
	if len(exact) > 0 {
		return exact
	}
	kws, known := splitKeywords[split]
	if !known {
		kws = []string{split}
	}
	var byKeyword []string
	for _, p := range rel {
		if keywordRe(kws).MatchString(p) {
			byKeyword = append(byKeyword, p)
		}
	}
	if len(byKeyword) > 0 || split != "train" {
		return byKeyword
	}
	for _, ks := range splitKeywords {
		for _, p := range rel {
			if keywordRe(ks).MatchString(p) {
				return nil // the files name splits, and none is train
			}
		}
	}
	return rel
}

// keywordRe matches a keyword delimited as the datasets library's split patterns delimit it: a
// non-word character ("-._ 0-9") or '/' or the start before, a non-word character or '/' after.
func keywordRe(kws []string) *regexp.Regexp {
	q := make([]string, len(kws))
	for i, k := range kws {
		q[i] = regexp.QuoteMeta(k)
	}
	return regexp.MustCompile(`(?:^|[-._ 0-9/])(?:` + strings.Join(q, "|") + `)[-._ 0-9/]`)
}
