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

// outColumn is a column ScoreFile appends: float64 values, or booleans when flags is set.
type outColumn struct {
	name   string
	values []float64
	flags  []bool
}

func (c outColumn) len() int {
	if c.flags != nil {
		return len(c.flags)
	}
	return len(c.values)
}

func (c outColumn) value(i int) parquet.Value {
	if c.flags != nil {
		return parquet.BooleanValue(c.flags[i])
	}
	return parquet.DoubleValue(c.values[i])
}

func (c outColumn) node() parquet.Node {
	if c.flags != nil {
		return parquet.Required(parquet.Leaf(parquet.BooleanType))
	}
	return parquet.Required(parquet.Leaf(parquet.DoubleType))
}

// writeParquetWithColumns copies every row of the Parquet file at input to w, in order, with
// required DOUBLE (or BOOLEAN) columns appended to the schema, in order (each replacing a
// top-level leaf column of its name). Rows are copied as raw Parquet values, so nested lists and
// structs, logical types and nulls come out exactly as they went in.
func writeParquetWithColumns(input string, w io.Writer, cols []outColumn) error {
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
	for _, c := range cols {
		if n := pf.NumRows(); n != int64(c.len()) {
			return fmt.Errorf("%s has %d rows but %d were scored", input, n, c.len())
		}
	}
	in := pf.Schema()
	replaced := map[string]bool{}
	for _, c := range cols {
		replaced[c.name] = true
	}

	// Leaf columns are numbered in schema order; newIndex maps a kept input leaf to its output
	// index, and a replaced one to -1.
	var newIndex []int
	fields := make([]parquet.Field, 0, len(in.Fields())+len(cols))
	out := 0
	for _, fld := range in.Fields() {
		n := countLeaves(fld)
		if replaced[fld.Name()] {
			if !fld.Leaf() || fld.Repeated() {
				return fmt.Errorf("%s: column %q exists and is not a plain value column: name the reward column differently", input, fld.Name())
			}
			newIndex = append(newIndex, -1)
			continue
		}
		fields = append(fields, fld)
		for range n {
			newIndex = append(newIndex, out)
			out++
		}
	}
	for _, c := range cols {
		fields = append(fields, namedField{Node: c.node(), name: c.name})
	}
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
					c := newIndex[v.Column()]
					if c < 0 {
						continue
					}
					row = append(row, v.Level(v.RepetitionLevel(), v.DefinitionLevel(), c))
				}
				for k, col := range cols {
					row = append(row, col.value(next).Level(0, 0, out+k))
				}
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
	if next != int(pf.NumRows()) {
		return fmt.Errorf("%s: read %d rows, want %d", input, next, pf.NumRows())
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
