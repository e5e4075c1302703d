// Package docs holds the project's documents; its test keeps ARCHITECTURE.md true to the code.
package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// refRE matches a backticked path: a directory, a Go file, or file.go:Name.
var refRE = regexp.MustCompile("`([a-z][a-z0-9_]*(?:/[a-z0-9_]+)*(?:\\.go|/)?)(?::([A-Za-z_][A-Za-z0-9_]*))?`")

// TestArchitectureNamesExist: every file, directory and file.go:Name that ARCHITECTURE.md names
// exists, Name being a function, method or type declared in that file, and every package in the
// layers table is a directory. The document is read in ten minutes only if it stays true.
func TestArchitectureNamesExist(t *testing.T) {
	doc, err := os.ReadFile("ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	root := ".."
	checked := 0
	for _, m := range refRE.FindAllStringSubmatch(string(doc), -1) {
		path, name := m[1], m[2]
		isPath := strings.Contains(path, "/") || strings.HasSuffix(path, ".go")
		if !isPath {
			continue
		}
		checked++
		full := filepath.Join(root, filepath.FromSlash(path))
		if _, err := os.Stat(full); err != nil {
			t.Errorf("ARCHITECTURE.md names %s, which does not exist", path)
			continue
		}
		if name != "" && !declares(t, full, name) {
			t.Errorf("ARCHITECTURE.md names %s:%s, which %s does not declare", path, name, path)
		}
	}
	// The layers table: its second column lists package directories.
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !regexp.MustCompile(`^\s*\d\. `).MatchString(cells[1]) {
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cells[2], -1) {
			checked++
			if fi, err := os.Stat(filepath.Join(root, m[1])); err != nil || !fi.IsDir() {
				t.Errorf("the layers table lists package %s, which is not a directory", m[1])
			}
		}
	}
	if checked < 40 {
		t.Errorf("only %d references checked: the pattern no longer matches the document", checked)
	}
}

// declares reports whether the Go file at path declares a function, method or type called name.
func declares(t *testing.T, path, name string) bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Name.Name == name {
				return true
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				if ts, ok := s.(*ast.TypeSpec); ok && ts.Name.Name == name {
					return true
				}
			}
		}
	}
	return false
}
