package gatt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/parquet-go/parquet-go"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/atomicfile"
)

// Entry is one journal line: the outcome of one source dialogue, finished rows or a skip.
type Entry struct {
	SourceRow int    `json:"source_row"`
	Skipped   string `json:"skipped,omitempty"` // the reason, when the dialogue gave no rows
	Rows      []Row  `json:"rows,omitempty"`
}

// journalHeader is the journal's first line: what run wrote it, so that a resume with another
// configuration does not mix two syntheses.
type journalHeader struct {
	Journal     string `json:"journal"`
	Fingerprint string `json:"fingerprint"`
}

const journalKind = "alignkit gatt synth"

// Journal is the append-only record of a synthesis: one JSON line per finished source dialogue,
// each written with one write call and synced before the next dialogue counts as done. A killed run
// leaves at most one torn last line, which Open drops.
type Journal struct {
	path string
	f    *os.File
}

// OpenJournal opens (or creates) the journal at path and returns the entries already in it. A
// journal written under another fingerprint is an error: its rows belong to another configuration.
func OpenJournal(path, fingerprint string) (*Journal, []Entry, error) {
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("reading journal %s: %w", path, err)
	}
	var entries []Entry
	good := 0 // bytes of complete, valid lines
	if len(raw) > 0 {
		entries, good, err = parseJournal(path, raw, fingerprint)
		if err != nil {
			return nil, nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening journal %s: %w", path, err)
	}
	// Drop a torn last line (a kill during its write) so the next append starts a fresh line.
	if err := f.Truncate(int64(good)); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("truncating journal %s: %w", path, err)
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("seeking journal %s: %w", path, err)
	}
	j := &Journal{path: path, f: f}
	if good == 0 {
		if err := j.appendJSON(journalHeader{Journal: journalKind, Fingerprint: fingerprint}); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	return j, entries, nil
}

// parseJournal reads the header and the entries, and returns how many bytes of raw are complete
// lines. Only the last line may be torn; a bad line before it is corruption.
func parseJournal(path string, raw []byte, fingerprint string) ([]Entry, int, error) {
	var entries []Entry
	good, line := 0, 0
	for good < len(raw) {
		nl := bytes.IndexByte(raw[good:], '\n')
		if nl < 0 {
			break // torn last line: no newline yet
		}
		text := raw[good : good+nl]
		line++
		if line == 1 {
			var h journalHeader
			if err := json.Unmarshal(text, &h); err != nil || h.Journal != journalKind {
				return nil, 0, fmt.Errorf("journal %s: line 1 is not a gatt synth journal header", path)
			}
			if h.Fingerprint != fingerprint {
				return nil, 0, fmt.Errorf("journal %s was written with another configuration (fingerprint %s, now %s): use another output_dir or delete the journal to start over",
					path, h.Fingerprint, fingerprint)
			}
		} else {
			var e Entry
			if err := json.Unmarshal(text, &e); err != nil {
				if good+nl+1 == len(raw) {
					break // the last line, torn mid-write after its bytes reached the file out of order
				}
				return nil, 0, fmt.Errorf("journal %s: line %d: %v", path, line, err)
			}
			entries = append(entries, e)
		}
		good += nl + 1
	}
	if line == 0 {
		return nil, 0, nil // a header torn before its newline: start over
	}
	return entries, good, nil
}

// Append writes one entry and syncs it to disk.
func (j *Journal) Append(e Entry) error { return j.appendJSON(e) }

func (j *Journal) appendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("syncing journal %s: %w", j.path, err)
	}
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error { return j.f.Close() }

type parquetMessage struct {
	Content string `parquet:"content"`
	Role    string `parquet:"role"`
}

type parquetRow struct {
	Messages    []parquetMessage `parquet:"messages,list"`
	Instruction string           `parquet:"instruction"`
	Constraints []string         `parquet:"constraints,list"`
	Terse       bool             `parquet:"terse"`
	TrainedTurn int64            `parquet:"trained_turn"`
	SourceRow   int64            `parquet:"source_row"`
}

// SortRows orders rows by source row, then by trained turn, so that a file does not depend on the
// order concurrent dialogues finished in.
func SortRows(rows []Row) {
	sort.SliceStable(rows, func(a, b int) bool {
		if rows[a].SourceRow != rows[b].SourceRow {
			return rows[a].SourceRow < rows[b].SourceRow
		}
		return rows[a].TrainedTurn < rows[b].TrainedTurn
	})
}

// WriteParquet writes rows to path atomically (a temporary file in the same directory, renamed).
func WriteParquet(path string, rows []Row) error {
	out := make([]parquetRow, len(rows))
	for i, r := range rows {
		ms := make([]parquetMessage, len(r.Messages))
		for k, m := range r.Messages {
			ms[k] = parquetMessage{Content: m.Content, Role: m.Role}
		}
		cs := r.Constraints
		if cs == nil {
			cs = []string{}
		}
		out[i] = parquetRow{Messages: ms, Instruction: r.Instruction, Constraints: cs, Terse: r.Terse,
			TrainedTurn: int64(r.TrainedTurn), SourceRow: int64(r.SourceRow)}
	}
	return atomicfile.Write(path, func(f io.Writer) error {
		w := parquet.NewGenericWriter[parquetRow](f)
		if _, err := w.Write(out); err != nil {
			return err
		}
		return w.Close()
	})
}

// ReadRows reads a gatt.parquet (or a JSON Lines file of the same columns) back through the data
// layer's reader.
func ReadRows(path string) ([]Row, error) {
	raw, err := data.ReadRows(path)
	if err != nil {
		return nil, err
	}
	out := make([]Row, len(raw))
	for i, r := range raw {
		row, err := rowFrom(r)
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", path, r.Index, err)
		}
		out[i] = row
	}
	return out, nil
}

func rowFrom(r data.Row) (Row, error) {
	var out Row
	list, ok := r.Fields["messages"].([]any)
	if !ok {
		return out, fmt.Errorf("column \"messages\": want a list of messages, got %T", r.Fields["messages"])
	}
	for k, it := range list {
		m, ok := it.(map[string]any)
		role, rok := m["role"].(string)
		content, cok := m["content"].(string)
		if !ok || !rok || !cok {
			return out, fmt.Errorf("column \"messages\": message %d: want {role, content} strings", k)
		}
		out.Messages = append(out.Messages, chat.Message{Role: role, Content: content})
	}
	if out.Instruction, ok = r.Fields["instruction"].(string); !ok {
		return out, fmt.Errorf("column \"instruction\": want a string, got %T", r.Fields["instruction"])
	}
	cs, ok := r.Fields["constraints"].([]any)
	if !ok {
		return out, fmt.Errorf("column \"constraints\": want a list of strings, got %T", r.Fields["constraints"])
	}
	out.Constraints = make([]string, len(cs))
	for k, c := range cs {
		if out.Constraints[k], ok = c.(string); !ok {
			return out, fmt.Errorf("column \"constraints\": item %d: want a string, got %T", k, c)
		}
	}
	if out.Terse, ok = r.Fields["terse"].(bool); !ok {
		return out, fmt.Errorf("column \"terse\": want a bool, got %T", r.Fields["terse"])
	}
	for _, c := range []struct {
		name string
		dst  *int
	}{{"trained_turn", &out.TrainedTurn}, {"source_row", &out.SourceRow}} {
		switch v := r.Fields[c.name].(type) {
		case int64:
			*c.dst = int(v)
		case float64: // JSON Lines numbers
			*c.dst = int(v)
		default:
			return out, fmt.Errorf("column %q: want an integer, got %T", c.name, v)
		}
	}
	return out, nil
}
