package data

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// TestSharedParquet reads the real shared files: row counts as documented in
// shared/README.md, every conversation non-empty, and formats detected.
func TestSharedParquet(t *testing.T) {
	dir := filepath.Join(sharedtest.Dir(t), "data")
	tests := []struct {
		file   string
		rows   int
		format Format
	}{
		{"no_robots_test_sft.parquet", 500, FormatConversation},
		{"capybara_test.parquet", 200, FormatConversation},
		{"hh_rlhf_harmless_base_test.parquet", 2312, FormatPreference},
		{"orca_dpo_pairs_validation_chat.parquet", 284, FormatPreference},
		{"alpaca_en_demo.parquet", 999, FormatAlpaca},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			ds, err := Load(Source{Path: filepath.Join(dir, tc.file)})
			if err != nil {
				t.Fatal(err)
			}
			if ds.Len() != tc.rows {
				t.Fatalf("got %d rows, want %d", ds.Len(), tc.rows)
			}
			switch tc.format {
			case FormatConversation:
				if ds.Format != FormatConversation {
					t.Fatalf("format %s", ds.Format)
				}
				system := 0
				for _, r := range ds.Records {
					if len(r.Messages) == 0 {
						t.Fatalf("row %d: empty messages", r.Row)
					}
					for _, m := range r.Messages {
						if m.Role == "system" {
							system++
						}
					}
					if r.Messages[len(r.Messages)-1].Role != "assistant" {
						t.Fatalf("row %d: last message is %s", r.Row, r.Messages[len(r.Messages)-1].Role)
					}
				}
				if strings.HasPrefix(tc.file, "no_robots") && system == 0 {
					t.Fatal("no_robots has system turns, found none")
				}
			case FormatAlpaca:
				if ds.Format != FormatAlpaca {
					t.Fatalf("format %s", ds.Format)
				}
				for _, r := range ds.Records {
					if len(r.PromptMessages) != 1 || r.PromptMessages[0].Role != "user" || r.PromptMessages[0].Content == "" ||
						len(r.CompletionMessages) != 1 || r.CompletionMessages[0].Role != "assistant" {
						t.Fatalf("row %d: %+v", r.Row, r)
					}
				}
			case FormatPreference:
				for _, p := range ds.Pairs {
					if !p.Conversational || len(p.PromptMessages) == 0 || len(p.ChosenMessages) == 0 || len(p.RejectedMessages) == 0 {
						t.Fatalf("row %d: %+v", p.Row, p)
					}
					if last := p.PromptMessages[len(p.PromptMessages)-1]; last.Role != "user" {
						t.Fatalf("row %d: prompt ends with %s", p.Row, last.Role)
					}
				}
			}
		})
	}
}

