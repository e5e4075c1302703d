package conformance

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/model/tokenizer"
)

// stories are short texts in the style of TinyStories, what stories260K was trained on, so its
// predictions are confident and the top-1 comparison of quantised exports is meaningful. Each is over
// 64 tokens with stories260K's 512-piece vocabulary.
var stories = []string{
	"Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to get it, but a small dog took the ball first. Lily was sad, but then the dog brought the ball back to her.",
	"Tom had a toy car that he liked very much. Every morning he took the car to the garden and made it go fast on the path. One day the car hit a rock and a wheel came off. Tom cried, so his dad helped him fix the wheel with some glue. Then Tom said thank you and they played together.",
	"There was a big bear who lived in the forest. The bear was hungry, so he went to look for honey. He found a tree with bees and a lot of honey inside. The bees were angry and buzzed around his head. The bear ran to the river and jumped in the water. He learned to be careful.",
	"Sue and her mom went to the store to buy some food. Sue wanted a cookie, but mom said they needed to buy milk and bread first. Sue was a good girl and helped her mom carry the bag. When they got home, mom gave Sue a big cookie and a hug. Sue was very happy and smiled.",
	"One sunny day, a little bird sat on a branch and sang a song. A cat saw the bird and wanted to play. The cat climbed up the tree, but the branch was too thin. The bird flew down and said, \"Do not be scared, I will help you.\" The cat and the bird became good friends.",
}

// prompts start the greedy continuations compared between `alignkit generate` and llama.cpp.
var prompts = []string{"Once upon a time", "The little dog was"}

// TestConformanceStories260K: `alignkit export --format gguf` on the stories260K HF checkpoint writes
// exactly the tensor bytes of llama.cpp's own conversion (../shared's stories260K-f32.gguf, made by
// convert_hf_to_gguf.py), and llama.cpp running the export gives alignkit's log-probs within 1e-4 at
// every position of 64 tokens of text, and the same greedy continuations.
func TestConformanceStories260K(t *testing.T) {
	t.Parallel()
	requireLlamaCpp(t)
	src := filepath.Join(sharedtest.Dir(t, "models/stories260K/model.safetensors", "models/stories260K/stories260K-f32.gguf"), "models", "stories260K")
	out := filepath.Join(t.TempDir(), "stories260K.gguf")
	cli(t, "export", "--model", src, "--format", "gguf", "--out", out)

	same, n := sameTensorBytes(t, out, filepath.Join(src, "stories260K-f32.gguf"))
	report(t, "export: %d/%d tensors byte-identical to llama.cpp's stories260K-f32.gguf", same, n)

	seqs := [][]int32{firstN(t, tokenize(t, src, stories[0]), 64)}
	d, g := compareWithGreedy(t, src, out, seqs, 40)
	report(t, "f32, 64 tokens: %s; greedy: %s", d, g)
	if d.Max > tol || d.Skipped > 0 {
		t.Errorf("llama.cpp differs from alignkit logits: %s; tolerance %g", d, tol)
	}
}

// TestConformanceRandomModels exports random models from `alignkit init` (the shipped tiny configs,
// with a larger initializer_range so that logits are far from flat and greedy decoding is never
// decided by a near tie) and compares llama.cpp with alignkit on each: 1e-4 on every log-prob and the
// same greedy continuations. Each shape exercises a different part of the export: separate K/V heads
// and an untied output.weight, 2 KV heads shared by 4 query heads each, Mistral (whose window
// llama.cpp ignores, so the sequences stay inside it), and Mixtral's router and stacked experts.
func TestConformanceRandomModels(t *testing.T) {
	t.Parallel()
	requireLlamaCpp(t)
	sharedtest.Dir(t, "models/stories260K/tokenizer.model")
	for _, tc := range []struct {
		name, config string
		sets         []string
		maxLen       int // tokens per sequence, greedy continuation included
	}{
		{"mha-untied", "configs/init/tiny-llama.yaml", []string{"num_key_value_heads=8", "tie_word_embeddings=false", "seed=11"}, 96},
		{"gqa-2kv", "configs/init/tiny-llama.yaml", []string{"num_key_value_heads=2", "seed=12"}, 96},
		{"mistral-in-window", "configs/init/tiny-mistral.yaml", []string{"seed=13"}, 64}, // sliding_window 64
		{"mixtral-4x-top2", "configs/init/tiny-mixtral.yaml", []string{"seed=14"}, 96},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "hf")
			args := []string{"init", "--config", tc.config, "--out", src, "--set", "initializer_range=0.2"}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			t.Log(strings.TrimSpace(cli(t, args...)))
			out := filepath.Join(dir, tc.name+".gguf")
			cli(t, "export", "--model", src, "--format", "gguf", "--out", out)

			const greedy = 24
			var seqs [][]int32
			for _, s := range stories[:3] {
				seqs = append(seqs, firstN(t, tokenize(t, src, s), tc.maxLen-greedy))
			}
			d, g := compareWithGreedy(t, src, out, seqs, greedy)
			report(t, "f32: %s; greedy: %s", d, g)
			if d.Max > tol {
				t.Errorf("llama.cpp differs from alignkit logits: %s; tolerance %g", d, tol)
			}
		})
	}
}

