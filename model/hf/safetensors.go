package hf

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/internal/ctxerr"
	"github.com/alignkit/alignkit/model"
)

// maxHeaderLen bounds the JSON header we are willing to read (and to write): the safetensors library
// itself refuses headers over 100 MB, and a bound is what keeps a corrupt length field from turning into
// a huge allocation.
const maxHeaderLen = 100_000_000

// metadataKey is the reserved header entry holding free-form string metadata.
const metadataKey = "__metadata__"

// tensorInfo is one validated header entry. Begin and End are byte offsets into the data section
// (which starts right after the header), End exclusive.
type tensorInfo struct {
	Name       string
	Dtype      dtype
	Shape      []int
	Begin, End int64
}

// rawEntry is a header entry as JSON gives it; nil fields were absent (or null).
type rawEntry struct {
	Dtype       *string `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// parseHeader decodes and validates a safetensors JSON header against a data section of dataLen bytes.
// It accepts exactly what the safetensors library accepts for our dtypes: a JSON object whose entries
// (other than __metadata__, a string-to-string object) have a known dtype, a shape of non-negative
// dimensions whose byte size equals end-begin, and data_offsets that tile the data section from 0 to
// dataLen with no overlap and no gap. The returned tensors are sorted by offset. file names the file in
// errors; every error is one line.
func parseHeader(file string, hdr []byte, dataLen int64) ([]tensorInfo, map[string]string, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{file}, args...)...)
	}
	jsonErr := func(err error) error {
		var se *json.SyntaxError
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return fail("header is not valid JSON: unexpected end of input")
		case errors.As(err, &se):
			// The streaming decoder's offsets are relative to its current value; a plain Unmarshal of
			// the whole header (only on this error path) gives the position from the header's start.
			var v any
			if err2 := json.Unmarshal(hdr, &v); errors.As(err2, &se) {
				return fail("header is not valid JSON at byte %d: %v", se.Offset, err2)
			}
			return fail("header is not valid JSON: %v", err)
		}
		return fail("header is not valid JSON: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fail("header is not a JSON object")
	}
	var (
		infos []tensorInfo
		meta  map[string]string
		seen  = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, jsonErr(err)
		}
		name, ok := tok.(string)
		if !ok { // the decoder only yields strings as keys, but do not rely on it
			return nil, nil, fail("header is not valid JSON: object key is not a string")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, jsonErr(err)
		}
		if seen[name] {
			return nil, nil, fail("%q appears twice in the header", name)
		}
		seen[name] = true
		if name == metadataKey {
			if err := json.Unmarshal(raw, &meta); err != nil || meta == nil {
				return nil, nil, fail("__metadata__ must be a JSON object of strings, got %s", clip(raw))
			}
			continue
		}
		info, err := checkEntry(name, raw, dataLen)
		if err != nil {
			return nil, nil, fail("%v", err)
		}
		infos = append(infos, info)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, jsonErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fail("header has data after its JSON object")
	}

	// Tile check: sorted by offset, each tensor must start where the previous one ended.
	sort.Slice(infos, func(i, j int) bool {
		if infos[i].Begin != infos[j].Begin {
			return infos[i].Begin < infos[j].Begin
		}
		if infos[i].End != infos[j].End {
			return infos[i].End < infos[j].End
		}
		return infos[i].Name < infos[j].Name
	})
	var pos int64
	for i, t := range infos {
		if t.Begin < pos {
			p := infos[i-1]
			return nil, nil, fail("tensors %q [%d, %d] and %q [%d, %d] overlap", p.Name, p.Begin, p.End, t.Name, t.Begin, t.End)
		}
		if t.Begin > pos {
			return nil, nil, fail("bytes [%d, %d] of the data section belong to no tensor", pos, t.Begin)
		}
		pos = t.End
	}
	if pos != dataLen {
		return nil, nil, fail("bytes [%d, %d] of the data section belong to no tensor", pos, dataLen)
	}
	return infos, meta, nil
}

// checkEntry validates one tensor's header entry.
func checkEntry(name string, raw json.RawMessage, dataLen int64) (tensorInfo, error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return tensorInfo{}, fmt.Errorf("tensor %q: entry is %s, want an object", name, clip(raw))
	}
	var e rawEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return tensorInfo{}, fmt.Errorf("tensor %q: field %q has the wrong type: got a JSON %s, want %s", name, te.Field, te.Value, te.Type)
		}
		return tensorInfo{}, fmt.Errorf("tensor %q: %v", name, err)
	}
	if e.Dtype == nil {
		return tensorInfo{}, fmt.Errorf("tensor %q has no dtype", name)
	}
	dt, ok := knownDtype(*e.Dtype)
	if !ok {
		return tensorInfo{}, fmt.Errorf("tensor %q has dtype %q; alignkit reads F32, F16 and BF16", name, *e.Dtype)
	}
	if e.Shape == nil {
		return tensorInfo{}, fmt.Errorf("tensor %q has no shape", name)
	}
	if len(e.DataOffsets) != 2 {
		return tensorInfo{}, fmt.Errorf("tensor %q: data_offsets must be [begin, end], got %d numbers", name, len(e.DataOffsets))
	}
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	if begin < 0 || end < begin {
		return tensorInfo{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] are not a range", name, begin, end)
	}
	if end > dataLen {
		return tensorInfo{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the %d-byte data section", name, begin, end, dataLen)
	}
	// Byte size with overflow checks: the product must fit in int64 (and in int for our slices).
	nbytes, shape := dt.size(), make([]int, len(e.Shape))
	zero := false
	for i, d := range e.Shape {
		if d < 0 {
			return tensorInfo{}, fmt.Errorf("tensor %q has a negative dimension in shape %v", name, e.Shape)
		}
		shape[i] = int(d)
		if d == 0 {
			zero = true
		}
	}
	if zero {
		nbytes = 0
	} else {
		for _, d := range e.Shape {
			if nbytes > math.MaxInt64/d || nbytes*d > math.MaxInt {
				return tensorInfo{}, fmt.Errorf("tensor %q: shape %v is too large", name, e.Shape)
			}
			nbytes *= d
		}
	}
	if nbytes != end-begin {
		return tensorInfo{}, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, data_offsets [%d, %d] hold %d",
			name, e.Shape, dt, nbytes, begin, end, end-begin)
	}
	return tensorInfo{Name: name, Dtype: dt, Shape: shape, Begin: begin, End: end}, nil
}

// clip quotes at most 40 bytes of raw JSON for an error message.
func clip(raw []byte) string {
	s := strings.Join(strings.Fields(string(raw)), " ")
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// safetensorsFile is an open, validated safetensors file.
type safetensorsFile struct {
	path      string
	f         *os.File
	tensors   []tensorInfo // sorted by offset
	meta      map[string]string
	dataStart int64 // file offset of the data section
}

// openSafetensors opens path and validates its header. Nothing but the header (bounded by
// maxHeaderLen and by the file's size) is read or allocated.
func openSafetensors(path string) (*safetensorsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading safetensors: %w", err)
	}
	sf, err := readHeader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return sf, nil
}

func readHeader(f *os.File, path string) (*safetensorsFile, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading safetensors: %w", err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: file is %d bytes, too short for the 8-byte header length", path, size)
	}
	var lenBuf [8]byte
	if _, err := f.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading the header length: %v", path, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > uint64(size-8) {
		return nil, fmt.Errorf("%s: header length %d exceeds file size %d", path, n, size)
	}
	if n > maxHeaderLen {
		return nil, fmt.Errorf("%s: header length %d exceeds the %d-byte limit", path, n, maxHeaderLen)
	}
	hdr := make([]byte, n)
	if _, err := f.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("%s: reading the header: %v", path, err)
	}
	dataStart := 8 + int64(n)
	infos, meta, err := parseHeader(path, hdr, size-dataStart)
	if err != nil {
		return nil, err
	}
	return &safetensorsFile{path: path, f: f, tensors: infos, meta: meta, dataStart: dataStart}, nil
}

// readAll decodes every tensor into float32, in file order, stopping when ctx ends.
func (sf *safetensorsFile) readAll(ctx context.Context) (map[string]*model.Tensor, error) {
	rd := reader{ctx: ctx}
	return rd.readAll(sf)
}

// reader reads safetensors files for LoadWith: every tensor as float32, except those freeze (see
// LoadOptions.Freeze) converts, which pass through one scratch buffer shared by every file.
type reader struct {
	ctx     context.Context // reading stops when it ends
	freeze  func(name string, shape []int) func([]float32) (*model.Tensor, error)
	scratch []float32
}

// readFile reads one safetensors file.
func (rd *reader) readFile(path string) (map[string]*model.Tensor, error) {
	sf, err := openSafetensors(path)
	if err != nil {
		return nil, err
	}
	defer sf.f.Close()
	return rd.readAll(sf)
}

// readAll decodes every tensor of sf, in file order.
func (rd *reader) readAll(sf *safetensorsFile) (map[string]*model.Tensor, error) {
	out := make(map[string]*model.Tensor, len(sf.tensors))
	buf := make([]byte, 1<<20)
	for i, info := range sf.tensors {
		if rd.ctx != nil {
			if err := ctxerr.Err(rd.ctx); err != nil {
				return nil, fmt.Errorf("loading %s: %w after %d of %d tensors", sf.path, err, i, len(sf.tensors))
			}
		}
		n := int((info.End - info.Begin) / info.Dtype.size())
		var convert func([]float32) (*model.Tensor, error)
		if rd.freeze != nil {
			convert = rd.freeze(info.Name, slices.Clone(info.Shape))
		}
		if convert == nil {
			t := &model.Tensor{Shape: info.Shape, Data: make([]float32, n)}
			if err := sf.read(info, buf, t.Data); err != nil {
				return nil, err
			}
			out[info.Name] = t
			continue
		}
		if cap(rd.scratch) < n {
			rd.scratch = make([]float32, n)
		}
		data := rd.scratch[:n]
		if err := sf.read(info, buf, data); err != nil {
			return nil, err
		}
		for i, v := range data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%s: tensor %q holds %v at index %d", sf.path, info.Name, v, i)
			}
		}
		t, err := convert(data)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", sf.path, info.Name, err)
		}
		out[info.Name] = t
	}
	return out, nil
}

// read decodes one tensor into dst (its element count) through buf, a scratch buffer whose length is
// a multiple of 4.
func (sf *safetensorsFile) read(info tensorInfo, buf []byte, dst []float32) error {
	es := int(info.Dtype.size())
	all := dst
	r := io.NewSectionReader(sf.f, sf.dataStart+info.Begin, info.End-info.Begin)
	for done := 0; done < len(all); {
		chunk := min(len(buf)/es, len(all)-done)
		b := buf[:chunk*es]
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("%s: reading tensor %q: %v", sf.path, info.Name, err)
		}
		dst := all[done : done+chunk]
		switch info.Dtype {
		case dtF32:
			for i := range dst {
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case dtBF16:
			for i := range dst {
				dst[i] = BF16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		case dtF16:
			for i := range dst {
				dst[i] = F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		}
		done += chunk
	}
	return nil
}

// ReadSafetensors reads every tensor of a safetensors file into float32 (F32 exactly; F16 and BF16
// widened exactly). The header is fully validated (see parseHeader) before any tensor is allocated.
func ReadSafetensors(path string) (map[string]*model.Tensor, error) {
	return readSafetensors(context.Background(), path)
}

func readSafetensors(ctx context.Context, path string) (map[string]*model.Tensor, error) {
	sf, err := openSafetensors(path)
	if err != nil {
		return nil, err
	}
	defer sf.f.Close()
	return sf.readAll(ctx)
}

// WriteSafetensors writes tensors to path atomically, converted to dtype ("f32" or "", "bf16", "f16"),
// with metadata (may be nil) as __metadata__. The bytes are deterministic: tensors are laid out in
// name order, the header's keys are sorted, and the header is padded with spaces to a multiple of 8
// bytes as the safetensors library does. A value that does not fit the dtype (beyond ±65504 for F16)
// is an error, not a silent Inf. transformers' from_pretrained refuses files whose metadata lacks
// "format" (Save passes {"format": "pt"}).
func WriteSafetensors(path string, tensors map[string]*model.Tensor, dtype string, metadata map[string]string) error {
	dt, err := parseDtype(dtype)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	if err := checkWritable(tensors, names, dt); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return writeSafetensors(path, tensors, names, dt, metadata)
}

// checkWritable rejects what would make an invalid or lossy-beyond-rounding file.
func checkWritable(tensors map[string]*model.Tensor, names []string, dt dtype) error {
	for _, name := range names {
		t := tensors[name]
		if name == metadataKey {
			return fmt.Errorf("tensor name %q is reserved", name)
		}
		if t == nil {
			return fmt.Errorf("tensor %q is nil", name)
		}
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("tensor %q has a negative dimension in shape %v", name, t.Shape)
			}
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("tensor %q holds %d values for shape %v", name, len(t.Data), t.Shape)
		}
		if dt == dtF32 {
			continue
		}
		for i, v := range t.Data {
			if math.IsInf(float64(v), 0) || v != v {
				continue // non-finite in, non-finite out: not an overflow
			}
			var wide float32
			if dt == dtF16 {
				wide = F16ToF32(F32ToF16(v))
			} else {
				wide = BF16ToF32(f32ToBF16(v))
			}
			if math.IsInf(float64(wide), 0) {
				return fmt.Errorf("tensor %q: value %g at index %d overflows %s", name, v, i, dt)
			}
		}
	}
	return nil
}

// buildHeader lays the named tensors out back to back in the given order and returns the padded
// header bytes and the data section's length.
func buildHeader(tensors map[string]*model.Tensor, names []string, dt dtype, metadata map[string]string) ([]byte, int64, error) {
	var b bytes.Buffer
	str := func(s string) {
		// An Encoder without HTML escaping, so names appear as written; the trailing newline is dropped.
		var sb bytes.Buffer
		enc := json.NewEncoder(&sb)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s) // encoding a string cannot fail
		b.Write(bytes.TrimSuffix(sb.Bytes(), []byte("\n")))
	}
	b.WriteByte('{')
	if len(metadata) > 0 {
		str(metadataKey)
		b.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			str(k)
			b.WriteByte(':')
			str(metadata[k])
		}
		b.WriteByte('}')
	}
	var off int64
	for i, name := range names {
		if i > 0 || len(metadata) > 0 {
			b.WriteByte(',')
		}
		t := tensors[name]
		size := int64(len(t.Data)) * dt.size()
		str(name)
		fmt.Fprintf(&b, `:{"dtype":"%s","shape":[`, dt)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, d)
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, off, off+size)
		off += size
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > maxHeaderLen {
		return nil, 0, fmt.Errorf("header of %d bytes exceeds the %d-byte limit", b.Len(), maxHeaderLen)
	}
	return b.Bytes(), off, nil
}

// writeSafetensors writes already-checked tensors, in the order of names, atomically to path.
func writeSafetensors(path string, tensors map[string]*model.Tensor, names []string, dt dtype, metadata map[string]string) error {
	hdr, _, err := buildHeader(tensors, names, dt, metadata)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		var lenBuf [8]byte
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
		w.Write(lenBuf[:])
		w.Write(hdr)
		buf := make([]byte, 1<<16)
		for _, name := range names {
			for data := tensors[name].Data; len(data) > 0; {
				n := min(len(data), len(buf)/4)
				w.Write(encode(buf, data[:n], dt))
				data = data[n:]
			}
		}
		return nil // atomicfile buffers w, remembers its first error and reports it at Flush
	})
}

// encode converts src to dt's little-endian bytes in buf (which must hold 4 bytes per value) and
// returns the filled prefix.
func encode(buf []byte, src []float32, dt dtype) []byte {
	switch dt {
	case dtBF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(buf[2*i:], f32ToBF16(v))
		}
	case dtF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(buf[2*i:], F32ToF16(v))
		}
	default:
		for i, v := range src {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
	}
	return buf[:len(src)*int(dt.size())]
}
