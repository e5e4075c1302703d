package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

type pcRow struct {
	Prompt     string `parquet:"prompt"`
	Completion string `parquet:"completion"`
}

// smallParquet is a valid prompt/completion Parquet file of n rows.
func smallParquet(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[pcRow](&buf)
	rows := make([]pcRow, n)
	for i := range rows {
		rows[i] = pcRow{Prompt: fmt.Sprintf("question %d", i), Completion: fmt.Sprintf("answer %d", i)}
	}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// patchFooter rewrites a Parquet file's footer (thrift compact FileMetaData) through edit, keeping
// every page as it was: how a file with lying counts is made.
func patchFooter(t testing.TB, file []byte, edit func(*format.FileMetaData)) []byte {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(file[len(file)-8:]))
	start := len(file) - 8 - n
	var md format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), file[start:len(file)-8], &md); err != nil {
		t.Fatal(err)
	}
	edit(&md)
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &md)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte{}, file[:start]...)
	out = append(out, footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	return append(out, "PAR1"...)
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A small file whose footer claims 2^31 rows is refused from its footer alone: no slice is sized by
// the claim and ReadParquet allocates under 4 MB (runtime.MemStats.TotalAlloc around the call).
func TestParquetClaimedRowsRefused(t *testing.T) {
	good := smallParquet(t, 3)
	bad := patchFooter(t, good, func(md *format.FileMetaData) {
		md.NumRows = 1 << 31
		md.RowGroups[0].NumRows = 1 << 31
	})
	path := writeTemp(t, "huge.parquet", bad)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ReadParquet(path)
	runtime.ReadMemStats(&after)
	want := fmt.Sprintf("reading %s: malformed Parquet footer: it declares 2147483648 rows, more than a %d-byte file can hold (at most %d, 16 per byte)", path, len(bad), 16*len(bad))
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("refusing a %d-byte file allocated %d bytes", len(bad), alloc)
	}
	t.Logf("%d-byte file, %d bytes allocated", len(bad), after.TotalAlloc-before.TotalAlloc)
}

// Footers whose counts or offsets disagree with the file are each one error line.
func TestParquetFooterLies(t *testing.T) {
	good := smallParquet(t, 3)
	cases := []struct {
		name string
		edit func(*format.FileMetaData)
		want string
	}{
		{"negative rows", func(md *format.FileMetaData) { md.NumRows = -1 }, "invalid file metadata: num_rows=-1 is negative"},
		{"groups disagree", func(md *format.FileMetaData) { md.NumRows = 5 }, "malformed Parquet footer: its row groups hold 3 rows, it declares 5"},
		{"group claims more", func(md *format.FileMetaData) { md.NumRows = 4; md.RowGroups[0].NumRows = 4 }, "row group 0 holds 3 rows, its footer declares 4"},
		{"group claims fewer", func(md *format.FileMetaData) { md.NumRows = 2; md.RowGroups[0].NumRows = 2 }, "row group 0 holds more rows than the 2 its footer declares"},
		{"chunk too big", func(md *format.FileMetaData) { md.RowGroups[0].Columns[1].MetaData.TotalCompressedSize = 1 << 40 }, "malformed Parquet footer: row group 0 column 1 is 1099511627776 bytes in a SIZE-byte file"},
		{"chunk past end", func(md *format.FileMetaData) { md.RowGroups[0].Columns[0].MetaData.DataPageOffset = 1 << 30 }, "malformed Parquet footer: row group 0 column 0 lies outside the SIZE-byte file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := patchFooter(t, good, c.edit)
			path := writeTemp(t, "bad.parquet", bad)
			_, err := ReadParquet(path)
			want := "reading " + path + ": " + strings.ReplaceAll(c.want, "SIZE", fmt.Sprint(len(bad)))
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error\n got: %v\nwant: %s", err, want)
			}
		})
	}
}

