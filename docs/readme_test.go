package docs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// readmeCommand is one command of a shell block in README.md: continuation lines joined, the
// trailing comment cut off.
type readmeCommand struct {
	line int    // README line where it starts
	text string // as written, without the comment
	vars []string
	// words is text split as the shell would (quotes removed), with operators (&&, ;, |, >, (, ))
	// as words of their own and $NAME expanded from the assignments before it in its block.
	words []string
}

// shellBlockRE opens a fenced block of shell commands.
var shellBlockRE = regexp.MustCompile("^```(sh|bash|shell|console)\\s*$")

// parseReadme returns the commands of README's shell blocks. An assignment line (S=...) is kept
// in vars for the commands after it in the same block, as the shell would.
func parseReadme(text string) ([]readmeCommand, error) {
	var cmds []readmeCommand
	sc := bufio.NewScanner(strings.NewReader(text))
	inBlock, lineNo := false, 0
	var vars []string
	var pending strings.Builder
	start := 0
	for sc.Scan() {
		lineNo++
		l := sc.Text()
		if !inBlock {
			if shellBlockRE.MatchString(l) {
				inBlock, vars = true, nil
			}
			continue
		}
		if strings.HasPrefix(l, "```") {
			if pending.Len() > 0 {
				return nil, fmt.Errorf("README.md:%d: a continued command runs into the end of its block", start)
			}
			inBlock = false
			continue
		}
		if pending.Len() == 0 {
			start = lineNo
			l = strings.TrimPrefix(strings.TrimLeft(l, " "), "$ ")
		}
		if strings.HasSuffix(l, "\\") {
			pending.WriteString(strings.TrimSuffix(l, "\\"))
			continue
		}
		pending.WriteString(l)
		full := pending.String()
		pending.Reset()
		words, code, err := shellWords(full)
		if err != nil {
			return nil, fmt.Errorf("README.md:%d: %v", start, err)
		}
		if len(words) == 0 {
			continue
		}
		if isAssignments(words) {
			vars = append(vars, words...)
			continue
		}
		expanded := make([]string, len(words))
		for i, w := range words {
			expanded[i] = expandVars(w, vars)
		}
		cmds = append(cmds, readmeCommand{line: start, text: strings.TrimSpace(code), vars: append([]string(nil), vars...), words: expanded})
	}
	if inBlock {
		return nil, fmt.Errorf("README.md: a shell block is never closed")
	}
	return cmds, sc.Err()
}

var assignRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func isAssignments(words []string) bool {
	for _, w := range words {
		if !assignRE.MatchString(w) {
			return false
		}
	}
	return true
}

var varRE = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// expandVars replaces $NAME and ${NAME} with the last assignment of NAME in vars (NAME=value).
func expandVars(w string, vars []string) string {
	return varRE.ReplaceAllStringFunc(w, func(m string) string {
		name := varRE.FindStringSubmatch(m)[1]
		val, found := "", false
		for _, v := range vars {
			if k, x, _ := strings.Cut(v, "="); k == name {
				val, found = x, true
			}
		}
		if !found {
			return m
		}
		return val
	})
}

