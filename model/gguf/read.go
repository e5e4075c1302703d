package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"unicode/utf8"

	"github.com/alignkit/alignkit/model"
)

// Limits the parser enforces beyond "fits in the file".
const (
	maxDims       = 4  // GGML_MAX_DIMS
	maxNameLen    = 63 // GGML_MAX_NAME is 64 bytes including the terminating NUL
	maxArrayDepth = 8  // nesting of arrays of arrays; real files use none
	defaultAlign  = 32 // GGUF_DEFAULT_ALIGNMENT
	// maxLoadElems caps what ReadTensor allocates (32 GiB of float32): a larger tensor is refused
	// with an error instead of exhausting memory.
	maxLoadElems = 1 << 33
)

// File is a parsed, validated GGUF header. Tensor data stays on disk until ReadTensor.
type File struct {
	Path    string
	Version uint32
	// KV holds the metadata. Scalars are uint8, int8, uint16, int16, uint32, int32, uint64, int64,
	// float32, float64, bool or string; arrays are typed slices ([]string, []float32, []int32, ...) and
	// an array of arrays is []any.
	KV        map[string]any
	KVOrder   []string // keys in file order
	Tensors   []TensorInfo
	Alignment uint64 // general.alignment, 32 by default
	// DataOffset is where the tensor data section starts in the file; tensor offsets are relative to it.
	DataOffset uint64
	Size       uint64 // file length in bytes

	byName map[string]int
}

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name   string
	Dims   []uint64 // ggml order: Dims[0] is the contiguous row length, the reverse of torch's shape
	Type   GGMLType
	Offset uint64 // from File.DataOffset
}

// Shape is the tensor's shape in torch order (Dims reversed).
func (t TensorInfo) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(t.Dims)-1-i] = int(d)
	}
	return s
}

// Numel is the number of elements.
func (t TensorInfo) Numel() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Bytes is the encoded size of the tensor's data.
func (t TensorInfo) Bytes() uint64 {
	tr := ggmlTypes[t.Type]
	return t.Numel() / tr.blockSize * tr.blockBytes
}

// Open parses and validates the GGUF file at path: magic, version, metadata, tensor infos, and that every
// tensor lies inside the file. The file is closed again; ReadTensor reopens it.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening GGUF: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("opening GGUF: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return parse(fh, uint64(st.Size()), path)
}

// headerReader reads little-endian fields and knows how many bytes are left, so that every length read
// from the file is checked against the file size before it is used to allocate.
type headerReader struct {
	r    *bufio.Reader
	pos  uint64
	size uint64
	path string
	at   string // what is being read, for errors: "metadata key 3 of 25 (\"general.name\")"
	buf  [8]byte
}

func (h *headerReader) left() uint64 { return h.size - h.pos }

func (h *headerReader) truncated() error {
	return fmt.Errorf("%s: truncated GGUF: the %d-byte file ends inside %s", h.path, h.size, h.at)
}

func (h *headerReader) read(n int) ([]byte, error) {
	if uint64(n) > h.left() {
		return nil, h.truncated()
	}
	if _, err := io.ReadFull(h.r, h.buf[:n]); err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", h.path, h.at, err)
	}
	h.pos += uint64(n)
	return h.buf[:n], nil
}

