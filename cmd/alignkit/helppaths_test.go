package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// helpPathRE matches a shipped config path in help text.
var helpPathRE = regexp.MustCompile(`configs/[A-Za-z0-9_./-]+\.ya?ml`)

// TestHelpConfigPathsExist: every configs/....yaml that a command's usage line, description,
// example or flag help names is a shipped file (init's usage once named configs/tiny-llama.yaml,
// which is configs/init/tiny-llama.yaml).
func TestHelpConfigPathsExist(t *testing.T) {
	root := sharedtest.RepoRoot(t)
	checked := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		text := []string{c.Use, c.Short, c.Long, c.Example}
		c.Flags().VisitAll(func(f *pflag.Flag) { text = append(text, f.Usage, f.DefValue) })
		for _, p := range helpPathRE.FindAllString(strings.Join(text, "\n"), -1) {
			checked++
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s --help names %s, which is not shipped", c.CommandPath(), p)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
	if checked == 0 {
		t.Error("no configs/ path found in any help text: the pattern no longer matches")
	}
}