// shellWords splits s as sh would for these purposes: single and double quotes group and are
// removed, a backslash escapes the next character outside single quotes, an unquoted # at the
// start of a word begins a comment, and &&, ||, ;, |, >, >>, (, ) are words of their own. code is
// s up to the comment.
func shellWords(s string) (words []string, code string, err error) {
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	code = s
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, "", fmt.Errorf("unclosed ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, "", fmt.Errorf("unclosed \" in %q", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			return words, s[:i], nil
		case strings.HasPrefix(s[i:], "&&") || strings.HasPrefix(s[i:], "||") || strings.HasPrefix(s[i:], ">>"):
			flush()
			words = append(words, s[i:i+2])
			i++
		case strings.IndexByte(";|>()<", c) >= 0:
			flush()
			words = append(words, string(c))
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, code, nil
}

// readmeSkip is a rule that keeps a README command from running in the test, and why.
type readmeSkip struct {
	match  func(c readmeCommand) bool
	reason string
}

// firstWord reports whether the command starts with w.
func firstWord(w string) func(readmeCommand) bool {
	return func(c readmeCommand) bool { return c.words[0] == w }
}

// hasWord reports whether any word of the command is w.
func hasWord(w string) func(readmeCommand) bool {
	return func(c readmeCommand) bool {
		for _, x := range c.words {
			if x == w {
				return true
			}
		}
		return false
	}
}

// readmeSkips are the README commands the test does not run. Every command is either run or
// matched here: a new kind of command fails the test until it runs or gets a rule.
var readmeSkips = []readmeSkip{
	{firstWord("sudo"), "installs system packages"},
	{firstWord("make"), "runs make: `make demo`, `make test` and `make test-mpi` build and run the whole project (minutes); this test is part of `make test`"},
	{firstWord("mpirun"), "needs Open MPI and a binary built with `make build MPI=1`"},
	{hasWord("ollama"), "needs ollama"},
	{hasWord("backend=openai"), "needs an OpenAI-compatible server (vLLM, llama-server) at base_url"},
	{hasWord("--allow-runtime-lora"), "starts a server that runs until it is stopped"},
	// Trainings of more than a few seconds: the test's budget is about a minute for all of README's
	// commands on 2 loaded cores. The LoRA SFT (about 15-25 s) runs: the adapter commands after it
	// need it. Times are wall seconds measured on 2026-12-06 on the 2-core VM at load 11-16.
	{configIs("configs/sft/stories260k.yaml"), "a full fine-tuning of stories260K (18 s)"},
	{configIs("configs/reward/stories260k.yaml"), "trains a reward model on 2312 pairs (46 s)"},
	{configIs("configs/dpo/stories260k.yaml"), "trains DPO on 284 pairs (28 s)"},
	{configIs("configs/gatt/synth-stories260k.yaml"), "samples GAtt dialogues for 200 conversations (16 s)"},
	{configIs("configs/gatt/sft-stories260k.yaml"), "fine-tunes on the GAtt dialogues of the skipped `gatt synth` (23 s)"},
	{configIs("configs/gatt/eval-stories260k.yaml"), "evaluates the model of the skipped GAtt fine-tuning"},
	{configIs("configs/ppo/stories260k.yaml"), "scores with the reward model of the skipped `reward train` (runs/reward-stories260k)"},
}

// configIs matches a command run with --config path.
func configIs(path string) func(readmeCommand) bool {
	return func(c readmeCommand) bool { return flagValue(c.words, "--config") == path }
}

// flagValue is the value of --name (as "--name v" or "--name=v"), or "".
func flagValue(words []string, name string) string {
	for i, w := range words {
		if w == name && i+1 < len(words) {
			return words[i+1]
		}
		if v, ok := strings.CutPrefix(w, name+"="); ok {
			return v
		}
	}
	return ""
}

// outputFlags name a file or directory a command writes.
var outputFlags = []string{"--out", "--output", "--train-out", "--test-out", "--removed"}

// dataWriters are the `alignkit data` subcommands whose second argument is their output.
var dataWriters = map[string]bool{"convert": true, "sample": true, "dedup": true, "decontaminate": true}

// produces returns the paths the command writes: output flags, a redirect's target, the second
// argument of a `data` writer, and the output_dir of the config a job runs (or its --set).
func produces(root string, c readmeCommand) ([]string, error) {
	var out []string
	w := c.words
	for _, f := range outputFlags {
		if v := flagValue(w, f); v != "" {
			out = append(out, v)
		}
	}
	for i, x := range w {
		if (x == ">" || x == ">>") && i+1 < len(w) {
			out = append(out, w[i+1])
		}
	}
	if len(w) > 2 && w[0] == "bin/alignkit" && w[1] == "data" && dataWriters[w[2]] {
		if args := positional(w[3:]); len(args) >= 2 {
			out = append(out, args[1])
		}
	}
	for i, x := range w {
		if x == "--set" && i+1 < len(w) {
			if v, ok := strings.CutPrefix(w[i+1], "output_dir="); ok {
				return append(out, v), nil
			}
		}
	}
	if cfg := flagValue(w, "--config"); cfg != "" {
		b, err := os.ReadFile(filepath.Join(root, cfg))
		if err != nil {
			return nil, fmt.Errorf("README.md:%d: %v", c.line, err)
		}
		if m := regexp.MustCompile(`(?m)^output_dir:\s*(\S+)`).FindSubmatch(b); m != nil {
			out = append(out, string(m[1]))
		}
	}
	return out, nil
}

// positional returns the words that are neither flags nor flag values. Every flag of the data
// subcommands but --near takes a value.
func positional(words []string) []string {
	var args []string
	for i := 0; i < len(words); i++ {
		switch w := words[i]; {
		case w == "--near" || strings.Contains(w, "="):
		case strings.HasPrefix(w, "-"):
			i++
		default:
			args = append(args, w)
		}
	}
	return args
}

// pathExts are the extensions that make a word without a slash a file name.
var pathExts = []string{".yaml", ".yml", ".parquet", ".jsonl", ".json", ".gguf", ".safetensors", ".png", ".md"}

// names returns the words that name files: with a slash (not a URL, not key=value), or with a
// data or model file's extension. The values of --set and --prompt/--text are text, not files.
func names(c readmeCommand) []string {
	var out []string
	w := c.words
	for i, x := range w {
		if i > 0 && (w[i-1] == "--set" || w[i-1] == "--prompt" || w[i-1] == "--text") {
			continue
		}
		if strings.HasPrefix(x, "-") {
			if _, v, ok := strings.Cut(x, "="); ok {
				x = v
			} else {
				continue
			}
		}
		if x == "" || strings.ContainsAny(x, " \t\n=$") || strings.Contains(x, "://") {
			continue
		}
		isFile := strings.Contains(x, "/")
		for _, e := range pathExts {
			isFile = isFile || strings.HasSuffix(x, e)
		}
		if isFile {
			out = append(out, x)
		}
	}
	return out
}

// under reports whether path p is dir or inside it.
func under(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// shipped reports whether a path relative to the repository root is part of a clone: it exists
// and is not under an ignored build output (bin/, runs/).
func shipped(root, p string) bool {
	if under(p, "bin") || under(p, "runs") || filepath.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") {
		return false
	}
	_, err := os.Stat(filepath.Join(root, p))
	return err == nil
}

// sharedPathRE matches a ../shared path in a YAML config.
var sharedPathRE = regexp.MustCompile(`\.\./shared/[^\s#,\]'"]+`)

// readmeStep is a README command and why it is skipped ("" when it runs).
type readmeStep struct {
	readmeCommand
	skip string
}

// planReadme decides, in order, which commands run and which are skipped and why. Its problems
// are what fails the test: a named file that no clone ships (root is the checkout) and no earlier
// command writes, a ../shared file that shared (the directory, "" when absent) lacks, and a
// command that is neither a bin/alignkit command nor matched by a readmeSkips rule.
func planReadme(root, shared string, cmds []readmeCommand) (steps []readmeStep, problems []string) {
	// made maps a path a command writes to that command's README line; skipped holds the skipped
	// commands' reasons by line.
	made := map[string]int{"bin/alignkit": 0, "runs/demo": 0} // `make demo`, the README's first step
	skipped := map[int]string{}
	for _, c := range cmds {
		var reason string
		outs, err := produces(root, c)
		if err != nil {
			problems = append(problems, err.Error())
		}
		needs := names(c)
		nCmd := len(needs) // needs[nCmd:] come from the config
		cfg := flagValue(c.words, "--config")
		if cfg != "" {
			// A job's config names its model and data: ../shared paths there are needed too.
			b, err := os.ReadFile(filepath.Join(root, cfg))
			if err != nil {
				problems = append(problems, fmt.Sprintf("README.md:%d: %v", c.line, err))
			}
			needs = append(needs, sharedPathRE.FindAllString(string(b), -1)...)
		}
		for i, p := range needs {
			namer := c.text
			if i >= nCmd {
				namer += "'s config " + cfg
			}
			if slices.Contains(outs, p) {
				continue // what the command writes, not what it needs
			}
			from, isMade := -1, false
			for q, line := range made {
				if under(p, q) {
					from, isMade = line, true
				}
			}
			switch {
			case isMade:
				if r, ok := skipped[from]; ok && reason == "" {
					reason = fmt.Sprintf("needs %s from the skipped command at README.md:%d (%s)", p, from, r)
				}
			case strings.HasPrefix(p, "../shared/"):
				if shared == "" {
					reason = "needs ../shared, which is absent"
				} else if _, err := os.Stat(filepath.Join(shared, strings.TrimPrefix(p, "../shared/"))); err != nil {
					problems = append(problems, fmt.Sprintf("README.md:%d: %s names %s, which ../shared does not hold", c.line, namer, p))
				}
			case !shipped(root, p):
				problems = append(problems, fmt.Sprintf("README.md:%d: %s names %s, which no clone ships and no earlier README command writes", c.line, c.text, p))
			}
		}
		for _, r := range readmeSkips {
			if r.match(c) {
				reason = r.reason
				break
			}
		}
		for _, p := range outs {
			made[p] = c.line
		}
		if reason == "" && c.words[0] != "bin/alignkit" {
			problems = append(problems, fmt.Sprintf("README.md:%d: %s: no rule runs or skips it; add one to readmeSkips or make it a bin/alignkit command", c.line, c.text))
			continue
		}
		if reason != "" {
			skipped[c.line] = reason
		}
		steps = append(steps, readmeStep{c, reason})
	}
	return steps, problems
}

// nonName matches what a subtest name should not hold (a slash would nest it).
var nonName = regexp.MustCompile(`[^A-Za-z0-9_.=-]+|bin/`)

// readmeCLI builds the binary the README's commands run, with this test binary's BLAS, unless
// $ALIGNKIT_CLI names one.
func readmeCLI(t *testing.T, root string) string {
	t.Helper()
	if p := os.Getenv("ALIGNKIT_CLI"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "alignkit")
	args := []string{"build", "-o", bin}
	env := os.Environ()
	if openblas {
		args = append(args, "-tags", "openblas")
		if !strings.Contains(os.Getenv("CGO_LDFLAGS"), "-lopenblas") {
			env = append(env, "CGO_LDFLAGS="+strings.TrimSpace(os.Getenv("CGO_LDFLAGS")+" -lopenblas"))
		}
	}
	cmd := exec.Command("go", append(args, "./cmd/alignkit")...)
	cmd.Dir, cmd.Env = root, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	return bin
}

// TestReadmeCommands runs every command of README.md's shell blocks that needs only shipped files
// (configs, ../shared when present, what an earlier command wrote), as written, in a scratch copy
// of the checkout (the shipped top-level entries linked, bin/alignkit the binary under test, an
// empty runs/, /tmp/ moved into the scratch directory), and asserts each exits 0. Every other
// command is skipped by a rule of readmeSkips, with its reason. Any command, run or skipped,
// that names a file which no clone ships and no earlier command writes fails the test.
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's commands with the alignkit binary")
	}
	root := sharedtest.RepoRoot(t)
	text, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := parseReadme(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) < 20 {
		t.Fatalf("only %d commands found in README.md's shell blocks: the parser no longer matches it", len(cmds))
	}
	sharedDir := filepath.Join(filepath.Dir(root), "shared")
	_, sharedErr := os.Stat(sharedDir)

	scratch := t.TempDir()
	work := filepath.Join(scratch, "alignkit")
	tmp := filepath.Join(scratch, "tmp")
	for _, d := range []string{filepath.Join(work, "bin"), filepath.Join(work, "runs"), tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "bin" && n != "runs" && n != ".git" {
			if err := os.Symlink(filepath.Join(root, n), filepath.Join(work, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sharedErr == nil {
		if err := os.Symlink(sharedDir, filepath.Join(scratch, "shared")); err != nil {
			t.Fatal(err)
		}
	}
	shared := ""
	if sharedErr == nil {
		shared = filepath.Join(scratch, "shared")
	}
	steps, problems := planReadme(root, shared, cmds)
	for _, p := range problems {
		t.Error(p)
	}
	var cli string // built on the first command that runs
	start := time.Now()
	for _, c := range steps {
		name := fmt.Sprintf("L%d_%s", c.line, nonName.ReplaceAllString(strings.Join(c.words[:min(3, len(c.words))], "_"), ""))
		if c.skip != "" {
			t.Run(name, func(t *testing.T) { t.Skipf("README.md:%d: %s: %s", c.line, c.text, c.skip) })
			continue
		}
		if cli == "" {
			cli = readmeCLI(t, root)
			if err := os.Symlink(cli, filepath.Join(work, "bin", "alignkit")); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(name, func(t *testing.T) {
			script := strings.Join(append(c.vars, strings.ReplaceAll(c.text, "/tmp/", tmp+"/")), "\n")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-euc", script)
			cmd.Dir = work
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("README.md:%d: %s: %v\n%s", c.line, c.text, err, out)
			}
		})
	}
	t.Logf("%d README commands in %v", len(cmds), time.Since(start).Round(time.Millisecond))
}
