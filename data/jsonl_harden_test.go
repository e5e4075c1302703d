package data

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A UTF-8 byte-order mark before the first row is skipped, in JSON Lines and JSON array files.
func TestJSONLByteOrderMark(t *testing.T) {
	for name, body := range map[string]string{
		"lines": "\xef\xbb\xbf{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"c\", \"completion\": \"d\"}\n",
		"array": "\xef\xbb\xbf[{\"prompt\": \"a\", \"completion\": \"b\"}, {\"prompt\": \"c\", \"completion\": \"d\"}]",
	} {
		rows, err := ReadJSONL(writeTemp(t, "bom.jsonl", []byte(body)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(rows) != 2 || rows[0].Fields["prompt"] != "a" || rows[1].Fields["completion"] != "d" {
			t.Errorf("%s: rows %+v", name, rows)
		}
	}
}

// A 10 MB line is refused by its line number before it is read whole: the call allocates a few MB,
// not the gigabyte that decoding and tokenizing it took.
func TestJSONLLongLine(t *testing.T) {
	body := `{"prompt": "a", "completion": "b"}` + "\n" + `{"prompt": "` + strings.Repeat("x", 10<<20) + `", "completion": "b"}` + "\n"
	path := writeTemp(t, "long.jsonl", []byte(body))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ReadJSONL(path)
	runtime.ReadMemStats(&after)
	want := fmt.Sprintf("reading %s: row 1 (line 2): longer than 1048576 bytes", path)
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("refusing a 10 MB line allocated %d bytes", alloc)
	}
	// A line of exactly MaxRowBytes (newline excluded) is accepted.
	line := `{"prompt": "` + strings.Repeat("y", MaxRowBytes-len(`{"prompt": "", "completion": "b"}`)) + `", "completion": "b"}`
	if len(line) != MaxRowBytes {
		t.Fatalf("test line is %d bytes", len(line))
	}
	if rows, err := ReadJSONL(writeTemp(t, "edge.jsonl", []byte(line+"\n"))); err != nil || len(rows) != 1 {
		t.Errorf("a %d-byte line: %v", MaxRowBytes, err)
	}
	arr := "[" + strings.Replace(line, `"b"}`, `"bb"}`, 1) + "]"
	p := writeTemp(t, "long.json", []byte(arr))
	if _, err := ReadJSONL(p); err == nil || err.Error() != "reading "+p+": row 0: longer than 1048576 bytes" {
		t.Errorf("array element: %v", err)
	}
}

// FuzzReadJSONL: any bytes give rows or one error naming the file, never a panic.
func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte("{\"prompt\": \"a\", \"completion\": \"b\"}\n"))
	f.Add([]byte("\xef\xbb\xbf[{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}]"))
	f.Add([]byte("{\"a\": 1e400}\n{\"b\": [1, 2.5, null, true]}\n\n"))
	f.Add([]byte("[1, 2]"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "f.jsonl")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		rows, err := ReadJSONL(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "reading "+path+": ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line naming the file: %q", err)
			}
			return
		}
		for i, r := range rows {
			if r.Index != i || r.Source != path || r.Fields == nil {
				t.Fatalf("row %d: %+v", i, r)
			}
		}
	})
}
