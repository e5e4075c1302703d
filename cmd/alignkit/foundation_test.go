package main

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// TestLogitsProbeMatchesLlamaCpp runs `alignkit logits --json`, the probe every parity check uses, on
// the real stories260K model and compares it with llama.cpp's and float64 PyTorch's log-probs from
// ../shared/reference/stories260K_llamacpp.json: same token ids, every position's top-5 within 1e-4
// of llama.cpp, the whole last-position log-softmax within 1e-4 of PyTorch.
func TestLogitsProbeMatchesLlamaCpp(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K", "reference/stories260K_llamacpp.json")
	raw, err := os.ReadFile(filepath.Join(shared, "reference", "stories260K_llamacpp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases []struct {
			Text      string  `json:"text"`
			IDs       []int32 `json:"inputIds_sentencepiece"`
			Positions []struct {
				Top5 [][2]float64 `json:"top5_llamacpp"`
			} `json:"positions"`
			Last   []float64 `json:"lastPosition_logSoftmax_torch_f64"`
			Greedy []int32   `json:"greedy_llamacpp"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(shared, "models", "stories260K")
	for _, c := range ref.Cases {
		res := runCLI(t, "logits", "--model", model, "--text", c.Text, "--top", "5", "--json")
		if res.Code != 0 {
			t.Fatalf("%q: exit %d: %s", c.Text, res.Code, res.Stderr)
		}
		var got struct {
			IDs       []int32        `json:"ids"`
			Positions [][][2]float64 `json:"positions"`
			Last      []float64      `json:"last_logprobs"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.IDs) != len(c.IDs) {
			t.Fatalf("%q: ids %v, reference %v", c.Text, got.IDs, c.IDs)
		}
		for i := range c.IDs {
			if got.IDs[i] != c.IDs[i] {
				t.Fatalf("%q: ids %v, reference %v", c.Text, got.IDs, c.IDs)
			}
		}
		for p, pos := range c.Positions {
			for k, want := range pos.Top5 {
				have := got.Positions[p][k]
				if have[0] != want[0] || math.Abs(have[1]-want[1]) > 1e-4 {
					t.Errorf("%q position %d rank %d: got %v, llama.cpp %v", c.Text, p, k, have, want)
				}
			}
		}
		for v := range c.Last {
			if math.Abs(got.Last[v]-c.Last[v]) > 1e-4 {
				t.Fatalf("%q last position, token %d: got %v, torch f64 %v", c.Text, v, got.Last[v], c.Last[v])
			}
		}
	}
}

