package data

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/alignkit/alignkit/internal/ctxerr"
)

// ReadParquet reads every row of a Parquet file into generic rows.
//
// Rows are rebuilt from the raw column values (repetition and definition
// levels) against the file's own schema, never through parquet-go's
// struct/map mapping. That mapping expects a LIST's element field to be called
// "element" and silently yields empty slices for files whose element field has
// another name, such as the "item" that older pyarrow versions write. Here the
// element is found by the structural rules of the Parquet spec's backward
// compatibility section, so "element", "item", "array" and two-level lists
// all read the same.
//
// The footer is untrusted: its row counts and column-chunk sizes are checked against the file's
// byte size before anything is read or allocated (see checkParquetFooter), the page index and bloom
// filters are not read (a full scan needs neither, and a broken one must not stop it), and a panic
// inside parquet-go on a malformed page is recovered and reported with the file named.
func ReadParquet(path string) ([]Row, error) { return readParquet(context.Background(), path) }

// readParquet is ReadParquet, stopping when ctx ends (checked between batches of rows).
func readParquet(ctx context.Context, path string) (rows []Row, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer func() {
		if r := recover(); r != nil {
			rows, err = nil, fmt.Errorf("reading %s: malformed Parquet file: %v", path, r)
		}
	}()
	if err := checkParquetFrame(f, st.Size()); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := checkParquetFooter(pf.Metadata(), st.Size()); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := checkParquetPages(f, pf.Metadata()); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	root, err := buildPQTree(pf.Schema())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	// The footer's count was bounded by the file size above; cap the preallocation further so a
	// file that claims many rows per byte still grows its slice only as rows really arrive.
	rows = make([]Row, 0, min(pf.NumRows(), 1<<16))
	buf := make([]parquet.Row, 64)
	cols := make([][]parquet.Value, root.leafCount)
	for gi, rg := range pf.RowGroups() {
		rr := rg.Rows()
		inGroup, declared := int64(0), rg.NumRows()
		for {
			if err := ctxerr.Err(ctx); err != nil {
				rr.Close()
				return nil, fmt.Errorf("reading %s: %w after %d rows", path, err, len(rows))
			}
			n, err := rr.ReadRows(buf)
			if inGroup += int64(n); inGroup > declared {
				rr.Close()
				return nil, fmt.Errorf("reading %s: row group %d holds more rows than the %d its footer declares", path, gi, declared)
			}
			for _, r := range buf[:n] {
				fields, aerr := root.assembleRow(r, cols)
				if aerr != nil {
					rr.Close()
					return nil, fmt.Errorf("reading %s: row %d: %w", path, len(rows), aerr)
				}
				rows = append(rows, Row{Source: path, Index: len(rows), Fields: fields})
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return nil, fmt.Errorf("reading %s: row group %d: %w", path, gi, err)
			}
		}
		if err := rr.Close(); err != nil {
			return nil, fmt.Errorf("reading %s: row group %d: %w", path, gi, err)
		}
		if inGroup != declared {
			return nil, fmt.Errorf("reading %s: row group %d holds %d rows, its footer declares %d", path, gi, inGroup, declared)
		}
	}
	return rows, nil
}

// checkParquetFrame checks the magic bytes at both ends and that the footer length fits in the
// file, before parquet-go allocates a buffer of that length (an 8-byte "PAR1PAR1" would otherwise
// ask for 827 MB).
func checkParquetFrame(f io.ReaderAt, size int64) error {
	if size < 12 {
		return fmt.Errorf("not a Parquet file: %d bytes, shorter than the 12 of an empty one", size)
	}
	var head, tail [8]byte
	if _, err := f.ReadAt(head[:4], 0); err != nil {
		return err
	}
	if _, err := f.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if string(head[:4]) != "PAR1" || string(tail[4:]) != "PAR1" {
		return fmt.Errorf("not a Parquet file: no PAR1 magic at its start and end")
	}
	if n := int64(binary.LittleEndian.Uint32(tail[:4])); n > size-12 {
		return fmt.Errorf("malformed Parquet file: its footer claims %d bytes, more than the %d-byte file holds", n, size)
	}
	return nil
}

// MaxParquetRowsPerByte bounds the rows a Parquet file may declare per byte of its size. Run-length
// encoding lets a column of repeated values take less than a bit per row, so no exact bound exists;
// a training file (text in every row) is far below 16, and the bound keeps a footer that claims
// 2^31 rows in a 1 KB file from being believed.
const MaxParquetRowsPerByte = 16