// TestConformanceSFT fine-tunes stories260K for a few steps with `alignkit sft` (the shipped config on
// ../shared's no_robots data), exports the result and compares it as the others. The trained model
// must differ from the original, or this would only repeat TestConformanceStories260K.
func TestConformanceSFT(t *testing.T) {
	t.Parallel()
	requireLlamaCpp(t)
	shared := sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/no_robots_test_sft.parquet")
	dir := t.TempDir()
	src := filepath.Join(dir, "sft")
	cli(t, "sft", "--config", "configs/sft/stories260k.yaml", "--set", "output_dir="+src, "--set", "max_steps=8",
		"--set", "max_length=128", "--set", "eval_split=0", "--set", "save_steps=1000", "--set", "report_plots=false")
	out := filepath.Join(dir, "sft.gguf")
	cli(t, "export", "--model", src, "--format", "gguf", "--out", out)

	seqs := [][]int32{firstN(t, tokenize(t, src, stories[0]), 64), firstN(t, tokenize(t, src, stories[1]), 64)}
	base := logProbs(t, filepath.Join(shared, "models", "stories260K"), seqs[0])
	tuned := logProbs(t, src, seqs[0])
	var moved float64
	for i := range base {
		for id := range base[i] {
			moved = max(moved, math.Abs(base[i][id]-tuned[i][id]))
		}
	}
	if moved < 0.05 {
		t.Fatalf("8 SFT steps moved log-probs by only %.3g: the test would not check a trained model", moved)
	}
	d, g := compareWithGreedy(t, src, out, seqs, 32)
	report(t, "sft moved log-probs by up to %.3g; f32: %s; greedy: %s", moved, d, g)
	if d.Max > tol || d.Skipped > 0 {
		t.Errorf("llama.cpp differs from alignkit logits: %s; tolerance %g", d, tol)
	}
}

// TestConformanceQuantized exports stories260K as f16 and q8_0 and compares llama.cpp on them with
// alignkit's f32 forward pass on the original checkpoint over all five texts (320 positions). The
// most likely next token must agree at >= 99% of positions. The log-prob bounds are the measured
// maxima (0.025 for f16, 0.54 for q8_0, both on unlikely tokens) with margin: f16 rounds each weight
// by up to 2^-11 relative; q8_0 rounds to 1/127 of each 32-block's largest value, and llama.cpp also
// rounds the activations to q8_0 for its q8_0 dot products, which on a 64-wide model with outlier
// weights moves log-probs by a few tenths.
func TestConformanceQuantized(t *testing.T) {
	t.Parallel()
	requireLlamaCpp(t)
	src := filepath.Join(sharedtest.Dir(t, "models/stories260K/model.safetensors"), "models", "stories260K")
	var seqs [][]int32
	var ours [][][]float64
	for _, s := range stories {
		ids := firstN(t, tokenize(t, src, s), 64)
		seqs = append(seqs, ids)
		ours = append(ours, logProbs(t, src, ids))
	}
	for _, tc := range []struct {
		dtype  string
		bound  float64
		wantQ8 bool // q8_0 matrices in the file, not an f16 fallback
	}{
		{"f16", 0.05, false},
		{"q8_0", 1.0, true},
	} {
		t.Run(tc.dtype, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "stories260K-"+tc.dtype+".gguf")
			cli(t, "export", "--model", src, "--format", "gguf", "--dtype", tc.dtype, "--out", out)
			types := tensorTypes(t, out)
			report(t, "tensor types: %s", types)
			if strings.Contains(types, "Q8_0") != tc.wantQ8 {
				t.Errorf("%s export has tensor types %s", tc.dtype, types)
			}
			runs := llamaCpp(t, out, seqs, 0)
			var d diff
			for i := range seqs {
				d.add(i, ours[i], runs[i])
			}
			report(t, "%s vs alignkit f32: %s", tc.dtype, d)
			if float64(d.Top1) < 0.99*float64(d.Top1Pos) {
				t.Errorf("%s: top-1 agrees at only %d/%d positions, want >= 99%%", tc.dtype, d.Top1, d.Top1Pos)
			}
			if d.Max > tc.bound {
				t.Errorf("%s: max |Δ log p| %.3g exceeds the measured bound %g", tc.dtype, d.Max, tc.bound)
			}
		})
	}
}

