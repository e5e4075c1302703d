package data

import (
	"bytes"
	"fmt"

	"github.com/parquet-go/parquet-go"

	"github.com/alignkit/alignkit/internal/atomicfile"
)

// WriteParquet writes rows, one per Go struct with parquet tags, as a Parquet file, atomically.
func WriteParquet[T any](path string, rows []T) error {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf)
	if _, err := w.Write(rows); err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}