// checkParquetFooter checks the counts and sizes in a Parquet footer against the file's size: the
// row count and its sum over row groups, and every column chunk's offsets and sizes.
func checkParquetFooter(md *format.FileMetaData, size int64) error {
	if md.NumRows < 0 {
		return fmt.Errorf("malformed Parquet footer: %d rows", md.NumRows)
	}
	if limit := size * MaxParquetRowsPerByte; md.NumRows > limit {
		return fmt.Errorf("malformed Parquet footer: it declares %d rows, more than a %d-byte file can hold (at most %d, %d per byte)", md.NumRows, size, limit, MaxParquetRowsPerByte)
	}
	var sum int64
	for gi, rg := range md.RowGroups {
		if rg.NumRows < 0 || rg.NumRows > md.NumRows {
			return fmt.Errorf("malformed Parquet footer: row group %d declares %d rows of the file's %d", gi, rg.NumRows, md.NumRows)
		}
		sum += rg.NumRows
		for ci, cc := range rg.Columns {
			m := cc.MetaData
			inFile := func(off int64) bool { return off >= 0 && off < size }
			switch {
			case m.TotalCompressedSize < 0 || m.TotalCompressedSize > size:
				return fmt.Errorf("malformed Parquet footer: row group %d column %d is %d bytes in a %d-byte file", gi, ci, m.TotalCompressedSize, size)
			case m.DictionaryPageOffset != 0 && !inFile(m.DictionaryPageOffset):
				return fmt.Errorf("malformed Parquet footer: row group %d column %d: dictionary page offset %d outside the %d-byte file", gi, ci, m.DictionaryPageOffset, size)
			case !inFile(m.DataPageOffset) || chunkStart(m)+m.TotalCompressedSize > size:
				return fmt.Errorf("malformed Parquet footer: row group %d column %d lies outside the %d-byte file (offset %d, %d bytes)", gi, ci, size, chunkStart(m), m.TotalCompressedSize)
			case m.NumValues < 0:
				return fmt.Errorf("malformed Parquet footer: row group %d column %d: %d values", gi, ci, m.NumValues)
			}
		}
	}
	if sum != md.NumRows {
		return fmt.Errorf("malformed Parquet footer: its row groups hold %d rows, it declares %d", sum, md.NumRows)
	}
	return nil
}

// MaxParquetPageBytes bounds one page's uncompressed size. Writers cut pages at about 1 MB
// (pyarrow, parquet-go, Spark); a header claiming more is believed only up to this.
const MaxParquetPageBytes = 256 << 20

// checkParquetPages walks every page header of every column chunk before parquet-go reads them.
// parquet-go's streaming thrift decoder allocates whatever length a header's binary field claims
// (a 500-byte file asked for 160 MB); decoding the same headers here from the chunk's bytes slices
// them instead, and each page's sizes are checked against its chunk and MaxParquetPageBytes.
func checkParquetPages(f io.ReaderAt, md *format.FileMetaData) error {
	var proto thrift.CompactProtocol
	for gi, rg := range md.RowGroups {
		for ci, cc := range rg.Columns {
			m := cc.MetaData
			chunk := make([]byte, m.TotalCompressedSize) // within the file: checkParquetFooter
			if _, err := f.ReadAt(chunk, chunkStart(m)); err != nil {
				return fmt.Errorf("row group %d column %d: %w", gi, ci, err)
			}
			for pos, page := 0, 0; pos < len(chunk); page++ {
				var h format.PageHeader
				pr := proto.NewReaderFromBytes(chunk[pos:])
				if err := thrift.NewDecoder(pr).Decode(&h); err != nil {
					return fmt.Errorf("row group %d column %d page %d: malformed page header: %v", gi, ci, page, err)
				}
				pos += pr.BytesRead()
				switch {
				case h.CompressedPageSize < 0 || int64(h.CompressedPageSize) > int64(len(chunk)-pos):
					return fmt.Errorf("row group %d column %d page %d: %d bytes, past the end of its %d-byte column chunk", gi, ci, page, h.CompressedPageSize, len(chunk))
				case h.UncompressedPageSize < 0 || h.UncompressedPageSize > MaxParquetPageBytes:
					return fmt.Errorf("row group %d column %d page %d: %d bytes uncompressed (at most %d)", gi, ci, page, h.UncompressedPageSize, MaxParquetPageBytes)
				}
				pos += int(h.CompressedPageSize)
			}
		}
	}
	return nil
}

// chunkStart is where a column chunk begins: its dictionary page when it has one before the data.
func chunkStart(m format.ColumnMetaData) int64 {
	if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < m.DataPageOffset {
		return m.DictionaryPageOffset
	}
	return m.DataPageOffset
}

