package data

import (
	"path/filepath"
	"testing"
)

// TestWriteParquetRoundTrip: rows written by WriteParquet read back through ReadRows with their
// columns and values.
func TestWriteParquetRoundTrip(t *testing.T) {
	type row struct {
		Prompt  string    `parquet:"prompt"`
		Rewards []float64 `parquet:"rewards,list"`
		Best    int64     `parquet:"best_index"`
	}
	p := filepath.Join(t.TempDir(), "s.parquet")
	if err := WriteParquet(p, []row{{"a", []float64{1, 2.5}, 1}, {"b", []float64{-1}, 0}}); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1].Fields["prompt"] != "b" {
		t.Fatalf("read back %+v", rows)
	}
	rs, ok := rows[0].Fields["rewards"].([]any)
	if !ok || len(rs) != 2 || rs[1] != 2.5 || rows[0].Fields["best_index"] != int64(1) {
		t.Fatalf("row 0 read back as %+v", rows[0].Fields)
	}
}
