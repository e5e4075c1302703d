package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/reward"
)

// TestExportRoundTrips: `alignkit export` loses nothing. HF -> GGUF (f32) -> `export --model
// file.gguf --format hf` gives back every tensor bit for bit (the Q/K permutation is undone exactly,
// Mixtral's stacked experts are split again), with the same config and a tokenizer that encodes as the
// original does; HF -> sharded HF (--max-shard-size) gives the same tensors spread over several
// safetensors files with an index. The llama.cpp side of the export is checked in ./conformance.
func TestExportRoundTrips(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K/model.safetensors")
	stories := filepath.Join(shared, "models", "stories260K")
	dir := t.TempDir()
	mixtral := filepath.Join(dir, "mixtral")
	mustRun(t, "init", "--config", "configs/init/tiny-mixtral.yaml", "--out", mixtral, "--set", "initializer_range=0.2")

	const text = "Once upon a time, there was a little girl named Lily."
	for _, tc := range []struct {
		name   string
		src    string
		export func(t *testing.T, src, out string)
		shards int  // safetensors files expected in the result
		gguf   bool // went through a GGUF
	}{
		{"stories260K via gguf", stories, viaGGUF, 1, true},
		{"tiny-mixtral via gguf", mixtral, viaGGUF, 1, true},
		{"stories260K sharded hf", stories, func(t *testing.T, src, out string) {
			// stories260K holds 1.04 MB of float32: 300KB shards make 4 files.
			mustRun(t, "export", "--model", src, "--format", "hf", "--max-shard-size", "300KB", "--out", out)
		}, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "hf")
			tc.export(t, tc.src, out)
			want, got := openModel(t, tc.src), openModel(t, out)
			requireBitIdentical(t, got.Weights, want.Weights)
			wc := want.Weights.Config
			if tc.gguf && wc.NumLocalExperts > 0 {
				// A training setting with no llama.cpp key: GGUF -> HF brings back transformers' default.
				wc.RouterAuxLossCoef = 0.001
			}
			wantCfg, err := wc.MarshalHF()
			if err != nil {
				t.Fatal(err)
			}
			gotCfg, err := got.Weights.Config.MarshalHF()
			if err != nil {
				t.Fatal(err)
			}
			if string(gotCfg) != string(wantCfg) {
				t.Errorf("config.json:\n got %s\nwant %s", gotCfg, wantCfg)
			}
			if g, w := got.Tok.Encode(text, true), want.Tok.Encode(text, true); !slices.Equal(g, w) {
				t.Errorf("the exported tokenizer encodes %q as %v, the original as %v", text, g, w)
			}
			files, err := filepath.Glob(filepath.Join(out, "*.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != tc.shards {
				t.Errorf("%d safetensors files %v, want %d", len(files), files, tc.shards)
			}
			if _, err := os.Stat(filepath.Join(out, hf.IndexFile)); (err == nil) != (tc.shards > 1) {
				t.Errorf("%s present: %v, want %v", hf.IndexFile, err == nil, tc.shards > 1)
			}
		})
	}
}

// viaGGUF exports src to an f32 GGUF and that GGUF back to an HF directory at out.
func viaGGUF(t *testing.T, src, out string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "model.gguf")
	if r := mustRun(t, "export", "--model", src, "--format", "gguf", "--out", file); r.Stdout != fmt.Sprintf("wrote %s (gguf, f32)\n", file) {
		t.Errorf("export said %q", r.Stdout)
	}
	mustRun(t, "export", "--model", file, "--format", "hf", "--out", out)
}

