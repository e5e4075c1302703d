package bench

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
)

func TestGenerateTiny(t *testing.T) {
	w := model.InitRandom(preset(t, "tiny").Config, 1, 0.02)
	res, err := Generate(context.Background(), GenerateOptions{Weights: w, Model: "tiny", PromptLen: 16, NewTokens: 8, Runs: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Three timed runs after one warm-up.
	if len(res.PrefillSeconds) != 3 || len(res.DecodeSeconds) != 3 {
		t.Fatalf("%d prefill and %d decode times, want 3 each", len(res.PrefillSeconds), len(res.DecodeSeconds))
	}
	if want := 8 / Median(res.DecodeSeconds); res.DecodeTokensPerSecond != want {
		t.Errorf("decode %.3f tokens/s, want %.3f", res.DecodeTokensPerSecond, want)
	}
	if want := 16 / Median(res.PrefillSeconds); res.PrefillTokensPerSecond != want {
		t.Errorf("prefill %.3f tokens/s, want %.3f", res.PrefillTokensPerSecond, want)
	}
	if res.Params != ParamCount(w.Config) {
		t.Errorf("params %d, want %d", res.Params, ParamCount(w.Config))
	}
}

func TestGenerateBadOptions(t *testing.T) {
	w := model.InitRandom(preset(t, "tiny").Config, 1, 0.02)
	tests := []struct {
		opts GenerateOptions
		want string
	}{
		{GenerateOptions{Weights: w, Model: "tiny", PromptLen: 0, NewTokens: 1, Runs: 1},
			"bench generate: prompt length 0, new tokens 1 and runs 1 must be positive"},
		{GenerateOptions{Weights: w, Model: "tiny", PromptLen: 2000, NewTokens: 100, Runs: 1},
			"bench generate: tiny: prompt 2000 + new tokens 100 exceed max_position_embeddings 2048"},
	}
	for _, tc := range tests {
		if _, err := Generate(context.Background(), tc.opts); err == nil || err.Error() != tc.want {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}

// TestGenerateTargets checks what `bench generate` times without --model: the preset, plus
// stories260K when the shared folder has it, and only the preset (with the reason) when it does not.
func TestGenerateTargets(t *testing.T) {
	targets, skipped, err := GenerateTargets("", "tiny", t.TempDir(), 1)
	if err != nil || len(targets) != 1 || targets[0].Name != "tiny" || skipped == "" {
		t.Fatalf("without shared: %d targets, skipped %q, err %v", len(targets), skipped, err)
	}
	shared := sharedDir(t)
	targets, skipped, err = GenerateTargets("", "tiny", shared, 1)
	if err != nil || skipped != "" {
		t.Fatalf("skipped %q, err %v", skipped, err)
	}
	var names []string
	for _, x := range targets {
		names = append(names, x.Name)
	}
	if !slices.Equal(names, []string{"tiny", "stories260K"}) || targets[1].Weights.Config.VocabSize != 512 {
		t.Fatalf("targets %v", names)
	}
}

// TestWriteModel writes a preset model with the byte tokenizer and reads it back: same weights,
// and text encodes to the byte tokenizer's pieces.
func TestWriteModel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m")
	p := preset(t, "tiny")
	m, err := WriteModel(p, 5, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := checkpoint.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range m.Weights.Tensors {
		if !slices.Equal(got.Weights.Tensors[name].Data, want.Data) {
			t.Fatalf("%s differs after the round trip", name)
		}
	}
	// "hi" gets the dummy prefix "▁" then one piece per character: ids 259 ("▁"), then 'h' and 'i'
	// at 260 + (c - '!').
	ids := got.Tok.Encode("hi", false)
	if want := []int32{259, 260 + 'h' - '!', 260 + 'i' - '!'}; !slices.Equal(ids, want) {
		t.Errorf("Encode(hi) = %v, want %v", ids, want)
	}
	if _, err := os.Stat(filepath.Join(out, "tokenizer.model")); err != nil {
		t.Error(err)
	}
}