// FuzzReadParquet: any bytes give rows or one error naming the file, never a panic, and never an
// allocation out of proportion to the input (64 MB plus 4 KB per input byte).
func FuzzReadParquet(f *testing.F) {
	good := smallParquet(f, 3)
	f.Add(good)
	f.Add(patchFooter(f, good, func(md *format.FileMetaData) { md.NumRows = 1 << 31; md.RowGroups[0].NumRows = 1 << 31 }))
	f.Add([]byte("PAR1PAR1"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "f.parquet")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := ReadParquet(path)
		runtime.ReadMemStats(&after)
		if err != nil && !strings.HasPrefix(err.Error(), "reading "+path+": ") {
			t.Fatalf("error does not name the file: %v", err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20+4096*uint64(len(b)) {
			t.Fatalf("%d-byte input allocated %d bytes", len(b), alloc)
		}
	})
}

// A page index that points at garbage is not read: a full scan needs none, so the rows still load.
func TestParquetBrokenPageIndexSkipped(t *testing.T) {
	bad := patchFooter(t, smallParquet(t, 3), func(md *format.FileMetaData) {
		for i := range md.RowGroups[0].Columns {
			c := &md.RowGroups[0].Columns[i]
			c.ColumnIndexOffset, c.ColumnIndexLength = 4, 200
			c.OffsetIndexOffset, c.OffsetIndexLength = 6, 1<<30
		}
	})
	rows, err := ReadParquet(writeTemp(t, "index.parquet", bad))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[2].Fields["completion"] != "answer 2" {
		t.Errorf("rows %+v", rows)
	}
}

// TestParquetMutations corrupts a valid file 2000 ways (random bytes, 0xffffff-prefixed lengths,
// inserted bytes; fixed seed) and reads each: one error line naming the file or rows, never a
// panic, and never more than 64 MB allocated. Go's fuzzer runs FuzzReadParquet at only a few
// executions a second here (parquet-go's coverage map is large), so this loop is what found the
// page header that made parquet-go allocate 160 MB for a 646-byte file.
func TestParquetMutations(t *testing.T) {
	good := smallParquet(t, 3)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for it := range 2000 {
		b := append([]byte{}, good...)
		for range 1 + rng.IntN(4) {
			switch rng.IntN(4) {
			case 0, 1:
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			case 2:
				i := rng.IntN(len(b) - 8)
				b[i], b[i+1], b[i+2], b[i+3] = 0xff, 0xff, 0xff, byte(rng.IntN(128))
			case 3:
				i := rng.IntN(len(b))
				b = append(b[:i:i], append([]byte{byte(rng.IntN(256))}, b[i:]...)...)
			}
		}
		path := filepath.Join(dir, "m.parquet")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := ReadParquet(path)
		runtime.ReadMemStats(&after)
		if err != nil && (!strings.HasPrefix(err.Error(), "reading "+path+": ") || strings.Contains(err.Error(), "\n")) {
			t.Fatalf("mutation %d: error is not one line naming the file: %q", it, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			os.WriteFile(filepath.Join(t.TempDir(), "bad.parquet"), b, 0o644)
			t.Fatalf("mutation %d: a %d-byte file allocated %d bytes", it, len(b), alloc)
		}
	}
}

// Files that make parquet-go v0.32.0 panic, read through ReadParquet: the panic is recovered and
// reported as one line naming the file. Both are the 3-row pq_good.parquet of the bad-input corpus
// with one field changed; without the recover each kills the process (stacks below are where the
// panic is raised), so the test fails if the recover goes.
//   - panic_num_nulls: byte 156, the second column's DataPageHeaderV2 num_nulls, 0 -> 62 (zigzag
//     0x7c) of num_values 3. (*Column).decodeDataPage sizes a buffer by num_values-num_nulls and
//     internal/memory.(*SliceBuffer).Resize slices it [:-58] while rows are read.
//   - panic_schema_children: the footer's schema root declares -2 children (thrift rewritten by
//     patchFooter). parquet.OpenFile's columnLoader.open allocates with that count, [::-2].
func TestParquetPanicRecovered(t *testing.T) {
	cases := []struct{ file, want string }{
		{"panic_num_nulls.parquet", "malformed Parquet file: runtime error: slice bounds out of range [:-58]"},
		{"panic_schema_children.parquet", "malformed Parquet file: runtime error: slice bounds out of range [::-2]"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", "parquet", c.file)
			rows, err := ReadParquet(path)
			want := "reading " + path + ": " + c.want
			if err == nil || err.Error() != want {
				t.Fatalf("error\n got: %v\nwant: %s", err, want)
			}
			if rows != nil {
				t.Errorf("%d rows returned with the error", len(rows))
			}
		})
	}
}

// A leaf column whose schema element carries a LIST logical type (pq_good.parquet with two footer
// bytes changed, found by mutation) made parquet-go's listType.Kind panic inside buildPQTree; it
// is refused by name before Kind is asked.
func TestParquetLeafListRefused(t *testing.T) {
	path := filepath.Join("testdata", "parquet", "leaf_list.parquet")
	_, err := ReadParquet(path)
	want := "reading " + path + `: column "prompt": a leaf column annotated as a LIST or MAP (only a group can be one)`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
}