// TestSharedRowContents pins a few values read from the real files, checked
// by hand against the files' first rows.
func TestSharedRowContents(t *testing.T) {
	dir := filepath.Join(sharedtest.Dir(t), "data")
	orca, err := Load(Source{Path: filepath.Join(dir, "orca_dpo_pairs_validation_chat.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	p := orca.Pairs[0]
	// chosen and rejected repeat [system, user]; the shared prompt is those
	// two messages and each side keeps its one assistant answer.
	if len(p.PromptMessages) != 2 || p.PromptMessages[0].Role != "system" || p.PromptMessages[1].Role != "user" ||
		!strings.HasPrefix(p.PromptMessages[1].Content, "MM. Georges Colombier") ||
		len(p.ChosenMessages) != 1 || !strings.HasPrefix(p.ChosenMessages[0].Content, "Step 1: Identify the names") ||
		len(p.RejectedMessages) != 1 || !strings.HasPrefix(p.RejectedMessages[0].Content, "Sure, I'd be happy to help!") {
		t.Fatalf("orca row 0: %+v", p)
	}
	hh, err := Load(Source{Path: filepath.Join(dir, "hh_rlhf_harmless_base_test.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	// Row 1: three user turns with two assistant answers between them; the
	// last assistant turns differ.
	q := hh.Pairs[1]
	if len(q.PromptMessages) != 5 || q.PromptMessages[4].Content != "I feel much better when I get drunk and consume a lot of alcohol." || q.PromptMessages[0] != (mm("user", "How much alcohol can I drink per day?")) ||
		q.PromptMessages[2].Content != "Yeah I don't have any health issues so I am going to drink a lot most days." ||
		len(q.ChosenMessages) != 1 || q.ChosenMessages[0].Role != "assistant" {
		t.Fatalf("hh row 1: %+v", q)
	}
	// Row 516 has an empty chosen answer ("Assistant: " and nothing).
	if got := hh.Pairs[516].ChosenMessages; len(got) != 1 || got[0] != (mm("assistant", "")) {
		t.Fatalf("hh row 516 chosen: %+v", got)
	}
}

type msgStruct struct {
	Content *string `parquet:"content,optional"`
	Role    *string `parquet:"role,optional"`
}

type convRow struct {
	Messages []msgStruct `parquet:"messages,optional,list"`
	N        int64       `parquet:"n"`
}

// legacyList is a LIST-annotated group whose repeated group holds an element
// named "item", as pyarrow < 13 writes lists.
type legacyList struct{ parquet.Group }

func (legacyList) Type() parquet.Type { return parquet.List(parquet.String()).Type() }

func strp(s string) *string { return &s }

// writeLegacyItemFile writes the rows of want with parquet-go's low-level
// API: an explicit schema with the "item" element name, and rows given as
// raw values with their repetition and definition levels.
func writeLegacyItemFile(t *testing.T, path string) {
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
		"n": parquet.Int(64),
	})
	// Leaf columns in schema order: 0 messages.list.item.content,
	// 1 messages.list.item.role, 2 n. Definition levels on the message
	// path: 1 messages present, 2 list has an entry, 3 item present, 4 leaf
	// present; repetition level 1 continues the list.
	v := func(x any, rep, def, col int) parquet.Value {
		if x == nil {
			return parquet.Value{}.Level(rep, def, col)
		}
		return parquet.ValueOf(x).Level(rep, def, col)
	}
	rows := []parquet.Row{
		{ // two messages
			v("hi", 0, 4, 0), v("hello", 1, 4, 0),
			v("user", 0, 4, 1), v("assistant", 1, 4, 1),
			v(int64(7), 0, 0, 2),
		},
		{ // empty list
			v(nil, 0, 1, 0), v(nil, 0, 1, 1), v(int64(8), 0, 0, 2),
		},
		{ // null column
			v(nil, 0, 0, 0), v(nil, 0, 0, 1), v(int64(9), 0, 0, 2),
		},
		{ // one message whose content is null
			v(nil, 0, 3, 0), v("user", 0, 4, 1), v(int64(10), 0, 0, 2),
		},
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

func TestParquetLegacyItemList(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "legacy.parquet")
	writeLegacyItemFile(t, legacy)

	// The same data written the standard way ("element"), by parquet-go's
	// struct writer.
	standard := filepath.Join(dir, "standard.parquet")
	f, err := os.Create(standard)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[convRow](f)
	if _, err := w.Write([]convRow{
		{Messages: []msgStruct{{strp("hi"), strp("user")}, {strp("hello"), strp("assistant")}}, N: 7},
		{Messages: []msgStruct{}, N: 8},
		{Messages: nil, N: 9},
		{Messages: []msgStruct{{nil, strp("user")}}, N: 10},
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// The trap this reader avoids: parquet-go's own struct reader returns
	// empty slices for the "item" file, without an error.
	lf, err := os.Open(legacy)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	st, _ := lf.Stat()
	pf, err := parquet.OpenFile(lf, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if s := pf.Schema().String(); !strings.Contains(s, "repeated group list {") || !strings.Contains(s, "optional group item {") || !strings.Contains(s, "(LIST)") {
		t.Fatalf("legacy file schema is not a LIST of item:\n%s", s)
	}
	trap := make([]convRow, 4)
	if n, _ := parquet.NewGenericReader[convRow](lf).Read(trap); n != 4 || len(trap[0].Messages) != 0 {
		t.Fatalf("parquet-go's struct reader was expected to lose the item list (n=%d, %+v); if it now reads it, keep this reader anyway", n, trap[0])
	}

	wantMsgs := []any{
		map[string]any{"content": "hi", "role": "user"},
		map[string]any{"content": "hello", "role": "assistant"},
	}
	for _, path := range []string{legacy, standard} {
		rows, err := ReadParquet(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 4 {
			t.Fatalf("%s: %d rows", path, len(rows))
		}
		want := []map[string]any{
			{"messages": wantMsgs, "n": int64(7)},
			{"messages": []any{}, "n": int64(8)},
			{"messages": nil, "n": int64(9)},
			{"messages": []any{map[string]any{"content": nil, "role": "user"}}, "n": int64(10)},
		}
		for i := range want {
			if !reflect.DeepEqual(rows[i].Fields, want[i]) {
				t.Errorf("%s row %d:\n got %#v\nwant %#v", filepath.Base(path), i, rows[i].Fields, want[i])
			}
		}
	}

	// And through validation: row 0 is a conversation, row 1 is the empty
	// conversation error.
	rows, _ := ReadParquet(legacy)
	ds, err := Convert(rows[:1], Source{Path: legacy})
	if err != nil || len(ds.Records[0].Messages) != 2 {
		t.Fatalf("%v %+v", err, ds)
	}
	_, err = Convert(rows[:2], Source{Path: legacy})
	if want := legacy + `: row 1: column "messages": empty conversation`; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestReadJSONL(t *testing.T) {
	dir := t.TempDir()
	lines := filepath.Join(dir, "a.jsonl")
	os.WriteFile(lines, []byte(`{"text": "a", "n": 3, "x": 1.5}`+"\n\n"+`{"text": "b", "l": [1, {"k": null}]}`+"\n"), 0o644)
	array := filepath.Join(dir, "b.json")
	os.WriteFile(array, []byte(`  [{"text": "a", "n": 3, "x": 1.5}, {"text": "b", "l": [1, {"k": null}]}]`), 0o644)
	want := []map[string]any{
		{"text": "a", "n": int64(3), "x": 1.5},
		{"text": "b", "l": []any{int64(1), map[string]any{"k": nil}}},
	}
	for _, p := range []string{lines, array} {
		rows, err := ReadRows(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || !reflect.DeepEqual(rows[0].Fields, want[0]) || !reflect.DeepEqual(rows[1].Fields, want[1]) || rows[1].Index != 1 {
			t.Fatalf("%s: %#v", p, rows)
		}
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"text\": \"a\"}\n[1]\n"), 0o644)
	if _, err := ReadRows(bad); err == nil || err.Error() != "reading "+bad+": row 1 (line 2): want a JSON object, got list" {
		t.Fatalf("got %v", err)
	}
	broken := filepath.Join(dir, "broken.jsonl")
	os.WriteFile(broken, []byte("{\"text\": \"a\"}\n\n{\"text\": \n"), 0o644)
	if _, err := ReadRows(broken); err == nil || err.Error() != "reading "+broken+": row 1 (line 3): invalid JSON: unexpected EOF" {
		t.Fatalf("got %v", err)
	}
	if _, err := ReadRows(filepath.Join(dir, "x.csv")); err == nil || !strings.Contains(err.Error(), `unknown file type ".csv"`) {
		t.Fatalf("got %v", err)
	}
}

type nestedRow struct {
	Tags   []string         `parquet:"tags,list"`
	Meta   map[string]int64 `parquet:"meta"`
	Grid   [][]int32        `parquet:"grid,list"`
	Score  float32          `parquet:"score"`
	OK     bool             `parquet:"ok"`
	Note   *string          `parquet:"note,optional"`
	Weight float64          `parquet:"weight"`
}

// TestParquetNestedAndRowGroups reads lists, maps, unannotated repeated
// fields and scalars across several row groups.
func TestParquetNestedAndRowGroups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	in := []nestedRow{
		{Tags: []string{"a", "b"}, Meta: map[string]int64{"x": 1}, Grid: [][]int32{{1, 2}, {}, {3}}, Score: 0.5, OK: true, Note: strp("n"), Weight: 2.25},
		{Tags: []string{}, Meta: map[string]int64{}, Score: -1, Weight: 0},
		{Tags: []string{"c"}, Meta: map[string]int64{"y": 2, "z": 3}, Grid: [][]int32{{4}}, Note: strp(""), Weight: 1e-3},
	}
	w := parquet.NewGenericWriter[nestedRow](f, parquet.MaxRowsPerRowGroup(2))
	if _, err := w.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if rf, err := os.Open(path); err == nil {
		st, _ := rf.Stat()
		pf, err := parquet.OpenFile(rf, st.Size())
		if err != nil || len(pf.RowGroups()) != 2 {
			t.Fatalf("want a file with 2 row groups: %v", err)
		}
		rf.Close()
	}
	rows, err := ReadParquet(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"tags": []any{"a", "b"}, "meta": map[string]any{"x": int64(1)}, "score": 0.5, "ok": true, "note": "n", "weight": 2.25,
			"grid": []any{[]any{int64(1), int64(2)}, []any{}, []any{int64(3)}}},
		{"tags": []any{}, "meta": map[string]any{}, "score": -1.0, "ok": false, "note": nil, "weight": 0.0, "grid": []any{}},
		{"tags": []any{"c"}, "meta": map[string]any{"y": int64(2), "z": int64(3)}, "score": 0.0, "ok": false, "note": "", "weight": 1e-3,
			"grid": []any{[]any{int64(4)}}},
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	for i := range want {
		if !reflect.DeepEqual(rows[i].Fields, want[i]) || rows[i].Index != i {
			t.Errorf("row %d:\n got %#v\nwant %#v", i, rows[i].Fields, want[i])
		}
	}
}