// TestFoundationBadInput checks that each kind of bad input to the model commands is one error
// line naming the file and the problem, with exit status 1 and no panic.
func TestFoundationBadInput(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K")
	src := filepath.Join(shared, "models", "stories260K")
	dir := t.TempDir()

	// modelDir copies stories260K's small files and lets the case replace one of them.
	modelDir := func(name string, edit func(dir string)) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		edit(d)
		return d
	}
	rewrite := func(file string, f func([]byte) []byte) func(string) {
		return func(d string) {
			p := filepath.Join(d, file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	setConfig := func(key, value string) func(string) {
		return rewrite("config.json", func(b []byte) []byte {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if value == "" {
				delete(m, key)
			} else {
				m[key] = json.RawMessage(value)
			}
			out, _ := json.Marshal(m)
			return out
		})
	}
	cases := []struct {
		name string
		dir  string
		args []string
		want string // a substring of the one error line; the line must also name the file
		file string
	}{
		{"truncated safetensors", modelDir("trunc", rewrite("model.safetensors", func(b []byte) []byte { return b[:len(b)/2] })), nil,
			"model.safetensors", "model.safetensors"},
		{"header length 2^60", modelDir("huge", rewrite("model.safetensors", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[:8], 1<<60)
			return b
		})), nil, "header length 1152921504606846976", "model.safetensors"},
		{"config missing field", modelDir("nofield", setConfig("hidden_size", "")), nil, `"hidden_size" is missing`, "config.json"},
		{"config wrong type", modelDir("wrongtype", setConfig("hidden_size", `"64"`)), nil, `hidden_size`, "config.json"},
		{"config unsupported feature", modelDir("ropescale", setConfig("rope_scaling", `{"type": "linear", "factor": 2.0}`)), nil,
			`rope_scaling = {"factor":2,"type":"linear"} is not supported`, "config.json"},
		{"tokenizer that is not one", modelDir("badtok", rewrite("tokenizer.model", func([]byte) []byte { return []byte("this is not a tokenizer") })), nil,
			"not a tokenizer", "tokenizer.model"},
		{"token id out of range", src, []string{"--tokens", "1,403,600"}, "token id 600 at position 2 is outside the vocabulary (512)", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"logits", "--model", tc.dir}, tc.args...)
			if tc.args == nil {
				args = append(args, "--text", "Once upon a time")
			}
			res := runCLI(t, args...)
			line := res.ErrorLine()
			if res.Code != 1 || strings.Count(strings.TrimSpace(res.Stderr), "\n") != 0 {
				t.Fatalf("want exit 1 and one line, got exit %d, stderr:\n%s", res.Code, res.Stderr)
			}
			if !strings.HasPrefix(line, "alignkit: ") || !strings.Contains(line, tc.want) || !strings.Contains(line, tc.file) {
				t.Fatalf("error line %q does not say %q about %q", line, tc.want, tc.file)
			}
			if strings.Contains(res.Stderr, "goroutine") || strings.Contains(res.Stderr, "panic") {
				t.Fatalf("panic trace: %s", res.Stderr)
			}
		})
	}
}

// TestInitExamples initialises each shipped architecture example and generates from it.
func TestInitExamples(t *testing.T) {
	sharedtest.Dir(t, "models/stories260K/tokenizer.model")
	for _, arch := range []string{"llama", "mistral", "mixtral"} {
		t.Run(arch, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), arch)
			res := runCLI(t, "init", "--config", "configs/init/tiny-"+arch+".yaml", "--out", out)
			if res.Code != 0 {
				t.Fatalf("init: %s", res.Stderr)
			}
			res = runCLI(t, "generate", "--model", out, "--prompt", "Once upon a time", "--max-new-tokens", "8", "--seed", "1", "--temperature", "1")
			if res.Code != 0 || !strings.HasPrefix(res.Stdout, "Once upon a time") {
				t.Fatalf("generate: exit %d, %q %s", res.Code, res.Stdout, res.Stderr)
			}
		})
	}
	// The newer families, around ../shared's byte-level BPE tokenizer directories.
	sharedtest.Dir(t, "tokenizers/llama3/tokenizer.json", "tokenizers/qwen3/tokenizer.json")
	for _, family := range []string{"llama3.2", "qwen2.5", "qwen3", "qwen3-moe"} {
		t.Run(family, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), family)
			res := runCLI(t, "init", "--config", "configs/init/tiny-"+family+".yaml", "--out", out, "--set", "num_hidden_layers=1")
			if res.Code != 0 {
				t.Fatalf("init: %s", res.Stderr)
			}
			for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("%s was not copied in: %v", f, err)
				}
			}
			res = runCLI(t, "generate", "--model", out, "--prompt", "Once upon a time", "--max-new-tokens", "4", "--seed", "1", "--temperature", "1")
			if res.Code != 0 || !strings.HasPrefix(res.Stdout, "Once upon a time") {
				t.Fatalf("generate: exit %d, %q %s", res.Code, res.Stdout, res.Stderr)
			}
		})
	}
	res := runCLI(t, "init", "--config", "configs/init/tiny-llama.yaml", "--out", t.TempDir(), "--set", "num_attention_heads=5")
	if res.Code != 1 || !strings.Contains(res.ErrorLine(), "num_attention_heads 5 is not a multiple of num_key_value_heads 4") {
		t.Fatalf("got exit %d: %s", res.Code, res.Stderr)
	}
}
