package reward

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"
)

// writeParquetWithColumn copies every row of the Parquet file at input to w, in order, with a
// required DOUBLE column named column appended to the schema (replacing a top-level leaf column of
// that name). Rows are copied as raw Parquet values, so nested lists and structs, logical types and
// nulls come out exactly as they went in.
func writeParquetWithColumn(input string, w io.Writer, column string, values []float64) error {
	f, err := os.Open(input)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return fmt.Errorf("reading %s: %w", input, err)
	}
	if n := pf.NumRows(); n != int64(len(values)) {
		return fmt.Errorf("%s has %d rows but %d were scored", input, n, len(values))
	}
	in := pf.Schema()

	// Leaf columns are numbered in schema order; drop is the leaf index of a replaced column.
	drop := -1
	fields := make([]parquet.Field, 0, len(in.Fields())+1)
	leaf := 0
	for _, fld := range in.Fields() {
		n := countLeaves(fld)
		if fld.Name() == column {
			if !fld.Leaf() || fld.Repeated() {
				return fmt.Errorf("%s: column %q exists and is not a plain value column: name the reward column differently", input, column)
			}
			drop = leaf
		} else {
			fields = append(fields, fld)
		}
		leaf += n
	}
	out := leaf
	if drop >= 0 {
		out--
	}
	fields = append(fields, namedField{Node: parquet.Required(parquet.Leaf(parquet.DoubleType)), name: column})
	schema := parquet.NewSchema(in.Name(), orderedGroup(fields))

	pw := parquet.NewWriter(w, schema, parquet.Compression(&parquet.Snappy))
	buf := make([]parquet.Row, 256)
	next := 0
	for _, rg := range pf.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(buf)
			for i := 0; i < n; i++ {
				row := buf[i][:0:0]
				for _, v := range buf[i] {
					c := v.Column()
					switch {
					case c == drop:
						continue
					case drop >= 0 && c > drop:
						v = v.Level(v.RepetitionLevel(), v.DefinitionLevel(), c-1)
					}
					row = append(row, v)
				}
				row = append(row, parquet.DoubleValue(values[next]).Level(0, 0, out))
				next++
				buf[i] = row
			}
			if n > 0 {
				if _, werr := pw.WriteRows(buf[:n]); werr != nil {
					rr.Close()
					return werr
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return fmt.Errorf("reading %s: %w", input, err)
			}
		}
		if err := rr.Close(); err != nil {
			return fmt.Errorf("reading %s: %w", input, err)
		}
	}
	if next != len(values) {
		return fmt.Errorf("%s: read %d rows, want %d", input, next, len(values))
	}
	return pw.Close()
}

func countLeaves(n parquet.Node) int {
	if n.Leaf() {
		return 1
	}
	c := 0
	for _, f := range n.Fields() {
		c += countLeaves(f)
	}
	return c
}

// orderedGroup is a root group whose fields keep the order given: parquet.Group sorts fields by
// name, which would reorder the input's columns.
type orderedGroup []parquet.Field

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return parquet.Group{}.String() }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquet.Field     { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return reflect.TypeOf(map[string]any{}) }

// namedField names a node within its parent.
type namedField struct {
	parquet.Node
	name string
}

func (f namedField) Name() string { return f.name }
func (f namedField) Value(base reflect.Value) reflect.Value {
	return base.MapIndex(reflect.ValueOf(f.name))
}
