package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the header parser. It must never panic or allocate beyond the input's
// size, every error must be one line naming the file, and whatever it accepts must be internally
// consistent: every tensor inside the file, and every decodable tensor readable.
func FuzzOpen(f *testing.F) {
	t := &testing.T{}
	tiny := tinyGGUF(t)
	f.Add(tiny)
	f.Add(tiny[:len(tiny)/2])
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Add(tinyGGUF(t, kv{"general.alignment", uint32(64)}, kv{"n", []any{[]int32{1}, []any{[]string{"a"}}}}))
	var meta bytes.Buffer
	if err := encodeGGUF(&meta, []kv{{"u8", uint8(1)}, {"f64", 2.5}, {"b", []bool{true}}, {"s", []string{"x"}}}, nil, defaultAlign); err == nil {
		f.Add(meta.Bytes())
	}
	// The header of llama.cpp's stories260K file, when the shared folder is present.
	if data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "models", "stories260K", "stories260K-f32.gguf")); err == nil {
		f.Add(data[:1024])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := parse(bytes.NewReader(data), uint64(len(data)), "fuzz.gguf")
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "fuzz.gguf: ") || strings.Contains(msg, "\n") {
				t.Fatalf("error is not one line naming the file: %q", msg)
			}
			return
		}
		for _, ti := range g.Tensors {
			if end := g.DataOffset + ti.Offset + ti.Bytes(); end > uint64(len(data)) {
				t.Fatalf("tensor %q ends at %d, past the %d-byte input", ti.Name, end, len(data))
			}
			switch ti.Type {
			case TypeF32, TypeF16, TypeBF16, TypeQ8_0:
				if _, err := g.readTensor(bytes.NewReader(data), ti.Name); err != nil {
					t.Fatalf("accepted tensor %q does not read: %v", ti.Name, err)
				}
			}
		}
	})
}
