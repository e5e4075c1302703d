package hf

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model"
)

// stFile writes a safetensors file by hand: the header length, the header text, then data.
func stFile(t *testing.T, name string, headerLen uint64, hdr string, data []byte) string {
	t.Helper()
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, headerLen)
	b = append(b, hdr...)
	b = append(b, data...)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadSafetensorsBadInput(t *testing.T) {
	e := func(dtype, shape string, begin, end int) string {
		return `{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":[` + itoa(begin) + `,` + itoa(end) + `]}`
	}
	cases := []struct {
		name string
		hdr  string
		hlen int64  // header length field; -1 means len(hdr)
		data int    // bytes of (zero) data after the header
		want string // with F standing for the file's path
	}{
		{"header length 2^60", "{}", 1 << 60, 0, "F: header length 1152921504606846976 exceeds file size 10"},
		{"header longer than file", `{"a":` + e("F32", "[1]", 0, 4) + `}`, 500, 4, "F: header length 500 exceeds file size 66"},
		{"empty header", "", -1, 0, "F: header is not valid JSON: unexpected end of input"},
		{"invalid JSON", `{"a": {"dtype": "F32",}}`, -1, 0, "F: header is not valid JSON at byte 23: invalid character '}' looking for beginning of object key string"},
		{"unterminated JSON", `{"a": {"dtype": "F32"`, -1, 0, "F: header is not valid JSON: unexpected end of input"},
		{"not an object", `[1, 2]`, -1, 0, "F: header is not a JSON object"},
		{"trailing data", `{} {}`, -1, 0, "F: header has data after its JSON object"},
		{"unknown dtype", `{"a":` + e("Q4", "[1]", 0, 4) + `}`, -1, 4, `F: tensor "a" has dtype "Q4"; alignkit reads F32, F16 and BF16`},
		{"unsupported safetensors dtype", `{"ids":` + e("I64", "[1]", 0, 8) + `}`, -1, 8, `F: tensor "ids" has dtype "I64"; alignkit reads F32, F16 and BF16`},
		{"no dtype", `{"a":{"shape":[1],"data_offsets":[0,4]}}`, -1, 4, `F: tensor "a" has no dtype`},
		{"no shape", `{"a":{"dtype":"F32","data_offsets":[0,4]}}`, -1, 4, `F: tensor "a" has no shape`},
		{"no offsets", `{"a":{"dtype":"F32","shape":[1]}}`, -1, 4, `F: tensor "a": data_offsets must be [begin, end], got 0 numbers`},
		{"shape of the wrong type", `{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}`, -1, 4, `F: tensor "a": field "shape" has the wrong type: got a JSON string, want []int64`},
		{"fractional offset", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}`, -1, 4, `F: tensor "a": field "data_offsets" has the wrong type: got a JSON number 4.5, want int64`},
		{"entry not an object", `{"a":[1,2]}`, -1, 0, `F: tensor "a": entry is [1,2], want an object`},
		{"negative dimension", `{"a":` + e("F32", "[-1,-4]", 0, 16) + `}`, -1, 16, `F: tensor "a" has a negative dimension in shape [-1 -4]`},
		{"reversed offsets", `{"a":` + e("F32", "[1]", 8, 4) + `}`, -1, 8, `F: tensor "a": data_offsets [8, 4] are not a range`},
		{"shape/size mismatch", `{"a":` + e("F32", "[2,3]", 0, 20) + `}`, -1, 20, `F: tensor "a": shape [2 3] of F32 needs 24 bytes, data_offsets [0, 20] hold 20`},
		{"bf16 size mismatch", `{"a":` + e("BF16", "[4]", 0, 16) + `}`, -1, 16, `F: tensor "a": shape [4] of BF16 needs 8 bytes, data_offsets [0, 16] hold 16`},
		{"shape overflows", `{"a":` + e("F32", "[4611686018427387904,4]", 0, 16) + `}`, -1, 16, `F: tensor "a": shape [4611686018427387904 4] is too large`},
		{"out-of-range offsets", `{"a":` + e("F32", "[4]", 0, 16) + `}`, -1, 8, `F: tensor "a": data_offsets [0, 16] run past the 8-byte data section`},
		{"overlapping offsets", `{"a":` + e("F32", "[4]", 0, 16) + `,"b":` + e("F32", "[4]", 8, 24) + `}`, -1, 24, `F: tensors "a" [0, 16] and "b" [8, 24] overlap`},
		{"same range twice", `{"b":` + e("F32", "[2]", 0, 8) + `,"a":` + e("F32", "[2]", 0, 8) + `}`, -1, 8, `F: tensors "a" [0, 8] and "b" [0, 8] overlap`},
		{"gap between tensors", `{"a":` + e("F32", "[2]", 0, 8) + `,"b":` + e("F32", "[2]", 12, 20) + `}`, -1, 20, "F: bytes [8, 12] of the data section belong to no tensor"},
		{"trailing bytes", `{"a":` + e("F32", "[2]", 0, 8) + `}`, -1, 12, "F: bytes [8, 12] of the data section belong to no tensor"},
		{"duplicate name", `{"a":` + e("F32", "[1]", 0, 4) + `,"a":` + e("F32", "[1]", 4, 8) + `}`, -1, 8, `F: "a" appears twice in the header`},
		{"metadata not strings", `{"__metadata__":{"format":1}}`, -1, 0, `F: __metadata__ must be a JSON object of strings, got {"format":1}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hlen := uint64(c.hlen)
			if c.hlen < 0 {
				hlen = uint64(len(c.hdr))
			}
			path := stFile(t, "model.safetensors", hlen, c.hdr, make([]byte, c.data))
			_, err := ReadSafetensors(path)
			want := strings.ReplaceAll(c.want, "F:", path+":")
			if err == nil || err.Error() != want {
				t.Fatalf("error %v\nwant     %s", err, want)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestReadSafetensorsTruncated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	ts := map[string]*model.Tensor{"a": {Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}}
	if err := WriteSafetensors(path, ts, "f32", nil); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The header is {"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}} padded to 64 bytes.
	if n := binary.LittleEndian.Uint64(full); n != 64 || len(full) != 8+64+24 {
		t.Fatalf("header length %d, file %d bytes", n, len(full))
	}
	cases := []struct {
		size int
		want string
	}{
		{0, "F: file is 0 bytes, too short for the 8-byte header length"},
		{5, "F: file is 5 bytes, too short for the 8-byte header length"},
		{40, "F: header length 64 exceeds file size 40"},
		{8 + 64 + 20, `F: tensor "a": data_offsets [0, 24] run past the 20-byte data section`},
	}
	for _, c := range cases {
		if err := os.WriteFile(path, full[:c.size], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadSafetensors(path)
		if want := strings.ReplaceAll(c.want, "F:", path+":"); err == nil || err.Error() != want {
			t.Errorf("truncated to %d: error %v\nwant %s", c.size, err, want)
		}
	}

	// The header is checked against the file's size when it is opened; a file that shrinks before the
	// data is read fails on the short read, naming the tensor.
	if err := os.WriteFile(path, full, 0o644); err != nil {
		t.Fatal(err)
	}
	sf, err := openSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.f.Close()
	if err := os.Truncate(path, 8+64+20); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.readAll(context.Background()); err == nil || err.Error() != path+`: reading tensor "a": unexpected EOF` {
		t.Errorf("file shrunk after opening: error %v", err)
	}
}

func TestHeaderLimit(t *testing.T) {
	// A sparse file just over the limit: the length field passes the file-size check, so only the
	// 100 MB bound stops a 100 MB allocation.
	path := filepath.Join(t.TempDir(), "big.safetensors")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], maxHeaderLen+1)
	if _, err := f.Write(b[:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 + maxHeaderLen + 16); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = ReadSafetensors(path)
	if want := path + ": header length 100000001 exceeds the 100000000-byte limit"; err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
}

func TestWriteReadSafetensors(t *testing.T) {
	ts := map[string]*model.Tensor{
		"b":         {Shape: []int{2, 2}, Data: []float32{1, -2, 0.5, 65504}},
		"a<&>\"x\"": {Shape: []int{}, Data: []float32{3}},                                       // a scalar, and a name JSON must escape
		"empty":     {Shape: []int{0, 4}, Data: []float32{}},                                    // zero-size: [off, off]
		"z":         {Shape: []int{3}, Data: []float32{float32(math.Copysign(0, -1)), 1e-7, 7}}, // -0, and 1e-7 is an F16 subnormal
	}
	for _, dt := range []string{"f32", "bf16", "f16"} {
		path := filepath.Join(t.TempDir(), "x.safetensors")
		meta := map[string]string{"format": "pt", "note": "<hello>"}
		if err := WriteSafetensors(path, ts, dt, meta); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		n := binary.LittleEndian.Uint64(data)
		hdr := string(data[8 : 8+n])
		if n%8 != 0 {
			t.Errorf("%s: header length %d is not a multiple of 8", dt, n)
		}
		d := strings.ToUpper(dt)
		wantHdr := `{"__metadata__":{"format":"pt","note":"<hello>"},` +
			`"a<&>\"x\"":{"dtype":"` + d + `","shape":[],"data_offsets":[0,S1]},` +
			`"b":{"dtype":"` + d + `","shape":[2,2],"data_offsets":[S1,S5]},` +
			`"empty":{"dtype":"` + d + `","shape":[0,4],"data_offsets":[S5,S5]},` +
			`"z":{"dtype":"` + d + `","shape":[3],"data_offsets":[S5,S8]}}`
		es := 4
		if dt != "f32" {
			es = 2
		}
		wantHdr = strings.NewReplacer("S1", itoa(es), "S5", itoa(5*es), "S8", itoa(8*es)).Replace(wantHdr)
		if strings.TrimRight(hdr, " ") != wantHdr {
			t.Errorf("%s header\n%s\nwant\n%s", dt, hdr, wantHdr)
		}
		sf, err := openSafetensors(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sf.readAll(context.Background())
		sf.f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sf.meta, meta) {
			t.Errorf("metadata %v", sf.meta)
		}
		for name, want := range ts {
			g := got[name]
			if g == nil || !reflect.DeepEqual(g.Shape, want.Shape) || len(g.Data) != len(want.Data) {
				t.Fatalf("%s %s: got %+v", dt, name, g)
			}
			for i, v := range want.Data {
				r := v
				switch dt {
				case "bf16":
					r = bf16Nearest(v)
				case "f16":
					r = f16Reference(v)
				}
				if !sameFloat(g.Data[i], r) {
					t.Errorf("%s %s[%d] = %v, want %v", dt, name, i, g.Data[i], r)
				}
			}
		}
	}
	if got := f16Reference(1e-7); got != 1.1920929e-07 { // 1e-7 is 1.68 units of 2^-24: rounds to 2
		t.Errorf("f16(1e-7) = %v", got)
	}
}

func TestWriteSafetensorsErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	cases := []struct {
		name string
		ts   map[string]*model.Tensor
		dt   string
		want string
	}{
		{"short data", map[string]*model.Tensor{"a": {Shape: []int{2, 2}, Data: []float32{1}}}, "f32", `tensor "a" holds 1 values for shape [2 2]`},
		{"nil", map[string]*model.Tensor{"a": nil}, "f32", `tensor "a" is nil`},
		{"reserved", map[string]*model.Tensor{"__metadata__": {Shape: []int{1}, Data: []float32{1}}}, "f32", `tensor name "__metadata__" is reserved`},
		{"f16 overflow", map[string]*model.Tensor{"a": {Shape: []int{2}, Data: []float32{1, -65520}}}, "f16", `tensor "a": value -65520 at index 1 overflows F16`},
		{"bf16 overflow", map[string]*model.Tensor{"a": {Shape: []int{1}, Data: []float32{math.MaxFloat32}}}, "bf16", `tensor "a": value 3.4028235e+38 at index 0 overflows BF16`},
		{"dtype", map[string]*model.Tensor{}, "int8", `unknown dtype "int8" (want f32, bf16 or f16)`},
	}
	for _, c := range cases {
		err := WriteSafetensors(path, c.ts, c.dt, nil)
		if want := "writing " + path + ": " + c.want; err == nil || err.Error() != want {
			t.Errorf("%s: error %v\nwant %s", c.name, err, want)
		}
		if exists(path) {
			t.Fatalf("%s: file written despite the error", c.name)
		}
	}
	// 65519 is below the rounding threshold and becomes 65504, F16's largest finite value.
	if err := WriteSafetensors(path, map[string]*model.Tensor{"a": {Shape: []int{1}, Data: []float32{65519}}}, "f16", nil); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSafetensors(path)
	if err != nil || got["a"].Data[0] != 65504 {
		t.Fatalf("65519 as F16 reads back %v, %v", got, err)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`), uint32(8))
	f.Add([]byte(`{"a":{"dtype":"BF16","shape":[0,3],"data_offsets":[0,0]},"b":{"dtype":"F16","shape":[],"data_offsets":[0,2]}}`), uint32(2))
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}`), uint32(16))
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}`), uint32(24))
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[-4,0]}}`), uint32(0))
	f.Add([]byte(`{"a":[1],"a":{}}`), uint32(0))
	f.Add([]byte(`{"__metadata__":null}`), uint32(0))
	f.Add([]byte(`{`), uint32(0))
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, hdr []byte, dataLen uint32) {
		infos, _, err := parseHeader("fuzz", hdr, int64(dataLen))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		// Accepted headers must describe tensors that tile the data section exactly.
		var pos int64
		for _, ti := range infos {
			n := ti.Dtype.size()
			for _, d := range ti.Shape {
				n *= int64(d)
			}
			if ti.Begin != pos || ti.End-ti.Begin != n || ti.End > int64(dataLen) {
				t.Fatalf("accepted %+v at position %d", ti, pos)
			}
			pos = ti.End
		}
		if pos != int64(dataLen) {
			t.Fatalf("accepted a header covering %d of %d bytes", pos, dataLen)
		}
	})
}
