package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

type inspectJSON struct {
	Rows   int
	Schema []struct {
		Name, Type string
	}
	Jobs []struct {
		Job string
		OK  bool
	}
}

func inspectCLI(t *testing.T, path string) inspectJSON {
	t.Helper()
	r := runCLI(t, "data", "inspect", path, "--json")
	if r.Code != 0 {
		t.Fatalf("inspect %s: %s", path, r.Stderr)
	}
	var out inspectJSON
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDataCLI: `data inspect` reports ../shared/README.md's row counts and columns for each file;
// `data convert` to JSON Lines and back keeps them; `data dedup` writes its side file; bad input is
// one line naming the file, row and column.
func TestDataCLI(t *testing.T) {
	dir := sharedtest.Path(t, "data")
	tmp := t.TempDir()
	for _, tc := range []struct {
		file    string
		rows    int
		columns string
		sft     bool
	}{
		{"no_robots_test_sft.parquet", 500, "prompt prompt_id messages category", true},
		{"capybara_test.parquet", 200, "source messages num_turns", true},
		{"hh_rlhf_harmless_base_test.parquet", 2312, "chosen rejected", false},
		{"orca_dpo_pairs_validation_chat.parquet", 284, "prompt chosen rejected", false},
		{"alpaca_en_demo.parquet", 999, "instruction input output", true},
	} {
		in := filepath.Join(dir, tc.file)
		got := inspectCLI(t, in)
		var cols []string
		for _, c := range got.Schema {
			cols = append(cols, c.Name)
		}
		if got.Rows != tc.rows || strings.Join(cols, " ") != tc.columns || got.Jobs[0].OK != tc.sft || got.Jobs[2].OK == tc.sft {
			t.Errorf("%s: %+v", tc.file, got)
		}
		j := filepath.Join(tmp, tc.file+".jsonl")
		p := filepath.Join(tmp, tc.file)
		if r := runCLI(t, "data", "convert", in, j); r.Code != 0 || r.Stdout != "wrote "+itoa(tc.rows)+" rows to "+j+"\n" {
			t.Fatalf("convert: %q %s", r.Stdout, r.Stderr)
		}
		if r := runCLI(t, "data", "convert", j, p); r.Code != 0 {
			t.Fatalf("convert back: %s", r.Stderr)
		}
		back := inspectCLI(t, p)
		if back.Rows != got.Rows || len(back.Schema) != len(got.Schema) {
			t.Errorf("%s after the round trip: %+v", tc.file, back)
		}
		for i := range got.Schema {
			if got.Schema[i] != back.Schema[i] {
				t.Errorf("%s column %d: %+v, was %+v", tc.file, i, back.Schema[i], got.Schema[i])
			}
		}
	}

	out := filepath.Join(tmp, "alpaca_dedup.parquet")
	r := runCLI(t, "data", "dedup", filepath.Join(dir, "alpaca_en_demo.parquet"), out)
	side := filepath.Join(tmp, "alpaca_dedup.removed.jsonl")
	if r.Code != 0 || r.Stdout != "kept 985 rows in "+out+"; removed 14 (listed in "+side+")\n" {
		t.Fatalf("dedup: %q %s", r.Stdout, r.Stderr)
	}
	if b, err := os.ReadFile(side); err != nil || strings.Count(string(b), "\n") != 14 {
		t.Errorf("side file: %v\n%s", err, b)
	}

	bad := filepath.Join(tmp, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"text":"a"}`+"\n"+`{"text":"b"`+"\n"), 0o644)
	r = runCLI(t, "data", "convert", bad, filepath.Join(tmp, "bad.parquet"))
	if r.Code == 0 || r.ErrorLine() != "alignkit: reading "+bad+": row 1 (line 2): invalid JSON: unexpected EOF" {
		t.Errorf("bad input: %q", r.ErrorLine())
	}
	if _, err := os.Stat(filepath.Join(tmp, "bad.parquet")); !os.IsNotExist(err) {
		t.Errorf("bad input left an output file")
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
