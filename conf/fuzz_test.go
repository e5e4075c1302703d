package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadYAML feeds arbitrary bytes as a job's YAML file: never a panic, and every error is one
// line naming the file (or the reading step).
func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte("learning_rate: 1e-5\nmax_steps: 10\nbeta: 0.1\ncolumns:\n  prompt: question\ntemperatures: [0.5, 1]\n"))
	f.Add([]byte("learning_rate: 0\n"))
	f.Add([]byte("max_steps: [1\n"))
	f.Add([]byte("&a [*a, *a]\n"))
	f.Add([]byte("columns: {a: {b: c}}\npacking: yes\n"))
	f.Add([]byte("--- !!binary AAAA\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "job.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var j job
		err := load(path, nil, &j, nil)
		if err != nil && (!strings.HasPrefix(err.Error(), path+": ") || strings.Contains(err.Error(), "\n")) {
			t.Fatalf("error is not one line naming the file: %q", err)
		}
	})
}
