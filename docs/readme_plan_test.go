package docs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

func TestShellWords(t *testing.T) {
	for _, c := range []struct {
		in, code string
		words    []string
	}{
		{`bin/alignkit generate --prompt "Once upon a time" --max-new-tokens 40`, "",
			[]string{"bin/alignkit", "generate", "--prompt", "Once upon a time", "--max-new-tokens", "40"}},
		{`bin/alignkit sft --config c.yaml        # 11 s; eval_loss 3.26`, "bin/alignkit sft --config c.yaml        ",
			[]string{"bin/alignkit", "sft", "--config", "c.yaml"}},
		{`printf 'FROM ./sft.gguf\n' > runs/Modelfile && (cd runs && ollama create my-sft -f Modelfile)`, "",
			[]string{"printf", `FROM ./sft.gguf\n`, ">", "runs/Modelfile", "&&", "(", "cd", "runs", "&&", "ollama", "create", "my-sft", "-f", "Modelfile", ")"}},
		{`echo a\ b "x\"y" c#d`, "", []string{"echo", "a b", `x"y`, "c#d"}},
	} {
		words, code, err := shellWords(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if c.code == "" {
			c.code = c.in
		}
		if !reflect.DeepEqual(words, c.words) || code != c.code {
			t.Errorf("shellWords(%q) = %q, %q; want %q, %q", c.in, words, code, c.words, c.code)
		}
	}
	if _, _, err := shellWords(`echo "open`); err == nil || !strings.Contains(err.Error(), `unclosed "`) {
		t.Errorf("an unclosed quote gave %v", err)
	}
}

// TestReadmePlan: on a README written for the test, continuations join, $S expands, outputs of
// earlier commands (config output_dir, --out, a data writer's OUT) are known, a command needing a
// skipped command's output is skipped with that reason, a ../shared file named in a job's config
// counts as named by the job, and a stale path (runs/sft, which no
// command writes), a placeholder file and an unknown command are problems.
func TestReadmePlan(t *testing.T) {
	root := sharedtest.RepoRoot(t)
	readme := "text\n```sh\n" +
		"S=../shared/models/stories260K\n" +
		"make demo    # the demo\n" +
		"bin/alignkit generate --model $S \\\n  --prompt \"Once upon a time\"\n" +
		"bin/alignkit export --model $S --format gguf --out /tmp/s.gguf\n" +
		"bin/alignkit generate --model /tmp/s.gguf\n" +
		"bin/alignkit sft --config configs/sft/stories260k.yaml\n" +
		"bin/alignkit export --model runs/sft-stories260k --format gguf --out runs/sft.gguf\n" +
		"bin/alignkit export --model runs/sft --format gguf --out runs/x.gguf\n" +
		"bin/alignkit data convert ../shared/data/alpaca_en_demo.parquet /tmp/a.jsonl\n" +
		"bin/alignkit data inspect /tmp/a.jsonl\n" +
		"bin/alignkit reward score --model runs/demo/reward --input X.parquet --output Y.parquet\n" +
		"curl http://127.0.0.1:8080/health\n" +
		"```\n"
	cmds, err := parseReadme(readme)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 11 {
		t.Fatalf("%d commands, want 11: %+v", len(cmds), cmds)
	}
	if c := cmds[1]; c.line != 5 || !reflect.DeepEqual(c.words, []string{"bin/alignkit", "generate", "--model", "../shared/models/stories260K", "--prompt", "Once upon a time"}) {
		t.Errorf("continued command: line %d, words %q", c.line, c.words)
	}
	// A ../shared holding the model but not the data set.
	shared := t.TempDir()
	if err := os.MkdirAll(filepath.Join(shared, "models", "stories260K"), 0o755); err != nil {
		t.Fatal(err)
	}
	steps, problems := planReadme(root, shared, cmds)
	wantProblems := []string{
		"README.md:9: bin/alignkit sft --config configs/sft/stories260k.yaml's config configs/sft/stories260k.yaml names ../shared/data/no_robots_test_sft.parquet, which ../shared does not hold",
		"README.md:11: bin/alignkit export --model runs/sft --format gguf --out runs/x.gguf names runs/sft, which no clone ships and no earlier README command writes",
		"README.md:12: bin/alignkit data convert ../shared/data/alpaca_en_demo.parquet /tmp/a.jsonl names ../shared/data/alpaca_en_demo.parquet, which ../shared does not hold",
		"README.md:14: bin/alignkit reward score --model runs/demo/reward --input X.parquet --output Y.parquet names X.parquet, which no clone ships and no earlier README command writes",
		"README.md:15: curl http://127.0.0.1:8080/health: no rule runs or skips it; add one to readmeSkips or make it a bin/alignkit command",
	}
	if !reflect.DeepEqual(problems, wantProblems) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(wantProblems, "\n"))
	}
	// Without ../shared, the commands that need it are skipped, not failed.
	noShared, problems := planReadme(root, "", cmds)
	if len(problems) != 3 {
		t.Errorf("without ../shared: problems %q, want the 3 that do not involve it", problems)
	}
	if s := noShared[1].skip; s != "needs ../shared, which is absent" {
		t.Errorf("without ../shared, line 5's skip reason is %q", s)
	}
	// A config that names ../shared makes its job need it, though the command line does not.
	lora, err := parseReadme("```sh\nbin/alignkit sft --config configs/sft/stories260k-lora.yaml\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	if steps, _ := planReadme(root, "", lora); steps[0].skip != "needs ../shared, which is absent" {
		t.Errorf("without ../shared, the LoRA SFT's skip reason is %q", steps[0].skip)
	}
	if _, problems := planReadme(root, shared, lora); len(problems) != 1 || !strings.Contains(problems[0], "stories260k-lora.yaml names ../shared/data/no_robots_test_sft.parquet, which ../shared does not hold") {
		t.Errorf("a config's missing ../shared file: problems %q", problems)
	}
	skips := map[int]string{}
	for _, s := range steps {
		skips[s.line] = s.skip
	}
	for line, want := range map[int]string{
		4:  "runs make",
		5:  "",
		7:  "",
		8:  "",
		9:  "a full fine-tuning",
		10: "needs runs/sft-stories260k from the skipped command at README.md:9",
		13: "",
		14: "",
	} {
		got, ok := skips[line]
		if !ok {
			t.Errorf("line %d is not in the plan", line)
			continue
		}
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("line %d: skip reason %q, want one containing %q", line, got, want)
		}
	}
}
