// Package datatool is `alignkit data`: look inside a dataset (schema, rows, which trainers can read
// it and what they would drop or truncate), convert it between JSON Lines and Parquet and between
// the common layouts (alpaca, ShareGPT, hh-rlhf) and TRL's, split and sample it, and remove exact
// and near duplicates and evaluation-set overlap. Every write is atomic; bad input is one error line
// naming the file, row and column.
package datatool

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/atomicfile"
)

// Table is a file's rows with its columns in order (a Parquet file's schema order; a JSON Lines
// file's keys in the order they first appear; for a hub dataset, its first file's order; columns
// only later files or rows have come after, sorted by name).
type Table struct {
	Source  string
	Columns []string
	Rows    []data.Row
}

// Read reads a .parquet or .jsonl/.json file, or a dataset name's split from the local hub cache.
func Read(path, split string) (*Table, error) {
	rows, err := data.ReadSource(path, split)
	if err != nil {
		return nil, err
	}
	t := &Table{Source: path, Rows: rows}
	// A hub dataset's rows come from its split's files: take the column order of the first.
	first := path
	if len(rows) > 0 {
		first = rows[0].Source
	}
	switch strings.ToLower(filepath.Ext(first)) {
	case ".parquet":
		if t.Columns, err = parquetColumns(first); err != nil {
			return nil, err
		}
	case ".jsonl", ".json", ".ndjson":
		t.Columns = jsonColumns(first)
	}
	seen := map[string]bool{}
	for _, c := range t.Columns {
		seen[c] = true
	}
	var extra []string
	for _, r := range rows {
		for k := range r.Fields {
			if !seen[k] {
				seen[k] = true
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	t.Columns = append(t.Columns, extra...)
	return t, nil
}

func parquetColumns(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var cols []string
	for _, fld := range pf.Schema().Fields() {
		cols = append(cols, fld.Name())
	}
	return cols, nil
}

// jsonColumns lists the top-level keys of a JSON Lines file's objects (or of a JSON array's
// objects) in the order they first appear. It reads tokens only; data.ReadRows reports bad JSON.
func jsonColumns(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	type level struct {
		object, expectKey bool
	}
	var stack []level
	top := 1 // the depth of the row objects: 2 inside a top-level array
	var cols []string
	seen := map[string]bool{}
	for first := true; ; first = false {
		tok, err := dec.Token()
		if err != nil {
			return cols
		}
		if d, ok := tok.(json.Delim); ok && first && d == '[' {
			top = 2
		}
		// A value inside an object is followed by a key.
		isKey := false
		if n := len(stack); n > 0 && stack[n-1].object {
			isKey = stack[n-1].expectKey
			if _, end := tok.(json.Delim); !end || (tok != json.Delim('}') && tok != json.Delim(']')) {
				stack[n-1].expectKey = !isKey
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, level{object: tok == json.Delim('{'), expectKey: true})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if s, ok := tok.(string); ok && isKey && len(stack) == top && !seen[s] {
				seen[s] = true
				cols = append(cols, s)
			}
		}
	}
}

// Type is a column's type inferred from its values, merged over every row.
type Type struct {
	Kind     string // "none" (an empty list's item), "null" (only nulls seen), "string", "int", "float", "bool", "list", "struct"
	Nullable bool   // some row holds null (or lacks the column)
	Elem     *Type  // list element
	Fields   []Field
}

// Field is a struct member.
type Field struct {
	Name string
	Type *Type
}

// MarshalJSON writes a field as {"name", "type", "nullable"}.
func (f Field) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Nullable bool   `json:"nullable"`
	}{f.Name, f.Type.String(), f.Type.Nullable})
}

func (t *Type) String() string {
	switch t.Kind {
	case "list":
		return "list<" + t.Elem.String() + ">"
	case "struct":
		parts := make([]string, len(t.Fields))
		for i, f := range t.Fields {
			parts[i] = f.Name + ": " + f.Type.String()
		}
		return "struct<" + strings.Join(parts, ", ") + ">"
	}
	return t.Kind
}

// typeOf is the type of one value.
func typeOf(v any) (*Type, error) {
	switch x := v.(type) {
	case nil:
		return &Type{Kind: "null", Nullable: true}, nil
	case string:
		return &Type{Kind: "string"}, nil
	case int64:
		return &Type{Kind: "int"}, nil
	case float64:
		return &Type{Kind: "float"}, nil
	case bool:
		return &Type{Kind: "bool"}, nil
	case []any:
		t := &Type{Kind: "list", Elem: &Type{Kind: "none"}}
		for i, e := range x {
			et, err := typeOf(e)
			if err != nil {
				return nil, err
			}
			if t.Elem, err = merge(t.Elem, et); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
		}
		return t, nil
	case map[string]any:
		t := &Type{Kind: "struct"}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, err := typeOf(x[k])
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", k, err)
			}
			t.Fields = append(t.Fields, Field{k, ft})
		}
		return t, nil
	}
	return nil, fmt.Errorf("unsupported value of Go type %T", v)
}