// compareWithGreedy runs llama.cpp on the GGUF for the token lists and for every prompt, with a greedy
// continuation of n tokens, and compares it with alignkit on src: the log-probs of every list, and for
// every prompt `alignkit generate --temperature 0`'s text and alignkit's argmax along llama.cpp's greedy
// path. It returns the log-prob comparison and a description of the greedy checks.
func compareWithGreedy(t *testing.T, src, ggufPath string, seqs [][]int32, n int) (diff, string) {
	t.Helper()
	var promptIDs [][]int32
	for _, p := range prompts {
		promptIDs = append(promptIDs, tokenize(t, src, p))
	}
	runs := llamaCpp(t, ggufPath, append(slices.Clone(seqs), promptIDs...), n)
	d := compareAll(t, src, seqs, runs)

	tok, err := tokenizer.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	minMargin := 1e9
	for i, p := range prompts {
		ids, greedy := promptIDs[i], runs[len(seqs)+i].Greedy
		// alignkit's argmax at every step of llama.cpp's greedy path (EOS or not) is llama.cpp's pick.
		rows := logProbs(t, src, append(slices.Clone(ids), greedy[:n-1]...))
		for k, want := range greedy {
			row := rows[len(ids)-1+k]
			if got := argmax(row); got != int(want) {
				t.Errorf("prompt %q, greedy step %d: llama.cpp picks %d, alignkit's argmax is %d", p, k, want, got)
				break
			}
			minMargin = min(minMargin, margin(row))
		}
		// generate stops after an EOS; llama.cpp's loop does not, so its ids are cut there.
		cut := greedy
		for k, id := range greedy {
			if slices.Contains(tok.EOSIDs(), id) {
				cut = greedy[:k+1]
				break
			}
		}
		want := tok.Decode(append(slices.Clone(ids), cut...))
		got := strings.TrimSuffix(cli(t, "generate", "--model", src, "--prompt", p, "--max-new-tokens", fmt.Sprint(n), "--temperature", "0"), "\n")
		if got != want {
			t.Errorf("prompt %q: alignkit generate says\n  %q\nllama.cpp's greedy ids %v decode to\n  %q", p, got, greedy, want)
		}
	}
	// A step whose two best log-probs are within the tolerance could go either way in a correct
	// export: the comparison would then say nothing, so the test insists on a clear margin.
	if minMargin < 10*tol {
		t.Errorf("a greedy step is a near tie (top-1 minus top-2 log-prob %.3g): choose another seed", minMargin)
	}
	return d, fmt.Sprintf("%d prompts × %d tokens identical (smallest top-1 margin %.3g)", len(prompts), n, minMargin)
}

// margin is the log-prob gap between the two most likely tokens.
func margin(row []float64) float64 {
	top := argmax(row)
	second := -1e300
	for id, v := range row {
		if id != top && v > second {
			second = v
		}
	}
	return row[top] - second
}

// sameTensorBytes checks that two GGUFs hold the same tensors (names, dims, types) with identical
// data bytes, and returns how many are identical of how many.
func sameTensorBytes(t *testing.T, gotPath, wantPath string) (same, total int) {
	t.Helper()
	got, want := openGGUF(t, gotPath), openGGUF(t, wantPath)
	gotRaw, err := os.ReadFile(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	wantRaw, err := os.ReadFile(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("%d tensors, llama.cpp's file has %d", len(got.Tensors), len(want.Tensors))
	}
	for _, w := range want.Tensors {
		g, ok := got.Tensor(w.Name)
		if !ok {
			t.Fatalf("tensor %s is missing", w.Name)
		}
		if fmt.Sprint(g.Dims) != fmt.Sprint(w.Dims) || g.Type != w.Type {
			t.Fatalf("tensor %s: dims %v type %s, llama.cpp has %v %s", w.Name, g.Dims, g.Type, w.Dims, w.Type)
		}
		gb := gotRaw[got.DataOffset+g.Offset:][:g.Bytes()]
		wb := wantRaw[want.DataOffset+w.Offset:][:w.Bytes()]
		if i := firstDiff(gb, wb); i >= 0 {
			t.Errorf("tensor %s: byte %d differs from llama.cpp's (%#02x vs %#02x)", w.Name, i, gb[i], wb[i])
			continue
		}
		same++
	}
	return same, len(want.Tensors)
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func openGGUF(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tensorTypes counts a GGUF's tensor types, e.g. "F32×11 Q8_0×36".
func tensorTypes(t *testing.T, path string) string {
	t.Helper()
	count := map[string]int{}
	for _, ti := range openGGUF(t, path).Tensors {
		count[ti.Type.String()]++
	}
	var parts []string
	for k, v := range count {
		parts = append(parts, fmt.Sprintf("%s×%d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}