// TestExportBadInput: every bad export, and a truncated GGUF given to generate or logits, fails with
// exit status 1 and exactly one error line, and leaves nothing at the output path nor any temporary
// file beside it.
func TestExportBadInput(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K/model.safetensors")
	stories := filepath.Join(shared, "models", "stories260K")
	dir := t.TempDir()

	// A reward model: stories260K with a score head instead of the LM head.
	rm, err := reward.FromCausalLM(openModel(t, stories), 1)
	if err != nil {
		t.Fatal(err)
	}
	rewardDir := filepath.Join(dir, "reward")
	if err := checkpoint.Save(rewardDir, rm, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}

	// Truncated copies of a good export: inside the header, and inside the tensor data.
	good := filepath.Join(dir, "good.gguf")
	mustRun(t, "export", "--model", stories, "--format", "gguf", "--out", good)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	headerCut, dataCut := filepath.Join(dir, "header-cut.gguf"), filepath.Join(dir, "data-cut.gguf")
	writeBytes(t, headerCut, raw[:100])
	cut := uint64(len(raw) / 2)
	writeBytes(t, dataCut, raw[:cut])
	// The first tensor (in header order) whose data runs past the cut is the one the error names.
	var dataCutErr string
	for _, ti := range f.Tensors {
		if lo, hi := f.DataOffset+ti.Offset, f.DataOffset+ti.Offset+ti.Bytes(); hi > cut {
			dataCutErr = fmt.Sprintf("alignkit: %s: truncated GGUF: tensor %q needs bytes %d to %d but the file is %d bytes", dataCut, ti.Name, lo, hi, cut)
			break
		}
	}

	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	outGGUF := filepath.Join(out, "model.gguf")
	missing := filepath.Join(dir, "missing", "model.gguf")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"reward model to gguf", []string{"export", "--model", rewardDir, "--format", "gguf", "--out", outGGUF},
			fmt.Sprintf("alignkit: --format gguf: %s is a reward model (LlamaForSequenceClassification: a score head instead of lm_head), which llama.cpp's llama architecture cannot run; export it with --format hf", rewardDir)},
		{"unknown gguf dtype", []string{"export", "--model", stories, "--format", "gguf", "--dtype", "q4_0", "--out", outGGUF},
			`alignkit: --dtype "q4_0" is not valid for --format gguf: want one of f32, f16, q8_0`},
		{"quantised hf dtype", []string{"export", "--model", stories, "--format", "hf", "--dtype", "q8_0", "--out", filepath.Join(out, "hf")},
			`alignkit: --dtype "q8_0" is not valid for --format hf: want one of f32, bf16, f16`},
		{"unknown format", []string{"export", "--model", stories, "--format", "onnx", "--out", outGGUF},
			`alignkit: --format "onnx": want gguf or hf`},
		{"output in a missing directory", []string{"export", "--model", stories, "--format", "gguf", "--out", missing},
			fmt.Sprintf("alignkit: --out %s: directory %s does not exist", missing, filepath.Dir(missing))},
		{"bad shard size", []string{"export", "--model", stories, "--format", "hf", "--max-shard-size", "lots", "--out", filepath.Join(out, "hf")},
			`alignkit: --max-shard-size: ` + shardSizeErr(t, "lots")},
		// 100 bytes hold the magic, version and tensor count (16 bytes); 47 tensor infos cannot fit
		// in the 84 left.
		{"logits on a truncated header", []string{"logits", "--model", headerCut, "--tokens", "1,403"},
			fmt.Sprintf("alignkit: %s: corrupt or truncated GGUF: the header: tensor count 47 is impossible with 84 bytes left in the 100-byte file", headerCut)},
		{"generate on a truncated header", []string{"generate", "--model", headerCut, "--prompt", "Once upon a time"},
			fmt.Sprintf("alignkit: %s: corrupt or truncated GGUF: the header: tensor count 47 is impossible with 84 bytes left in the 100-byte file", headerCut)},
		{"logits on truncated data", []string{"logits", "--model", dataCut, "--tokens", "1,403"}, dataCutErr},
		{"generate on truncated data", []string{"generate", "--model", dataCut, "--prompt", "Once upon a time"}, dataCutErr},
		{"export of truncated data", []string{"export", "--model", dataCut, "--format", "hf", "--out", filepath.Join(out, "hf")}, dataCutErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.args...)
			if r.Code != 1 || strings.Count(strings.TrimRight(r.Stderr, "\n"), "\n") != 0 {
				t.Fatalf("want exit 1 and one error line, got exit %d, stderr:\n%s", r.Code, r.Stderr)
			}
			if got := r.ErrorLine(); got != tc.want {
				t.Errorf("error line\n got %s\nwant %s", got, tc.want)
			}
			if r.Stdout != "" {
				t.Errorf("stdout %q, want nothing", r.Stdout)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("the failed command left %v in %s", left, out)
			}
		})
	}
}

// shardSizeErr is hf.ParseSize's own error for s, which --max-shard-size wraps.
func shardSizeErr(t *testing.T, s string) string {
	t.Helper()
	_, err := hf.ParseSize(s)
	if err == nil {
		t.Fatalf("hf.ParseSize(%q) accepted it", s)
	}
	return err.Error()
}

// mustRun runs the command line and fails the test unless it succeeds.
func mustRun(t *testing.T, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, args...)
	if r.Code != 0 {
		t.Fatalf("alignkit %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r
}

func openModel(t *testing.T, path string) *checkpoint.Model {
	t.Helper()
	m, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// requireBitIdentical fails unless got has exactly want's tensor names, shapes and float32 bits.
func requireBitIdentical(t *testing.T, got, want *model.Weights) {
	t.Helper()
	if g, w := got.Names(), want.Names(); !slices.Equal(g, w) {
		t.Fatalf("tensors %v, want %v", g, w)
	}
	for _, name := range want.Names() {
		g, w := got.Tensors[name], want.Tensors[name]
		if !slices.Equal(g.Shape, w.Shape) {
			t.Fatalf("%s: shape %v, want %v", name, g.Shape, w.Shape)
		}
		for i := range w.Data {
			if math.Float32bits(g.Data[i]) != math.Float32bits(w.Data[i]) {
				t.Fatalf("%s: element %d is %v, want %v", name, i, g.Data[i], w.Data[i])
			}
		}
	}
}