// merge unifies two types of the same column: null joins anything, int widens to float, lists
// merge their elements and structs their fields (a field missing on one side is nullable).
func merge(a, b *Type) (*Type, error) {
	switch {
	case a.Kind == "none": // an empty list's element: no evidence either way
		return b, nil
	case b.Kind == "none":
		return a, nil
	case a.Kind == "null":
		c := *b
		c.Nullable = true
		return &c, nil
	case b.Kind == "null":
		c := *a
		c.Nullable = true
		return &c, nil
	}
	out := &Type{Kind: a.Kind, Nullable: a.Nullable || b.Nullable}
	switch {
	case a.Kind == b.Kind:
	case (a.Kind == "int" && b.Kind == "float") || (a.Kind == "float" && b.Kind == "int"):
		out.Kind = "float"
		return out, nil
	default:
		return nil, fmt.Errorf("want %s like earlier rows, got %s", a, b)
	}
	switch a.Kind {
	case "list":
		e, err := merge(a.Elem, b.Elem)
		if err != nil {
			return nil, fmt.Errorf("list item: %w", err)
		}
		out.Elem = e
	case "struct":
		idx := map[string]int{}
		for _, f := range a.Fields {
			idx[f.Name] = len(out.Fields)
			out.Fields = append(out.Fields, Field{f.Name, f.Type})
		}
		inB := map[string]bool{}
		for _, f := range b.Fields {
			inB[f.Name] = true
			if i, ok := idx[f.Name]; ok {
				m, err := merge(out.Fields[i].Type, f.Type)
				if err != nil {
					return nil, fmt.Errorf("field %q: %w", f.Name, err)
				}
				out.Fields[i].Type = m
			} else {
				ft := *f.Type
				ft.Nullable = true
				out.Fields = append(out.Fields, Field{f.Name, &ft})
			}
		}
		for i, f := range out.Fields {
			if !inB[f.Name] {
				ft := *f.Type
				ft.Nullable = true
				out.Fields[i].Type = &ft
			}
		}
		sort.Slice(out.Fields, func(i, j int) bool { return out.Fields[i].Name < out.Fields[j].Name })
	}
	return out, nil
}

// Schema infers every column's type; a value that disagrees with earlier rows is an error naming
// the file, row and column.
func (t *Table) Schema() ([]Field, error) {
	out := make([]Field, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = Field{c, &Type{Kind: "null", Nullable: true}}
		first := true
		for _, r := range t.Rows {
			v, ok := r.Fields[c]
			vt, err := typeOf(v)
			if err == nil {
				if first {
					vt.Nullable = vt.Nullable || !ok
					out[i].Type, first = vt, false
					continue
				}
				out[i].Type, err = merge(out[i].Type, vt)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: row %d: column %q: %w", r.Source, r.Index, c, err)
			}
			if !ok {
				out[i].Type.Nullable = true
			}
		}
	}
	return out, nil
}