// pqNode is one node of a Parquet schema with the levels needed to rebuild
// records from leaf-column values (Dremel record assembly).
type pqNode struct {
	name      string
	node      parquet.Node
	children  []*pqNode
	optional  bool
	repeated  bool
	maxDef    int // definition level at which this node is present
	maxRep    int // repetition level of this node's own repetitions
	firstLeaf int // column index of the first leaf under the node
	leafCount int // number of leaf columns under the node
	logical   logicalKind
}

type logicalKind int

const (
	logicalNone logicalKind = iota
	logicalList
	logicalMap
)

func buildPQTree(schema *parquet.Schema) (*pqNode, error) {
	root := &pqNode{name: schema.Name(), node: schema}
	leaf := 0
	if err := root.build(0, 0, &leaf); err != nil {
		return nil, err
	}
	return root, nil
}

func (n *pqNode) build(def, rep int, leaf *int) error {
	n.optional = n.node.Optional()
	n.repeated = n.node.Repeated()
	if n.optional || n.repeated {
		def++
	}
	if n.repeated {
		rep++
	}
	n.maxDef, n.maxRep = def, rep
	n.firstLeaf = *leaf
	if n.node.Leaf() {
		// parquet-go's LIST and MAP types panic on Kind: a leaf annotated as either is refused
		// first (only a group can be a list or a map).
		if logicalOf(n.node) != logicalNone {
			return fmt.Errorf("column %q: a leaf column annotated as a LIST or MAP (only a group can be one)", n.name)
		}
		switch k := n.node.Type().Kind(); k {
		case parquet.Boolean, parquet.Int32, parquet.Int64, parquet.Float, parquet.Double, parquet.ByteArray, parquet.FixedLenByteArray:
		default:
			return fmt.Errorf("column %q: unsupported Parquet physical type %s", n.name, k)
		}
		*leaf++
		n.leafCount = 1
		return nil
	}
	n.logical = logicalOf(n.node)
	for _, f := range n.node.Fields() {
		c := &pqNode{name: f.Name(), node: f}
		if err := c.build(def, rep, leaf); err != nil {
			return err
		}
		n.children = append(n.children, c)
	}
	n.leafCount = *leaf - n.firstLeaf
	if n.leafCount == 0 {
		return fmt.Errorf("group %q has no leaf columns", n.name)
	}
	switch n.logical {
	case logicalList:
		if len(n.children) != 1 || !n.children[0].repeated {
			return fmt.Errorf("column %q: LIST group must hold exactly one repeated field", n.name)
		}
	case logicalMap:
		if len(n.children) != 1 || !n.children[0].repeated || len(n.children[0].children) != 2 {
			return fmt.Errorf("column %q: MAP group must hold one repeated key/value group", n.name)
		}
	}
	return nil
}

func logicalOf(node parquet.Node) logicalKind {
	t := node.Type()
	if lt := t.LogicalType(); lt != nil {
		switch lt.Value.(type) {
		case *format.ListType:
			return logicalList
		case *format.MapType:
			return logicalMap
		}
	}
	if ct := t.ConvertedType(); ct != nil {
		switch *ct {
		case deprecated.List:
			return logicalList
		case deprecated.Map, deprecated.MapKeyValue:
			return logicalMap
		}
	}
	return logicalNone
}

// assembler walks one row's values, column by column.
type assembler struct {
	cols [][]parquet.Value
	cur  []int
}

func (a *assembler) peek(col int) (parquet.Value, bool) {
	if a.cur[col] >= len(a.cols[col]) {
		return parquet.Value{}, false
	}
	return a.cols[col][a.cur[col]], true
}

// skip consumes the single entry that each leaf under n holds for an absent
// (null or empty) instance of n.
func (a *assembler) skip(n *pqNode) {
	for c := n.firstLeaf; c < n.firstLeaf+n.leafCount; c++ {
		a.cur[c]++
	}
}

func (n *pqNode) assembleRow(r parquet.Row, cols [][]parquet.Value) (map[string]any, error) {
	for i := range cols {
		cols[i] = cols[i][:0]
	}
	for _, v := range r {
		c := v.Column()
		if c < 0 || c >= len(cols) {
			return nil, fmt.Errorf("value for column %d outside the schema's %d columns", c, len(cols))
		}
		cols[c] = append(cols[c], v)
	}
	a := &assembler{cols: cols, cur: make([]int, len(cols))}
	out := make(map[string]any, len(n.children))
	for _, c := range n.children {
		v, err := a.field(c)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
		if v, err = c.logicalValue(v); err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
		out[c.name] = v
	}
	return out, nil
}

