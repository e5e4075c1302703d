package data

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alignkit/alignkit/model/hub"
)

// Row is one record of a source file, before any interpretation: top-level
// column name -> value. Values are nil, bool, int64, float64, string, []any
// (lists) or map[string]any (structs and maps), whatever the file format.
type Row struct {
	Source string         // the file the row came from
	Index  int            // 0-based row number within Source
	Fields map[string]any // column -> value
}

// ReadRows reads every row of a Parquet (.parquet) or JSON Lines (.jsonl,
// .json: one object per line, or a single top-level array of objects) file.
func ReadRows(path string) ([]Row, error) { return readRows(context.Background(), path) }

// readRows is ReadRows, stopping when ctx ends.
func readRows(ctx context.Context, path string) ([]Row, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet":
		return readParquet(ctx, path)
	case ".jsonl", ".json", ".ndjson":
		return readJSONL(ctx, path)
	default:
		return nil, fmt.Errorf("reading %s: unknown file type %q (want .parquet, .jsonl or .json)", path, filepath.Ext(path))
	}
}

// ReadSource reads a data file, or, when path does not exist and is a Hugging Face dataset name
// (org/name[@revision]), the given split's files from the local hub cache (package hub), one after
// another; rows keep their own file and row number for messages.
func ReadSource(path, split string) ([]Row, error) {
	return ReadSourceContext(context.Background(), path, split)
}

// ReadSourceContext is ReadSource, stopping when ctx ends (every CheckEvery rows of JSONL, every
// batch of Parquet rows): a file of 10^6 rows takes tens of seconds to read.
func ReadSourceContext(ctx context.Context, path, split string) ([]Row, error) {
	if _, err := os.Stat(path); err == nil || !hub.IsName(path) || strings.HasPrefix(path, hub.OllamaPrefix) {
		return readRows(ctx, path)
	}
	files, err := hub.Dataset(path, split)
	if err != nil {
		return nil, fmt.Errorf("reading %w", err)
	}
	var rows []Row
	for _, f := range files {
		r, err := readRows(ctx, f)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// typeName names the dynamic type of a row value the way error messages
// report it.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "struct"
	default:
		return fmt.Sprintf("%T", v)
	}
}
