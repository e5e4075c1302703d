package gguf

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/alignkit/alignkit/internal/atomicfile"
)

// kv is one metadata entry; the Go type of val picks the GGUF value type (uint32 -> UINT32, []string ->
// ARRAY of STRING, ...), mirroring what Open returns.
type kv struct {
	key string
	val any
}

// outTensor is a tensor to write: data is row-major in torch order, which is also ggml's memory order
// for the reversed dims.
type outTensor struct {
	name string
	dims []uint64 // ggml order
	typ  GGMLType
	data []float32
	raw  []byte // already encoded as typ (data is then unused): a frozen tensor written as it is
}

func (t outTensor) numel() uint64 {
	n := uint64(1)
	for _, d := range t.dims {
		n *= d
	}
	return n
}

// writeFile writes a GGUF v3 file atomically: everything goes to a temporary file in path's directory,
// which is synced and renamed over path only when complete.
func writeFile(path string, kvs []kv, tensors []outTensor, align uint64) error {
	return atomicfile.Write(path, func(w io.Writer) error { return encodeGGUF(w, kvs, tensors, align) })
}

// encodeGGUF streams the header, metadata, tensor infos and aligned tensor data to w.
func encodeGGUF(w io.Writer, kvs []kv, tensors []outTensor, align uint64) error {
	e := &encoder{w: w}
	e.raw([]byte("GGUF"))
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs)))
	for _, m := range kvs {
		e.str(m.key)
		if err := e.value(m.val, true); err != nil {
			return fmt.Errorf("metadata %s: %w", m.key, err)
		}
	}
	offset := uint64(0)
	for _, t := range tensors {
		tr, ok := ggmlTypes[t.typ]
		if !ok || len(t.dims) == 0 || len(t.dims) > maxDims || len(t.name) > maxNameLen {
			return fmt.Errorf("tensor %q: cannot describe type %s with dims %v", t.name, t.typ, t.dims)
		}
		if t.raw != nil {
			if t.dims[0]%tr.blockSize != 0 || uint64(len(t.raw)) != t.numel()/tr.blockSize*tr.blockBytes {
				return fmt.Errorf("tensor %q: %d bytes for dims %v of type %s", t.name, len(t.raw), t.dims, t.typ)
			}
		} else if t.dims[0]%tr.blockSize != 0 || uint64(len(t.data)) != t.numel() {
			return fmt.Errorf("tensor %q: %d values for dims %v of type %s", t.name, len(t.data), t.dims, t.typ)
		}
		e.str(t.name)
		e.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			e.u64(d)
		}
		e.u32(uint32(t.typ))
		e.u64(offset)
		offset += pad(t.numel()/tr.blockSize*tr.blockBytes, align)
	}
	e.zeros(pad(e.n, align) - e.n)
	for _, t := range tensors {
		b := t.raw
		if b == nil {
			var err error
			if b, err = encode(t.typ, t.data); err != nil {
				return fmt.Errorf("tensor %q: %w", t.name, err)
			}
		}
		e.raw(b)
		e.zeros(pad(uint64(len(b)), align) - uint64(len(b)))
	}
	return e.err
}

// pad rounds n up to a multiple of align.
func pad(n, align uint64) uint64 { return (n + align - 1) / align * align }

// encoder writes little-endian fields, remembering the first error and the byte count.
type encoder struct {
	w   io.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err != nil {
		return
	}
	_, e.err = e.w.Write(b)
	e.n += uint64(len(b))
}

func (e *encoder) zeros(n uint64) { e.raw(make([]byte, n)) }

func (e *encoder) u8(v uint8) { e.raw([]byte{v}) }

func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.raw(e.buf[:2])
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.raw(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.raw(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.raw([]byte(s))
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// value writes v, preceded by its type tag when tagged (array elements carry none of their own).
func (e *encoder) value(v any, tagged bool) error {
	tag := func(t uint32) {
		if tagged {
			e.u32(t)
		}
	}
	switch x := v.(type) {
	case uint8:
		tag(valUint8)
		e.u8(x)
	case int8:
		tag(valInt8)
		e.u8(uint8(x))
	case uint16:
		tag(valUint16)
		e.u16(x)
	case int16:
		tag(valInt16)
		e.u16(uint16(x))
	case uint32:
		tag(valUint32)
		e.u32(x)
	case int32:
		tag(valInt32)
		e.u32(uint32(x))
	case uint64:
		tag(valUint64)
		e.u64(x)
	case int64:
		tag(valInt64)
		e.u64(uint64(x))
	case float32:
		tag(valFloat32)
		e.u32(math.Float32bits(x))
	case float64:
		tag(valFloat64)
		e.u64(math.Float64bits(x))
	case bool:
		tag(valBool)
		e.u8(boolByte(x))
	case string:
		tag(valString)
		e.str(x)
	case []any:
		tag(valArray)
		e.u32(valArray)
		e.u64(uint64(len(x)))
		for i, el := range x {
			switch el.(type) {
			case uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64, bool, string:
				// An array of arrays holds only arrays; a scalar here would be unreadable.
				return fmt.Errorf("element %d of an array of arrays is a %T", i, el)
			}
			if err := e.value(el, false); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	default:
		return e.typedArray(v, tag)
	}
	return nil
}

// typedArray writes a typed slice as a GGUF array.
func (e *encoder) typedArray(v any, tag func(uint32)) error {
	head := func(elem uint32, n int) {
		tag(valArray)
		e.u32(elem)
		e.u64(uint64(n))
	}
	switch x := v.(type) {
	case []uint8:
		head(valUint8, len(x))
		e.raw(x)
	case []int8:
		head(valInt8, len(x))
		for _, y := range x {
			e.u8(uint8(y))
		}
	case []bool:
		head(valBool, len(x))
		for _, y := range x {
			e.u8(boolByte(y))
		}
	case []uint16:
		head(valUint16, len(x))
		for _, y := range x {
			e.u16(y)
		}
	case []int16:
		head(valInt16, len(x))
		for _, y := range x {
			e.u16(uint16(y))
		}
	case []uint32:
		head(valUint32, len(x))
		for _, y := range x {
			e.u32(y)
		}
	case []int32:
		head(valInt32, len(x))
		for _, y := range x {
			e.u32(uint32(y))
		}
	case []uint64:
		head(valUint64, len(x))
		for _, y := range x {
			e.u64(y)
		}
	case []int64:
		head(valInt64, len(x))
		for _, y := range x {
			e.u64(uint64(y))
		}
	case []float32:
		head(valFloat32, len(x))
		for _, y := range x {
			e.u32(math.Float32bits(y))
		}
	case []float64:
		head(valFloat64, len(x))
		for _, y := range x {
			e.u64(math.Float64bits(y))
		}
	case []string:
		head(valString, len(x))
		for _, y := range x {
			e.str(y)
		}
	default:
		return fmt.Errorf("cannot encode a %T as GGUF metadata", v)
	}
	return nil
}