func (h *headerReader) u32() (uint32, error) {
	b, err := h.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (h *headerReader) u64() (uint64, error) {
	b, err := h.read(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// bytes reads n bytes after checking that the file holds them; what names the field for the error.
func (h *headerReader) bytes(n uint64, what string) ([]byte, error) {
	if n > h.left() {
		return nil, fmt.Errorf("%s: corrupt or truncated GGUF: %s: %s (%d bytes at offset %d) runs past the end of the %d-byte file",
			h.path, h.at, what, n, h.pos, h.size)
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(h.r, out); err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", h.path, h.at, err)
	}
	h.pos += n
	return out, nil
}

func (h *headerReader) str(what string) (string, error) {
	n, err := h.u64()
	if err != nil {
		return "", err
	}
	b, err := h.bytes(n, what)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// count reads an element count and checks that count elements of at least each bytes fit in the file.
func (h *headerReader) count(each uint64, what string) (uint64, error) {
	n, err := h.u64()
	if err != nil {
		return 0, err
	}
	if each > 0 && n > h.left()/each {
		return 0, fmt.Errorf("%s: corrupt or truncated GGUF: %s: %s %d is impossible with %d bytes left in the %d-byte file",
			h.path, h.at, what, n, h.left(), h.size)
	}
	return n, nil
}

func parse(r io.ReaderAt, size uint64, path string) (*File, error) {
	h := &headerReader{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, int64(size)), 1<<16), size: size, path: path, at: "the header"}
	magic, err := h.read(4)
	if err != nil {
		return nil, err
	}
	if string(magic) != "GGUF" {
		return nil, fmt.Errorf("%s: not a GGUF file (starts with %q, want \"GGUF\")", path, magic)
	}
	version, err := h.u32()
	if err != nil {
		return nil, err
	}
	if version != 2 && version != 3 {
		if v := bits.ReverseBytes32(version); v == 2 || v == 3 {
			return nil, fmt.Errorf("%s: big-endian GGUF (version %d) is not supported", path, v)
		}
		return nil, fmt.Errorf("%s: GGUF version %d is not supported (want 2 or 3)", path, version)
	}
	f := &File{Path: path, Version: version, KV: map[string]any{}, Size: size, Alignment: defaultAlign, byName: map[string]int{}}
	// Each tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes, each
	// metadata entry at least 8 (key length) + 4 (type) + 1 (value) bytes.
	nTensors, err := h.count(24, "tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := h.count(13, "metadata count")
	if err != nil {
		return nil, err
	}
	if nTensors*24+nKV*13 > h.left() {
		return nil, fmt.Errorf("%s: corrupt or truncated GGUF: %d tensors and %d metadata entries cannot fit in the %d-byte file", path, nTensors, nKV, size)
	}

	for i := uint64(0); i < nKV; i++ {
		h.at = fmt.Sprintf("metadata key %d of %d", i+1, nKV)
		key, err := h.str("key")
		if err != nil {
			return nil, err
		}
		h.at = fmt.Sprintf("metadata key %d of %d (%q)", i+1, nKV, key)
		if key == "" || !utf8.ValidString(key) {
			return nil, fmt.Errorf("%s: corrupt GGUF: %s: key is empty or not UTF-8", path, h.at)
		}
		if _, dup := f.KV[key]; dup {
			return nil, fmt.Errorf("%s: corrupt GGUF: metadata key %q appears twice", path, key)
		}
		typ, err := h.u32()
		if err != nil {
			return nil, err
		}
		v, err := h.value(typ, 0)
		if err != nil {
			return nil, err
		}
		f.KV[key] = v
		f.KVOrder = append(f.KVOrder, key)
	}
	if v, ok := f.KV["general.alignment"]; ok {
		a, isU32 := v.(uint32)
		if !isU32 || a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("%s: general.alignment = %v must be a power-of-two uint32", path, v)
		}
		f.Alignment = uint64(a)
	}

	for i := uint64(0); i < nTensors; i++ {
		h.at = fmt.Sprintf("tensor info %d of %d", i+1, nTensors)
		name, err := h.str("name")
		if err != nil {
			return nil, err
		}
		h.at = fmt.Sprintf("tensor info %d of %d (%q)", i+1, nTensors, name)
		ti, err := h.tensorInfo(name)
		if err != nil {
			return nil, err
		}
		if _, dup := f.byName[name]; dup {
			return nil, fmt.Errorf("%s: corrupt GGUF: tensor %q appears twice", path, name)
		}
		if ti.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("%s: corrupt GGUF: tensor %q offset %d is not a multiple of the alignment %d", path, name, ti.Offset, f.Alignment)
		}
		f.byName[name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}

	// The data section starts at the next multiple of the alignment after the header.
	f.DataOffset = (h.pos + f.Alignment - 1) / f.Alignment * f.Alignment
	if err := f.checkExtents(); err != nil {
		return nil, err
	}
	return f, nil
}

// value reads one metadata value of type typ.
func (h *headerReader) value(typ uint32, depth int) (any, error) {
	switch typ {
	case valUint8, valInt8, valBool, valUint16, valInt16, valUint32, valInt32, valFloat32, valUint64, valInt64, valFloat64:
		b, err := h.read(int(fixedSize(typ)))
		if err != nil {
			return nil, err
		}
		v, err := scalar(typ, b)
		if err != nil {
			return nil, fmt.Errorf("%s: corrupt GGUF: %s: %v", h.path, h.at, err)
		}
		return v, nil
	case valString:
		return h.str("string")
	case valArray:
		if depth >= maxArrayDepth {
			return nil, fmt.Errorf("%s: corrupt GGUF: %s: arrays nested more than %d deep", h.path, h.at, maxArrayDepth)
		}
		elem, err := h.u32()
		if err != nil {
			return nil, err
		}
		if minSize(elem) == 0 {
			return nil, fmt.Errorf("%s: corrupt GGUF: %s: unknown array element type %d", h.path, h.at, elem)
		}
		n, err := h.count(minSize(elem), "array length")
		if err != nil {
			return nil, err
		}
		return h.array(elem, n, depth)
	}
	return nil, fmt.Errorf("%s: corrupt GGUF: %s: unknown value type %d", h.path, h.at, typ)
}

// scalar decodes a fixed-size value.
func scalar(typ uint32, b []byte) (any, error) {
	le := binary.LittleEndian
	switch typ {
	case valUint8:
		return b[0], nil
	case valInt8:
		return int8(b[0]), nil
	case valBool:
		if b[0] > 1 {
			return nil, fmt.Errorf("bool value %d is neither 0 nor 1", b[0])
		}
		return b[0] == 1, nil
	case valUint16:
		return le.Uint16(b), nil
	case valInt16:
		return int16(le.Uint16(b)), nil
	case valUint32:
		return le.Uint32(b), nil
	case valInt32:
		return int32(le.Uint32(b)), nil
	case valFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case valUint64:
		return le.Uint64(b), nil
	case valInt64:
		return int64(le.Uint64(b)), nil
	case valFloat64:
		return math.Float64frombits(le.Uint64(b)), nil
	}
	return nil, fmt.Errorf("value type %d is not a scalar", typ)
}

// array reads n elements into a typed slice. Fixed-size elements are read in one checked block.
func (h *headerReader) array(elem uint32, n uint64, depth int) (any, error) {
	switch elem {
	case valString:
		out := make([]string, n)
		for i := range out {
			s, err := h.str(fmt.Sprintf("array string %d", i))
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	case valArray:
		out := make([]any, n)
		for i := range out {
			v, err := h.value(valArray, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	size := fixedSize(elem)
	raw, err := h.bytes(n*size, "array data")
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch elem {
	case valUint8:
		return raw, nil
	case valInt8:
		out := make([]int8, n)
		for i := range out {
			out[i] = int8(raw[i])
		}
		return out, nil
	case valBool:
		out := make([]bool, n)
		for i := range out {
			if raw[i] > 1 {
				return nil, fmt.Errorf("%s: corrupt GGUF: %s: bool element %d is %d, neither 0 nor 1", h.path, h.at, i, raw[i])
			}
			out[i] = raw[i] == 1
		}
		return out, nil
	case valUint16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = le.Uint16(raw[2*i:])
		}
		return out, nil
	case valInt16:
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(le.Uint16(raw[2*i:]))
		}
		return out, nil
	case valUint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = le.Uint32(raw[4*i:])
		}
		return out, nil
	case valInt32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(le.Uint32(raw[4*i:]))
		}
		return out, nil
	case valFloat32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		return out, nil
	case valUint64:
		out := make([]uint64, n)
		for i := range out {
			out[i] = le.Uint64(raw[8*i:])
		}
		return out, nil
	case valInt64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(le.Uint64(raw[8*i:]))
		}
		return out, nil
	case valFloat64:
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: corrupt GGUF: %s: unknown array element type %d", h.path, h.at, elem)
}

// tensorInfo reads the part of a tensor info after its name and validates dims and type.
func (h *headerReader) tensorInfo(name string) (TensorInfo, error) {
	ti := TensorInfo{Name: name}
	if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) {
		return ti, fmt.Errorf("%s: corrupt GGUF: %s: a tensor name must be 1 to %d bytes of UTF-8", h.path, h.at, maxNameLen)
	}
	nDims, err := h.u32()
	if err != nil {
		return ti, err
	}
	if nDims > maxDims {
		return ti, fmt.Errorf("%s: corrupt GGUF: %s: %d dimensions (ggml allows at most %d)", h.path, h.at, nDims, maxDims)
	}
	ti.Dims = make([]uint64, nDims)
	numel := uint64(1)
	for d := range ti.Dims {
		if ti.Dims[d], err = h.u64(); err != nil {
			return ti, err
		}
		hi, lo := bits.Mul64(numel, ti.Dims[d])
		if hi != 0 || lo > math.MaxInt64 || ti.Dims[d] > math.MaxInt64 {
			return ti, fmt.Errorf("%s: corrupt GGUF: %s: dimensions %v overflow", h.path, h.at, ti.Dims[:d+1])
		}
		numel = lo
	}
	typ, err := h.u32()
	if err != nil {
		return ti, err
	}
	ti.Type = GGMLType(typ)
	tr, ok := ggmlTypes[ti.Type]
	if !ok {
		return ti, fmt.Errorf("%s: corrupt GGUF: %s: unknown ggml type %d", h.path, h.at, typ)
	}
	rowLen := uint64(1) // a 0-D tensor is a scalar
	if nDims > 0 {
		rowLen = ti.Dims[0]
	}
	if rowLen%tr.blockSize != 0 {
		return ti, fmt.Errorf("%s: corrupt GGUF: %s: row length %d is not a multiple of the %s block size %d",
			h.path, h.at, rowLen, tr.name, tr.blockSize)
	}
	if hi, _ := bits.Mul64(numel/tr.blockSize, tr.blockBytes); hi != 0 {
		return ti, fmt.Errorf("%s: corrupt GGUF: %s: byte size overflows", h.path, h.at)
	}
	if ti.Offset, err = h.u64(); err != nil {
		return ti, err
	}
	return ti, nil
}

// checkExtents verifies that the data section and every tensor lie inside the file and that no two
// tensors overlap.
func (f *File) checkExtents() error {
	if f.DataOffset > f.Size && len(f.Tensors) > 0 {
		return fmt.Errorf("%s: truncated GGUF: the tensor data should start at byte %d but the file is %d bytes", f.Path, f.DataOffset, f.Size)
	}
	type extent struct{ lo, hi uint64 }
	ext := make([]extent, len(f.Tensors))
	avail := f.Size - min(f.DataOffset, f.Size)
	for i, t := range f.Tensors {
		n := t.Bytes()
		if t.Offset > avail || n > avail-t.Offset {
			return fmt.Errorf("%s: truncated GGUF: tensor %q needs bytes %d to %d but the file is %d bytes",
				f.Path, t.Name, f.DataOffset+t.Offset, f.DataOffset+t.Offset+n, f.Size)
		}
		ext[i] = extent{t.Offset, t.Offset + n}
	}
	order := make([]int, len(ext))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return ext[order[a]].lo < ext[order[b]].lo })
	for k := 1; k < len(order); k++ {
		a, b := order[k-1], order[k]
		if ext[b].lo < ext[a].hi {
			return fmt.Errorf("%s: corrupt GGUF: tensors %q and %q overlap", f.Path, f.Tensors[a].Name, f.Tensors[b].Name)
		}
	}
	return nil
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// readRaw reads the named tensor's encoded bytes as they are in the file (checkExtents proved that they
// lie inside it, so the allocation is bounded by the file size).
func (f *File) readRaw(r io.ReaderAt, name string) (TensorInfo, []byte, error) {
	ti, ok := f.Tensor(name)
	if !ok {
		return ti, nil, fmt.Errorf("%s: no tensor %q", f.Path, name)
	}
	raw := make([]byte, ti.Bytes())
	if _, err := r.ReadAt(raw, int64(f.DataOffset+ti.Offset)); err != nil {
		if err == io.EOF {
			return ti, nil, fmt.Errorf("%s: truncated GGUF: tensor %q runs past the end of the file", f.Path, name)
		}
		return ti, nil, fmt.Errorf("%s: reading tensor %q: %w", f.Path, name, err)
	}
	return ti, raw, nil
}

// ReadTensor reads and dequantises the named tensor to float32, with its shape in torch order.
func (f *File) ReadTensor(name string) (*model.Tensor, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("reading tensor %q: %w", name, err)
	}
	defer fh.Close()
	return f.readTensor(fh, name)
}

func (f *File) readTensor(r io.ReaderAt, name string) (*model.Tensor, error) {
	ti, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.Path, name)
	}
	if ti.Numel() > maxLoadElems {
		return nil, fmt.Errorf("%s: tensor %q has %d elements, too many to load as float32", f.Path, name, ti.Numel())
	}
	ti, raw, err := f.readRaw(r, name)
	if err != nil {
		return nil, err
	}
	t := &model.Tensor{Shape: ti.Shape(), Data: make([]float32, ti.Numel())}
	if err := decode(ti.Type, t.Data, raw); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.Path, name, err)
	}
	return t, nil
}