// Write writes rows with the given columns to path, as Parquet or JSON Lines by its extension,
// atomically.
func Write(path string, columns []string, rows []data.Row) error {
	var buf bytes.Buffer
	var err error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet":
		err = encodeParquet(&buf, columns, rows)
	case ".jsonl", ".ndjson", ".json":
		err = encodeJSONL(&buf, columns, rows)
	default:
		return fmt.Errorf("writing %s: unknown file type %q (want .parquet or .jsonl)", path, filepath.Ext(path))
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// encodeJSONL writes one object per row, keys in column order; a column a row lacks is left out.
// Floats keep a decimal point so that they read back as floats.
func encodeJSONL(buf *bytes.Buffer, columns []string, rows []data.Row) error {
	for _, r := range rows {
		buf.WriteByte('{')
		n := 0
		for _, c := range columns {
			v, ok := r.Fields[c]
			if !ok {
				continue
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			n++
			writeJSONString(buf, c)
			buf.WriteByte(':')
			if err := writeJSONValue(buf, v); err != nil {
				return fmt.Errorf("%s: row %d: column %q: %w", r.Source, r.Index, c, err)
			}
		}
		buf.WriteString("}\n")
	}
	return nil
}

func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	buf.Truncate(buf.Len() - 1)
}

func writeJSONValue(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case string:
		writeJSONString(buf, x)
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%v cannot be written as JSON", x)
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		buf.WriteString(s)
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSONValue(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, k)
			buf.WriteByte(':')
			if err := writeJSONValue(buf, x[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("unsupported value of Go type %T", v)
	}
	return nil
}

// encodeParquet writes rows through a Go struct type built for the inferred schema: nested lists
// get Parquet's LIST annotation (as pyarrow writes them), nullable values are optional.
func encodeParquet(buf *bytes.Buffer, columns []string, rows []data.Row) error {
	t := &Table{Columns: columns, Rows: rows}
	schema, err := t.Schema()
	if err != nil {
		return err
	}
	fields := make([]reflect.StructField, len(schema))
	for i, f := range schema {
		if strings.ContainsAny(f.Name, ",\"`") {
			return fmt.Errorf("column %q: a Parquet column name here cannot hold ',', '\"' or '`'", f.Name)
		}
		if err := checkListItems(f.Type); err != nil {
			return fmt.Errorf("column %q: %w", f.Name, err)
		}
		fields[i] = structField(i, f.Name, f.Type)
	}
	st := reflect.StructOf(fields)
	w := parquet.NewWriter(buf, parquet.SchemaOf(reflect.New(st).Interface()))
	for _, r := range rows {
		v := reflect.New(st).Elem()
		for i, f := range schema {
			if err := setValue(v.Field(i), f.Type, r.Fields[f.Name]); err != nil {
				return fmt.Errorf("%s: row %d: column %q: %w", r.Source, r.Index, f.Name, err)
			}
		}
		if err := w.Write(v.Addr().Interface()); err != nil {
			return fmt.Errorf("%s: row %d: %w", r.Source, r.Index, err)
		}
	}
	return w.Close()
}

// checkListItems refuses null list items: parquet-go writes pointer items of a LIST as nulls.
func checkListItems(t *Type) error {
	switch t.Kind {
	case "list":
		if t.Elem.Nullable {
			return fmt.Errorf("a list with null items cannot be written to Parquet here (write .jsonl)")
		}
		return checkListItems(t.Elem)
	case "struct":
		for _, f := range t.Fields {
			if err := checkListItems(f.Type); err != nil {
				return err
			}
		}
	}
	return nil
}

func structField(i int, name string, t *Type) reflect.StructField {
	tag := name
	if t.Kind == "list" {
		tag += ",list"
	}
	if t.Nullable && t.Kind != "list" {
		tag += ",optional"
	}
	return reflect.StructField{Name: "F" + strconv.Itoa(i), Type: goType(t), Tag: reflect.StructTag(`parquet:"` + tag + `"`)}
}

// goType is the Go type parquet-go maps to t; nullable scalars and structs are pointers (lists
// cannot be: setValue refuses a null list).
func goType(t *Type) reflect.Type {
	var g reflect.Type
	switch t.Kind {
	case "string", "null", "none":
		g = reflect.TypeOf("")
	case "int":
		g = reflect.TypeOf(int64(0))
	case "float":
		g = reflect.TypeOf(float64(0))
	case "bool":
		g = reflect.TypeOf(false)
	case "list":
		return reflect.SliceOf(goType(t.Elem)) // encodeParquet refuses nullable items
	case "struct":
		fs := make([]reflect.StructField, len(t.Fields))
		for i, f := range t.Fields {
			fs[i] = structField(i, f.Name, f.Type)
		}
		g = reflect.StructOf(fs)
	}
	if t.Nullable {
		return reflect.PointerTo(g)
	}
	return g
}

func setValue(dst reflect.Value, t *Type, v any) error {
	if v == nil {
		if t.Kind == "list" {
			// parquet-go's LIST fields cannot be optional; writing [] would change the value.
			return fmt.Errorf("null list: Parquet output cannot hold a null list here (write .jsonl)")
		}
		if t.Nullable {
			return nil // a nil pointer: null
		}
		return fmt.Errorf("null in a column with no nulls")
	}
	if dst.Kind() == reflect.Pointer {
		p := reflect.New(dst.Type().Elem())
		dst.Set(p)
		dst = p.Elem()
	}
	switch t.Kind {
	case "list":
		list := v.([]any)
		s := reflect.MakeSlice(dst.Type(), len(list), len(list))
		for i, e := range list {
			if err := setValue(s.Index(i), t.Elem, e); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		dst.Set(s)
	case "struct":
		m := v.(map[string]any)
		for i, f := range t.Fields {
			if err := setValue(dst.Field(i), f.Type, m[f.Name]); err != nil {
				return fmt.Errorf("field %q: %w", f.Name, err)
			}
		}
	case "float":
		switch x := v.(type) {
		case int64:
			dst.SetFloat(float64(x))
		case float64:
			dst.SetFloat(x)
		}
	default:
		dst.Set(reflect.ValueOf(v))
	}
	return nil
}