// field reads the value of n in its parent: a list of instances when n is
// repeated, else a single instance (or nil).
func (a *assembler) field(n *pqNode) (any, error) {
	if !n.repeated {
		return a.instance(n)
	}
	e, ok := a.peek(n.firstLeaf)
	if !ok {
		return nil, fmt.Errorf("missing values for column %d", n.firstLeaf)
	}
	if e.DefinitionLevel() < n.maxDef {
		a.skip(n)
		return []any{}, nil
	}
	var list []any
	for {
		v, err := a.instance(n)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
		e, ok := a.peek(n.firstLeaf)
		if !ok || e.RepetitionLevel() < n.maxRep {
			return list, nil
		}
	}
}

// instance reads one occurrence of n: a leaf value, a struct map, or nil when
// the definition level says it is absent.
func (a *assembler) instance(n *pqNode) (any, error) {
	e, ok := a.peek(n.firstLeaf)
	if !ok {
		return nil, fmt.Errorf("missing values for column %d", n.firstLeaf)
	}
	if (n.optional || n.repeated) && e.DefinitionLevel() < n.maxDef {
		a.skip(n)
		return nil, nil
	}
	if n.children == nil {
		a.cur[n.firstLeaf]++
		return leafValue(e)
	}
	m := make(map[string]any, len(n.children))
	for _, c := range n.children {
		v, err := a.field(c)
		if err != nil {
			return nil, err
		}
		m[c.name] = v
	}
	return m, nil
}

func leafValue(v parquet.Value) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	switch v.Kind() {
	case parquet.Boolean:
		return v.Boolean(), nil
	case parquet.Int32:
		return int64(v.Int32()), nil
	case parquet.Int64:
		return v.Int64(), nil
	case parquet.Float:
		return float64(v.Float()), nil
	case parquet.Double:
		return v.Double(), nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return string(v.ByteArray()), nil // string() copies: the reader reuses its buffers
	default:
		return nil, fmt.Errorf("unsupported Parquet value kind %s", v.Kind())
	}
}

// logicalValue rewrites the plain assembly of n (groups as maps, repeated
// fields as lists) into its logical shape: LIST groups become []any of their
// elements and MAP groups become map[string]any.
func (n *pqNode) logicalValue(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if n.repeated {
		list, _ := v.([]any)
		out := make([]any, len(list))
		for i, e := range list {
			x, err := n.logicalSingle(e)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	}
	return n.logicalSingle(v)
}

func (n *pqNode) logicalSingle(v any) (any, error) {
	if v == nil || n.children == nil {
		return v, nil
	}
	m := v.(map[string]any)
	switch n.logical {
	case logicalList:
		rep := n.children[0]
		items, _ := m[rep.name].([]any)
		out := make([]any, 0, len(items))
		elem, direct := listElement(n, rep)
		for _, it := range items {
			if !direct {
				// Three-level list: each repetition wraps the element in a
				// one-field group, whatever that field is called.
				it = it.(map[string]any)[elem.name]
				x, err := elem.logicalValue(it)
				if err != nil {
					return nil, err
				}
				out = append(out, x)
				continue
			}
			x, err := rep.logicalSingle(it)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case logicalMap:
		kv := n.children[0]
		items, _ := m[kv.name].([]any)
		out := make(map[string]any, len(items))
		for _, it := range items {
			pair := it.(map[string]any)
			k, err := kv.children[0].logicalValue(pair[kv.children[0].name])
			if err != nil {
				return nil, err
			}
			val, err := kv.children[1].logicalValue(pair[kv.children[1].name])
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = val
		}
		return out, nil
	}
	out := make(map[string]any, len(n.children))
	for _, c := range n.children {
		x, err := c.logicalValue(m[c.name])
		if err != nil {
			return nil, err
		}
		out[c.name] = x
	}
	return out, nil
}

// listElement applies the Parquet LIST backward-compatibility rules to the
// repeated child rep of list node n. It returns the element node and whether
// the repeated field is itself the element (two-level lists).
func listElement(n, rep *pqNode) (*pqNode, bool) {
	switch {
	case rep.children == nil: // repeated primitive
		return rep, true
	case len(rep.children) > 1: // repeated group with several fields
		return rep, true
	case rep.name == "array" || rep.name == n.name+"_tuple":
		return rep, true
	default: // standard: list -> element, or pyarrow's list -> item
		return rep.children[0], false
	}
}
