package datatool_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/datatool"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
)

// sharedFiles are ../shared/data's files with the row counts and schemas of ../shared/README.md's
// table (README writes list<struct<content, role>>; here each member's type is named too), and the
// jobs that can read them.
var sharedFiles = []struct {
	file   string
	rows   int
	schema string
	format data.Format
}{
	{"no_robots_test_sft.parquet", 500, "prompt: string; prompt_id: string; messages: list<struct<content: string, role: string>>; category: string", data.FormatConversation},
	{"capybara_test.parquet", 200, "source: string; messages: list<struct<content: string, role: string>>; num_turns: int", data.FormatConversation},
	{"hh_rlhf_harmless_base_test.parquet", 2312, "chosen: string; rejected: string", data.FormatPreference},
	{"orca_dpo_pairs_validation_chat.parquet", 284, "prompt: string; chosen: list<struct<content: string, role: string>>; rejected: list<struct<content: string, role: string>>", data.FormatPreference},
	{"alpaca_en_demo.parquet", 999, "instruction: string; input: string; output: string", data.FormatAlpaca},
}

func schemaString(fs []datatool.Field) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Name + ": " + f.Type.String()
	}
	return strings.Join(parts, "; ")
}

func read(t *testing.T, path string) *datatool.Table {
	t.Helper()
	tb, err := datatool.Read(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestInspectSharedFiles(t *testing.T) {
	dir := sharedtest.Path(t, "data")
	for _, sf := range sharedFiles {
		t.Run(sf.file, func(t *testing.T) {
			rep, err := datatool.Inspect(read(t, filepath.Join(dir, sf.file)), datatool.InspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rows != sf.rows {
				t.Errorf("rows %d, want %d", rep.Rows, sf.rows)
			}
			if got := schemaString(rep.Schema); got != sf.schema {
				t.Errorf("schema\n got %s\nwant %s", got, sf.schema)
			}
			for _, j := range rep.Jobs {
				want := (j.Job == "sft") != (sf.format == data.FormatPreference)
				if j.OK != want || j.Format != sf.format {
					t.Errorf("job %s: ok %v format %s (%s); want ok %v format %s", j.Job, j.OK, j.Format, j.Why, want, sf.format)
				}
			}
		})
	}
}

func TestInspectColumnMapping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	if err := os.WriteFile(path, []byte(`{"question":"2+2?","good":"4","bad":"5"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := datatool.Inspect(read(t, path), datatool.InspectOptions{Columns: map[string]string{"prompt": "question", "chosen": "good", "rejected": "bad"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"prompt": "question", "chosen": "good", "rejected": "bad"}
	if j := rep.Jobs[2]; j.Job != "dpo" || !j.OK || !reflect.DeepEqual(j.Uses, want) {
		t.Errorf("dpo: %+v, want columns %v", j, want)
	}
	// Without the mapping no job can read it, and the reason is data's one line.
	rep, err = datatool.Inspect(read(t, path), datatool.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	why := path + ": row 0: cannot tell the data format from columns [bad good question]: want text, messages, prompt+completion, instruction+output or chosen+rejected (rename with columns:)"
	if rep.Jobs[0].OK || rep.Jobs[0].Why != why {
		t.Errorf("sft: %+v\nwant why %s", rep.Jobs[0], why)
	}
}

// TestInspectTokensMatchBatchers: the rows inspect says a job drops or truncates are exactly those
// the trainers' batchers drop and truncate (data.NewBatcher, data.NewPairBatcher) at that max_length.
func TestInspectTokensMatchBatchers(t *testing.T) {
	m, err := checkpoint.Open(sharedtest.Path(t, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	dir := sharedtest.Path(t, "data")
	for _, tc := range []struct {
		file         string
		rows, maxLen int
	}{
		{"alpaca_en_demo.parquet", 999, 64},
		{"capybara_test.parquet", 40, 512}, // the first 40 rows: long conversations are slow to render turn by turn
		{"orca_dpo_pairs_validation_chat.parquet", 100, 256},
	} {
		t.Run(tc.file, func(t *testing.T) {
			tb := read(t, filepath.Join(dir, tc.file))
			tb.Rows = tb.Rows[:tc.rows]
			rep, err := datatool.Inspect(tb, datatool.InspectOptions{Tok: m.Tok, ModelName: "stories260K", ChatTemplate: "chatml", MaxLength: tc.maxLen})
			if err != nil {
				t.Fatal(err)
			}
			tr := rep.Tokens
			ds, err := data.Convert(tb.Rows, data.Source{Path: tb.Source})
			if err != nil {
				t.Fatal(err)
			}
			tk, err := lm.DataTokenizer(m.Tok, "chatml")
			if err != nil {
				t.Fatal(err)
			}
			if tr.Unusable != 0 {
				t.Fatalf("%d unusable rows: %+v", tr.Unusable, tr.Notes[0])
			}
			if ds.Format == data.FormatPreference {
				pairs, err := tk.PairExamples(context.Background(), ds.Pairs)
				if err != nil {
					t.Fatal(err)
				}
				b, err := data.NewPairBatcher(pairs, m.Tok.EOS(), data.PairBatchConfig{BatchSize: 4, MaxLength: tc.maxLen, PadID: lm.PadID(m.Tok, m.Weights.Config)})
				if err != nil {
					t.Fatal(err)
				}
				st := b.Stats()
				prompts, answers := 0, 0
				for _, n := range tr.Notes {
					prompts += strings.Count(n.Why, "prompt of")
					answers += strings.Count(n.Why, "answer of")
				}
				if prompts != st.PromptTruncated || answers != st.AnswerTruncated || prompts == 0 || answers == 0 {
					t.Errorf("inspect: %d prompts, %d answers truncated; batcher: %+v", prompts, answers, st)
				}
				if tr.Lengths.N != 2*len(pairs) {
					t.Errorf("lengths over %d rows, want %d", tr.Lengths.N, 2*len(pairs))
				}
				return
			}
			exs, err := tk.Examples(context.Background(), ds.Records, "")
			if err != nil {
				t.Fatal(err)
			}
			b, err := data.NewBatcher(exs, m.Tok.EOS(), data.BatchConfig{BatchSize: 4, MaxLength: tc.maxLen, PadID: lm.PadID(m.Tok, m.Weights.Config), DropUntrained: true})
			if err != nil {
				t.Fatal(err)
			}
			st := b.Stats()
			// The batcher counts every cut example as truncated, dropped ones included.
			if tr.Dropped != st.Dropped || tr.Truncated+tr.Dropped != st.Truncated || tr.Truncated == 0 {
				t.Errorf("inspect: %d dropped, %d truncated; batcher: %d dropped, %d truncated", tr.Dropped, tr.Truncated, st.Dropped, st.Truncated)
			}
			maxSeen := 0
			for _, e := range exs {
				maxSeen = max(maxSeen, len(e.IDs))
			}
			if tr.Lengths.N != len(exs) || tr.Lengths.Max != maxSeen {
				t.Errorf("lengths %+v; want n %d max %d", tr.Lengths, len(exs), maxSeen)
			}
		})
	}
}

// TestConvertRoundTrip: every shared file through JSON Lines and back to Parquet keeps its
// columns and every value.
func TestConvertRoundTrip(t *testing.T) {
	dir := sharedtest.Path(t, "data")
	tmp := t.TempDir()
	for _, sf := range sharedFiles {
		t.Run(sf.file, func(t *testing.T) {
			orig := read(t, filepath.Join(dir, sf.file))
			j := filepath.Join(tmp, sf.file+".jsonl")
			p := filepath.Join(tmp, sf.file)
			if err := datatool.Write(j, orig.Columns, orig.Rows); err != nil {
				t.Fatal(err)
			}
			mid := read(t, j)
			if err := datatool.Write(p, orig.Columns, mid.Rows); err != nil {
				t.Fatal(err)
			}
			back := read(t, p)
			if !slices.Equal(back.Columns, orig.Columns) {
				t.Errorf("columns %v, want %v", back.Columns, orig.Columns)
			}
			if len(back.Rows) != len(orig.Rows) || len(mid.Rows) != len(orig.Rows) {
				t.Fatalf("rows %d / %d, want %d", len(mid.Rows), len(back.Rows), len(orig.Rows))
			}
			for i := range orig.Rows {
				if !reflect.DeepEqual(back.Rows[i].Fields, orig.Rows[i].Fields) || !reflect.DeepEqual(mid.Rows[i].Fields, orig.Rows[i].Fields) {
					t.Fatalf("row %d differs:\n%v\n%v", i, orig.Rows[i].Fields, back.Rows[i].Fields)
				}
			}
		})
	}
	// Floats, nulls and ints survive JSON Lines (1.0 stays a float).
	j := filepath.Join(tmp, "types.jsonl")
	rows := []data.Row{{Fields: map[string]any{"f": 1.0, "i": int64(2), "s": nil}}, {Fields: map[string]any{"f": 2.5, "i": int64(-3), "s": "x"}}}
	if err := datatool.Write(j, []string{"f", "i", "s"}, rows); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(j)
	if want := "{\"f\":1.0,\"i\":2,\"s\":null}\n{\"f\":2.5,\"i\":-3,\"s\":\"x\"}\n"; string(b) != want {
		t.Errorf("jsonl:\n%s\nwant\n%s", b, want)
	}
	p := filepath.Join(tmp, "types.parquet")
	if err := datatool.Write(p, []string{"f", "i", "s"}, rows); err != nil {
		t.Fatal(err)
	}
	if back := read(t, p); !reflect.DeepEqual(back.Rows[0].Fields, rows[0].Fields) || !reflect.DeepEqual(back.Rows[1].Fields, rows[1].Fields) {
		t.Errorf("parquet: %v", back.Rows)
	}
}

func TestConvertLayouts(t *testing.T) {
	dir := sharedtest.Path(t, "data")
	tmp := t.TempDir()

	// alpaca -> messages: what the SFT trainer would have read from the alpaca file.
	al := read(t, filepath.Join(dir, "alpaca_en_demo.parquet"))
	want, err := data.Convert(al.Rows, data.Source{Path: al.Source})
	if err != nil {
		t.Fatal(err)
	}
	conv, err := datatool.Convert(al, datatool.ConvertOptions{From: datatool.LayoutAlpaca})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(conv.Columns, []string{"messages"}) {
		t.Errorf("columns %v", conv.Columns)
	}
	got, err := data.Convert(conv.Rows, data.Source{Path: al.Source})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got.Records {
		w := want.Records[i]
		if r.Format != data.FormatConversation || !slices.Equal(r.Messages, append(slices.Clone(w.PromptMessages), w.CompletionMessages...)) {
			t.Fatalf("row %d: %+v, want %+v %+v", i, r.Messages, w.PromptMessages, w.CompletionMessages)
		}
	}

	// hh-rlhf -> explicit prompt/chosen/rejected: the same pairs the DPO trainer reads.
	hh := read(t, filepath.Join(dir, "hh_rlhf_harmless_base_test.parquet"))
	wantP, err := data.Convert(hh.Rows, data.Source{Path: hh.Source})
	if err != nil {
		t.Fatal(err)
	}
	hconv, err := datatool.Convert(hh, datatool.ConvertOptions{From: datatool.LayoutHHRLHF})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "hh.parquet")
	if err := datatool.Write(out, hconv.Columns, hconv.Rows); err != nil {
		t.Fatal(err)
	}
	gotP, err := data.Load(data.Source{Path: out})
	if err != nil {
		t.Fatal(err)
	}
	if len(gotP.Pairs) != 2312 {
		t.Fatalf("%d pairs", len(gotP.Pairs))
	}
	for i := range gotP.Pairs {
		g, w := gotP.Pairs[i], wantP.Pairs[i]
		if !slices.Equal(g.PromptMessages, w.PromptMessages) || !slices.Equal(g.ChosenMessages, w.ChosenMessages) || !slices.Equal(g.RejectedMessages, w.RejectedMessages) {
			t.Fatalf("pair %d differs", i)
		}
	}

	// ShareGPT, with a system column and a rename first.
	sg := filepath.Join(tmp, "sg.jsonl")
	lines := `{"convs":[{"from":"human","value":"Hi"},{"from":"gpt","value":"Hello!"}],"system":"Be brief.","id":7}` + "\n" +
		`{"convs":[{"from":"user","value":"2+2?"},{"from":"assistant","value":"4"}],"system":"","id":8}` + "\n"
	if err := os.WriteFile(sg, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	sconv, err := datatool.Convert(read(t, sg), datatool.ConvertOptions{Rename: map[string]string{"convs": "conversations"}, From: datatool.LayoutShareGPT})
	if err != nil {
		t.Fatal(err)
	}
	jo := filepath.Join(tmp, "sg_out.jsonl")
	if err := datatool.Write(jo, sconv.Columns, sconv.Rows); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(jo)
	wantJ := `{"id":7,"messages":[{"content":"Be brief.","role":"system"},{"content":"Hi","role":"user"},{"content":"Hello!","role":"assistant"}]}` + "\n" +
		`{"id":8,"messages":[{"content":"2+2?","role":"user"},{"content":"4","role":"assistant"}]}` + "\n"
	if string(b) != wantJ {
		t.Errorf("sharegpt:\n%s\nwant\n%s", b, wantJ)
	}

	// Bad input: one line naming file, row and column.
	bad := filepath.Join(tmp, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"conversations":[{"from":"human","value":"a"}]}`+"\n"+`{"conversations":[{"from":"tool","value":"b"}]}`+"\n"), 0o644)
	_, err = datatool.Convert(read(t, bad), datatool.ConvertOptions{From: datatool.LayoutShareGPT})
	if w := bad + `: row 1: column "conversations": turn 0: from "tool" is not one of human, user, gpt, assistant, system`; err == nil || err.Error() != w {
		t.Errorf("bad sharegpt: %v\nwant %s", err, w)
	}
	_, err = datatool.Convert(read(t, bad), datatool.ConvertOptions{Rename: map[string]string{"nope": "x"}})
	if w := bad + `: --rename nope=x: no column "nope" (columns: [conversations])`; err == nil || err.Error() != w {
		t.Errorf("bad rename: %v\nwant %s", err, w)
	}
	mixed := filepath.Join(tmp, "mixed.jsonl")
	os.WriteFile(mixed, []byte(`{"a":"x"}`+"\n"+`{"a":[1]}`+"\n"), 0o644)
	if err := datatool.Write(filepath.Join(tmp, "mixed.parquet"), []string{"a"}, read(t, mixed).Rows); err == nil ||
		err.Error() != "writing "+filepath.Join(tmp, "mixed.parquet")+": "+mixed+`: row 1: column "a": want string like earlier rows, got list<int>` {
		t.Errorf("mixed types: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "mixed.parquet")); !os.IsNotExist(err) {
		t.Errorf("a failed write left a file: %v", err)
	}
}

func TestSplitAndSample(t *testing.T) {
	tb := read(t, sharedtest.Path(t, "data", "capybara_test.parquet"))
	tr, te, err := datatool.Split(tb, 0.25, 7)
	if err != nil {
		t.Fatal(err)
	}
	// The test rows are those eval_split 0.25 with seed 7 holds out.
	_, evalIdx, _ := data.SplitIndices(200, 0.25, 7)
	if len(te.Rows) != 50 || len(tr.Rows) != 150 {
		t.Fatalf("%d/%d rows", len(tr.Rows), len(te.Rows))
	}
	for i, j := range evalIdx {
		if te.Rows[i].Index != j {
			t.Fatalf("test row %d is %d, want %d", i, te.Rows[i].Index, j)
		}
	}
	seen := map[int]bool{}
	for _, r := range append(slices.Clone(tr.Rows), te.Rows...) {
		if seen[r.Index] {
			t.Fatalf("row %d in both", r.Index)
		}
		seen[r.Index] = true
	}
	a, _ := datatool.Sample(tb, 30, 1)
	b, _ := datatool.Sample(tb, 30, 1)
	c, _ := datatool.Sample(tb, 30, 2)
	idx := func(t *datatool.Table) []int {
		var out []int
		for _, r := range t.Rows {
			out = append(out, r.Index)
		}
		return out
	}
	if !slices.Equal(idx(a), idx(b)) || slices.Equal(idx(a), idx(c)) || !slices.IsSorted(idx(a)) || len(slices.Compact(idx(a))) != 30 {
		t.Errorf("samples %v %v %v", idx(a), idx(b), idx(c))
	}
	if _, err := datatool.Sample(tb, 201, 1); err == nil || err.Error() != tb.Source+": -n 201: want 1 to 200 (the file's rows)" {
		t.Errorf("oversample: %v", err)
	}
}

// TestDedupPlanted plants exact and near copies of no_robots rows (whose 500 rows have no
// duplicates) and checks that exactly those are removed, each attributed to its original.
func TestDedupPlanted(t *testing.T) {
	tb := read(t, sharedtest.Path(t, "data", "no_robots_test_sft.parquet"))
	n := len(tb.Rows)
	for _, near := range []bool{false, true} {
		kept, removed, err := datatool.Dedup(tb, datatool.DedupOptions{Near: near})
		if err != nil || len(removed) != 0 || len(kept.Rows) != n {
			t.Fatalf("near=%v: the distinct rows lost %d: %v %v", near, len(removed), removed, err)
		}
	}
	// Plant: exact copies of rows 3 and 250; near copies of rows 10 and 400 with one word changed
	// near the end of their long texts; a rewrite of row 20 too different to be a near duplicate.
	copyRow := func(i int) data.Row {
		b, _ := json.Marshal(tb.Rows[i].Fields)
		var f map[string]any
		json.Unmarshal(b, &f)
		return data.Row{Source: "planted", Index: 1000 + i, Fields: f}
	}
	edit := func(r data.Row, f func(string) string) data.Row {
		msgs := r.Fields["messages"].([]any)
		last := msgs[len(msgs)-1].(map[string]any)
		last["content"] = f(last["content"].(string))
		return r
	}
	longest := func() int { // a row whose last message is long enough for a one-word edit to stay above 0.8
		for i := 10; i < n; i++ {
			msgs := tb.Rows[i].Fields["messages"].([]any)
			if len(strings.Fields(msgs[len(msgs)-1].(map[string]any)["content"].(string))) > 150 {
				return i
			}
		}
		t.Fatal("no long row")
		return 0
	}
	nearA := longest()
	planted := slices.Clone(tb.Rows)
	planted = append(planted, copyRow(3), copyRow(250))
	planted = append(planted, edit(copyRow(nearA), func(s string) string {
		w := strings.Fields(s)
		w[len(w)-3] = "zebra"
		return strings.Join(w, " ")
	}))
	planted = append(planted, edit(copyRow(20), func(s string) string {
		w := strings.Fields(s)
		slices.Reverse(w)
		return strings.Join(w, " ")
	}))
	pt := &datatool.Table{Source: tb.Source, Columns: tb.Columns, Rows: planted}

	kept, removed, err := datatool.Dedup(pt, datatool.DedupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(removed)
	want := fmt.Sprint([]datatool.Removed{
		{Source: "planted", Row: 1003, Reason: "exact duplicate", Of: 3, Against: tb.Source},
		{Source: "planted", Row: 1250, Reason: "exact duplicate", Of: 250, Against: tb.Source},
	})
	if got != want || len(kept.Rows) != n+2 {
		t.Errorf("exact:\n got %s\nwant %s", got, want)
	}
	kept, removed, err = datatool.Dedup(pt, datatool.DedupOptions{Near: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 || len(kept.Rows) != n+1 {
		t.Fatalf("near: removed %v", removed)
	}
	r := removed[2]
	if r.Row != 1000+nearA || r.Of != nearA || r.Score < 0.8 || r.Score >= 1 || !strings.HasPrefix(r.Reason, "near duplicate (Jaccard ") {
		t.Errorf("near duplicate: %+v", r)
	}
	if kept.Rows[len(kept.Rows)-1].Index != 1020 {
		t.Errorf("the reversed row 20 should be kept")
	}
}

// TestDecontaminatePlanted: evaluation rows that quote 13 consecutive words of three alpaca rows
// (inside other text) remove exactly those rows; 12 words are not enough.
func TestDecontaminatePlanted(t *testing.T) {
	tb := read(t, sharedtest.Path(t, "data", "alpaca_en_demo.parquet"))
	quote := func(i, n int) string {
		w := strings.Fields(tb.Rows[i].Fields["output"].(string))
		if len(w) < n+5 {
			t.Fatalf("row %d output too short", i)
		}
		return "Qqqq zzzz. " + strings.Join(w[2:2+n], " ") + " xxyyzz wwvvuu."
	}
	var targets []int
	for i := 30; len(targets) < 4; i++ {
		if len(strings.Fields(tb.Rows[i].Fields["output"].(string))) > 30 {
			targets = append(targets, i)
		}
	}
	eval := &datatool.Table{Source: "eval.jsonl", Columns: []string{"text"}}
	for k, i := range targets {
		n := 13
		if k == 3 {
			n = 12 // too short to count
		}
		eval.Rows = append(eval.Rows, data.Row{Source: "eval.jsonl", Index: k, Fields: map[string]any{"text": quote(i, n)}})
	}
	kept, removed, err := datatool.Decontaminate(tb, eval, datatool.DecontaminateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Exact duplicates of a target row in alpaca would be removed too; none of these has one.
	var rows []int
	for _, r := range removed {
		rows = append(rows, r.Row)
		if r.Against != "eval.jsonl" || len(strings.Fields(r.NGram)) != 13 || !strings.Contains(strings.ToLower(tb.Rows[r.Row].Fields["output"].(string)), strings.Fields(r.NGram)[0]) {
			t.Errorf("removal %+v", r)
		}
	}
	if !slices.Equal(rows, targets[:3]) || len(kept.Rows) != len(tb.Rows)-3 {
		t.Errorf("removed rows %v, want %v", rows, targets[:3])
	}
	// The side file.
	side := filepath.Join(t.TempDir(), "out.removed.jsonl")
	if err := datatool.WriteRemoved(side, removed); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(side)
	if got := strings.Count(string(b), "\n"); got != 3 || !strings.Contains(string(b), `"reason":"shares a word 13-gram with the evaluation data"`) {
		t.Errorf("side file:\n%s", b)
	}
	if datatool.RemovedPath("/x/clean.parquet") != "/x/clean.removed.jsonl" {
		t.Error(datatool.RemovedPath("/x/clean.parquet"))
	}
}

// TestReadHubName: a dataset name resolves through the hub cache (HF_HUB_CACHE) to its split's
// files, with the first file's column order.
func TestReadHubName(t *testing.T) {
	src, err := os.ReadFile(sharedtest.Path(t, "data", "no_robots_test_sft.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	repo := filepath.Join(cache, "datasets--HuggingFaceH4--no_robots")
	const commit = "e6f9a4ac5c08f3a1f7bd3a3f1d5c1b7a3e7c2d10"
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644)
	os.MkdirAll(filepath.Join(repo, "snapshots", commit, "data"), 0o755)
	os.WriteFile(filepath.Join(repo, "snapshots", commit, "data", "test-00000-of-00001.parquet"), src, 0o644)
	tb, err := datatool.Read("HuggingFaceH4/no_robots", "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Rows) != 500 || strings.Join(tb.Columns, " ") != "prompt prompt_id messages category" {
		t.Errorf("%d rows, columns %v", len(tb.Rows), tb.Columns)
	}
	want := `HuggingFaceH4/no_robots: no data files for split "train" in ` + filepath.Join(repo, "snapshots", commit) + " (files: data/test-00000-of-00001.parquet)"
	if _, err := datatool.Read("HuggingFaceH4/no_robots", "train"); err == nil || err.Error() != "reading "+want {
		t.Errorf("missing split: %v", err)
	}
}
