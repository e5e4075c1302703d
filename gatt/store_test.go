package gatt

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
)

func sampleRows() []Row {
	inst := NewInstruction([]Constraint{{Hobby, "Tennis"}}, false)
	d := Dialogue{SourceRow: 9, Users: []string{"Hi", "And then?"}}
	rows, _ := BuildRows(d, inst, PlaceSystem, SamplesEveryTurn, []string{"Hello, I love tennis.", "Then more tennis."})
	inst2 := NewInstruction([]Constraint{{Language, "French"}, {Figure, "Napoleon"}}, true)
	d2 := Dialogue{SourceRow: 2, Users: []string{"Who?", "Why?"}}
	more, _ := BuildRows(d2, inst2, PlaceFirstUser, SamplesLastTurn, []string{"Napoléon.", "Parce que."})
	return append(rows, more...)
}

func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFile)
	j, entries, err := OpenJournal(path, "fp1")
	if err != nil || len(entries) != 0 {
		t.Fatalf("new journal: %v %v", entries, err)
	}
	rows := sampleRows()
	want := []Entry{{SourceRow: 9, Rows: rows[:2]}, {SourceRow: 4, Skipped: SkipTooLong}, {SourceRow: 2, Rows: rows[2:]}}
	for _, e := range want {
		if err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()

	j, got, err := OpenJournal(path, "fp1")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("reopened: %+v %v\nwant %+v", got, err, want)
	}
	j.Close()

	// A kill in the middle of a write leaves a torn last line: it is dropped, and the next append
	// starts on a line of its own.
	full, _ := os.ReadFile(path)
	torn := append(append([]byte(nil), full...), []byte(`{"source_row":11,"rows":[{"messages":[{"Ro`)...)
	if err := os.WriteFile(path, torn, 0o644); err != nil {
		t.Fatal(err)
	}
	j, got, err = OpenJournal(path, "fp1")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("torn: %+v %v", got, err)
	}
	if err := j.Append(Entry{SourceRow: 11, Skipped: SkipTooLong}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	_, got, err = OpenJournal(path, "fp1")
	if err != nil || len(got) != 4 || got[3].SourceRow != 11 {
		t.Fatalf("after torn line: %+v %v", got, err)
	}
	// A torn line that happens to end in a newline but is not JSON (the bytes of a later write
	// reached the disk first) is also the last line, and dropped.
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, append(raw, []byte("{\"source_row\":1\x00\x00\n")...), 0o644)
	if _, got, err = OpenJournal(path, "fp1"); err != nil || len(got) != 4 {
		t.Fatalf("garbage last line: %d entries, %v", len(got), err)
	}

	if _, _, err := OpenJournal(path, "fp2"); err == nil || err.Error() != "journal "+path+" was written with another configuration (fingerprint fp1, now fp2): use another output_dir or delete the journal to start over" {
		t.Errorf("other config: %v", err)
	}
	// Corruption before the last line is not a torn write: it is reported with its line number.
	lines := strings.SplitAfter(string(raw), "\n")
	lines[2] = "not json\n"
	os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644)
	if _, _, err := OpenJournal(path, "fp1"); err == nil || !strings.HasPrefix(err.Error(), "journal "+path+": line 3: invalid character") {
		t.Errorf("corrupt middle line: %v", err)
	}
	os.WriteFile(path, []byte("{\"hello\":1}\n"), 0o644)
	if _, _, err := OpenJournal(path, "fp1"); err == nil || err.Error() != "journal "+path+": line 1 is not a gatt synth journal header" {
		t.Errorf("foreign file: %v", err)
	}
}

// TestParquetRoundTrip writes gatt.parquet and reads it back twice: with ReadRows, and through the
// data layer as SFT reads it, where trained_turn becomes Record.TrainedTurn.
func TestParquetRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), ParquetFile)
	rows := sampleRows()
	SortRows(rows)
	if rows[0].SourceRow != 2 || rows[1].TrainedTurn != 2 || rows[2].TrainedTurn != 4 {
		t.Fatalf("sorted: %+v", rows)
	}
	if err := WriteParquet(path, rows); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRows(path)
	if err != nil || !reflect.DeepEqual(got, rows) {
		t.Fatalf("read back: %+v %v\nwant %+v", got, err, rows)
	}
	ds, err := data.Load(data.Source{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Format != data.FormatConversation || len(ds.Records) != 3 {
		t.Fatalf("data.Load: format %s, %d records", ds.Format, len(ds.Records))
	}
	for i, r := range ds.Records {
		if r.TrainedTurn != rows[i].TrainedTurn || !reflect.DeepEqual(r.Messages, rows[i].Messages) {
			t.Errorf("record %d: trained turn %d, messages %+v", i, r.TrainedTurn, r.Messages)
		}
	}
	// Nothing but the file itself is left in the directory (the temporary file was renamed).
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries", len(entries))
	}
}
