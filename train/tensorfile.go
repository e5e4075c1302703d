package train

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
)

// Tensor files (params.bin, optimizer.bin) are little-endian:
//
//	magic    [8]byte  "AKTRAIN\x00"
//	version  uint32   (tensorFileVersion)
//	kind     [8]byte  "params\x00\x00" or "adamw\x00\x00\x00"
//	step     int64    AdamW's step count (0 for params)
//	count    uint32   number of tensors
//	count times:
//	  nameLen uint32, name [nameLen]byte, n uint64,
//	  then n float32 values for params, or n float32 m followed by n float32 v for adamw
//	crc32    uint32   IEEE CRC of every byte before it
//
// The CRC lets a resume reject a truncated or damaged file with a clear error instead of loading garbage.
const (
	tensorFileMagic   = "AKTRAIN\x00"
	tensorFileVersion = 1
	kindParams        = "params"
	kindAdamW         = "adamw"
)

// tensorRecord is one named tensor, with one (params) or two (adamw: m, v) float32 arrays.
type tensorRecord struct {
	name   string
	arrays [][]float32
}

type crcWriter struct {
	w   *bufio.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
	return c.w.Write(p)
}

func kindBytes(kind string) [8]byte {
	var b [8]byte
	copy(b[:], kind)
	return b
}

// writeTensorFile writes records to path (inside a checkpoint's temporary directory) and syncs it.
func writeTensorFile(path, kind string, step int64, records []tensorRecord) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &crcWriter{w: bw}
	le := binary.LittleEndian
	hdr := make([]byte, 0, 32)
	hdr = append(hdr, tensorFileMagic...)
	hdr = le.AppendUint32(hdr, tensorFileVersion)
	kb := kindBytes(kind)
	hdr = append(hdr, kb[:]...)
	hdr = le.AppendUint64(hdr, uint64(step))
	hdr = le.AppendUint32(hdr, uint32(len(records)))
	if _, err := cw.Write(hdr); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, r := range records {
		buf = le.AppendUint32(buf[:0], uint32(len(r.name)))
		buf = append(buf, r.name...)
		buf = le.AppendUint64(buf, uint64(len(r.arrays[0])))
		if _, err := cw.Write(buf); err != nil {
			return err
		}
		for _, a := range r.arrays {
			for lo := 0; lo < len(a); lo += 1 << 14 {
				buf = buf[:0]
				for _, x := range a[lo:min(len(a), lo+1<<14)] {
					buf = le.AppendUint32(buf, math.Float32bits(x))
				}
				if _, err := cw.Write(buf); err != nil {
					return err
				}
			}
		}
	}
	if _, err := bw.Write(le.AppendUint32(nil, cw.crc)); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

type crcReader struct {
	r   *bufio.Reader
	crc uint32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p[:n])
	return n, err
}

// readTensorFile reads a file written by writeTensorFile and checks it against the expected kind and the
// expected tensors (names and sizes, in order). Each error names the file.
func readTensorFile(path, kind string, want []Param) (step int64, records []tensorRecord, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	cr := &crcReader{r: bufio.NewReaderSize(f, 1<<20)}
	le := binary.LittleEndian
	fail := func(format string, a ...any) (int64, []tensorRecord, error) {
		return 0, nil, fmt.Errorf("%s: "+format, append([]any{path}, a...)...)
	}
	read := func(b []byte) error {
		_, err := io.ReadFull(cr, b)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return errors.New("file is truncated")
		}
		return err
	}
	hdr := make([]byte, 32)
	if err := read(hdr); err != nil {
		return fail("%v", err)
	}
	if string(hdr[:8]) != tensorFileMagic {
		return fail("not an alignkit training tensor file (bad magic)")
	}
	if v := le.Uint32(hdr[8:12]); v != tensorFileVersion {
		return fail("unsupported version %d (want %d)", v, tensorFileVersion)
	}
	if kb := kindBytes(kind); string(hdr[12:20]) != string(kb[:]) {
		return fail("holds %q tensors, want %q", string(trimZero(hdr[12:20])), kind)
	}
	step = int64(le.Uint64(hdr[20:28]))
	count := int(le.Uint32(hdr[28:32]))
	if count != len(want) {
		return fail("holds %d tensors, the task has %d params", count, len(want))
	}
	nArrays := 1
	if kind == kindAdamW {
		nArrays = 2
	}
	var b4 [4]byte
	var b8 [8]byte
	buf := make([]byte, 1<<16)
	for i, p := range want {
		if err := read(b4[:]); err != nil {
			return fail("%v", err)
		}
		nameLen := int(le.Uint32(b4[:]))
		if nameLen != len(p.Name) {
			return fail("tensor %d is not %s (name length %d)", i, p.Name, nameLen)
		}
		name := make([]byte, nameLen)
		if err := read(name); err != nil {
			return fail("%v", err)
		}
		if string(name) != p.Name {
			return fail("tensor %d is %s, the task's param %d is %s", i, name, i, p.Name)
		}
		if err := read(b8[:]); err != nil {
			return fail("%v", err)
		}
		if n := le.Uint64(b8[:]); n != uint64(len(p.Value)) {
			return fail("tensor %s has %d values, the task's param has %d", p.Name, n, len(p.Value))
		}
		rec := tensorRecord{name: p.Name}
		for range nArrays {
			a := make([]float32, len(p.Value))
			for lo := 0; lo < len(a); lo += len(buf) / 4 {
				part := a[lo:min(len(a), lo+len(buf)/4)]
				if err := read(buf[:4*len(part)]); err != nil {
					return fail("%v", err)
				}
				for j := range part {
					part[j] = math.Float32frombits(le.Uint32(buf[4*j:]))
				}
			}
			rec.arrays = append(rec.arrays, a)
		}
		records = append(records, rec)
	}
	sum := cr.crc
	if err := read(b4[:]); err != nil {
		return fail("%v", err)
	}
	if got := le.Uint32(b4[:]); got != sum {
		return fail("checksum mismatch (file %08x, computed %08x): the file is damaged", got, sum)
	}
	if n, _ := cr.r.Read(b4[:1]); n != 0 {
		return fail("trailing bytes after the checksum")
	}
	return step, records, nil
}

func trimZero(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
