package data

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alignkit/alignkit/internal/ctxerr"
)

// MaxRowBytes bounds one JSONL line (or one element of a JSON array file): about 250,000 tokens,
// far beyond any max_length, so a longer row is a broken or hostile file rather than data, and is
// refused before it is decoded and tokenized (a 10 MB line took over a gigabyte).
const MaxRowBytes = 1 << 20

// ReadJSONL reads a JSON Lines file (one JSON object per non-blank line). A
// file whose first non-space byte is '[' is read as one JSON array of objects
// instead. Numbers become int64 when integral in the source text, else
// float64. A UTF-8 byte-order mark at the start (Windows editors write one)
// is skipped; a row longer than MaxRowBytes is an error naming its line.
func ReadJSONL(path string) ([]Row, error) { return readJSONL(context.Background(), path) }

// readJSONL is ReadJSONL, stopping when ctx ends (checked every CheckEvery rows).
func readJSONL(ctx context.Context, path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	first, err := peekNonSpace(br)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if first == '[' {
		return readJSONArray(ctx, path, br)
	}
	var rows []Row
	line := 0
	for {
		if err := checkRead(ctx, path, len(rows)); err != nil {
			return nil, err
		}
		b, err := readLine(br, MaxRowBytes)
		if errors.Is(err, errLongLine) {
			return nil, fmt.Errorf("reading %s: row %d (line %d): longer than %d bytes", path, len(rows), line+1, MaxRowBytes)
		}
		if len(b) > 0 {
			line++
			if len(bytes.TrimSpace(b)) > 0 {
				obj, perr := decodeObject(b)
				if perr != nil {
					return nil, fmt.Errorf("reading %s: row %d (line %d): %w", path, len(rows), line, perr)
				}
				rows = append(rows, Row{Source: path, Index: len(rows), Fields: obj})
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
	}
	return rows, nil
}

var errLongLine = errors.New("line too long")

// checkRead is a reading loop's look at ctx before row i of path: every CheckEvery rows, an error
// when ctx has ended (reading 10^6 rows takes tens of seconds).
func checkRead(ctx context.Context, path string, i int) error {
	if i%CheckEvery != 0 {
		return nil
	}
	if err := ctxerr.Err(ctx); err != nil {
		return fmt.Errorf("reading %s: %w after %d rows", path, err, i)
	}
	return nil
}

// readLine reads up to and including the next '\n', refusing a line of more than max bytes
// without reading the rest of it into memory.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 { // +1: the newline itself
			return nil, errLongLine
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) < n {
			if errors.Is(err, io.EOF) {
				return 0, nil
			}
			return 0, err
		}
		switch c := b[n-1]; c {
		case ' ', '\t', '\r', '\n':
		default:
			return c, nil
		}
		if n >= br.Size() {
			return 0, nil
		}
	}
}

func readJSONArray(ctx context.Context, path string, r io.Reader) ([]Row, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var raw []json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("reading %s: invalid JSON array: %w", path, err)
	}
	rows := make([]Row, 0, len(raw))
	for i, m := range raw {
		if err := checkRead(ctx, path, i); err != nil {
			return nil, err
		}
		if len(m) > MaxRowBytes {
			return nil, fmt.Errorf("reading %s: row %d: longer than %d bytes", path, i, MaxRowBytes)
		}
		obj, err := decodeObject(m)
		if err != nil {
			return nil, fmt.Errorf("reading %s: row %d: %w", path, i, err)
		}
		rows = append(rows, Row{Source: path, Index: i, Fields: obj})
	}
	return rows, nil
}

func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("invalid JSON: more than one value on the line")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object, got %s", typeName(normalizeJSON(v)))
	}
	return normalizeJSON(obj).(map[string]any), nil
}

// normalizeJSON turns json.Number into int64 or float64 so that rows from
// JSON and Parquet carry the same Go types.
func normalizeJSON(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case []any:
		for i := range t {
			t[i] = normalizeJSON(t[i])
		}
		return t
	case map[string]any:
		for k := range t {
			t[k] = normalizeJSON(t[k])
		}
		return t
	default:
		return v
	}
}
