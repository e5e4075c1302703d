package winrate_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/winrate"
)

// Model B may be a GGUF: stories260K's HF directory against its f32 GGUF, greedy, answers every
// prompt the same way (the same weights), so every judgement ties.
func TestHFAgainstGGUF(t *testing.T) {
	dir := t.TempDir()
	const n = 12
	prompts, rm := storiesSetup(t, dir, n)
	cfg := winrate.DefaultConfig()
	cfg.ModelA = testutil.StoriesDir(t)
	cfg.ModelB = filepath.Join(testutil.StoriesDir(t), "stories260K-f32.gguf")
	cfg.Data.DatasetName, cfg.RewardModelNameOrPath = prompts, rm
	cfg.MaxNewTokens, cfg.OutputDir = 20, t.TempDir()
	s, err := winrate.Evaluate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Judgements != n || s.Ties != n || s.Score != 0.5 {
		t.Errorf("summary %+v: want %d ties", s, n)
	}
}

// Model A may be a PEFT adapter directory and model B's answers a file: the adapter directory
// answers exactly as the adapted model in memory, whose greedy answers are model B's file, so
// every judgement ties; the adapter changes at least one answer from the base's (else the test
// would not tell the adapter was applied).
func TestAdapterDirAgainstAnswersFile(t *testing.T) {
	dir := t.TempDir()
	const n = 12
	prompts, rm := storiesSetup(t, dir, n)
	ck := testutil.Stories(t)
	r := 4
	ad, err := lora.New(lora.Config{LoraR: &r, LoraTargetModules: "all-linear"}, ck.Weights, 5)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for _, name := range ad.LayerNames() { // sorted: the same draws every run
		for i := range ad.Layers[name].B.Data {
			ad.Layers[name].B.Data[i] = float32(rng.NormFloat64() * 0.05)
		}
	}
	ck.Adapter = ad
	adDir := filepath.Join(dir, "adapter")
	if err := checkpoint.SaveAdapter(adDir, ck); err != nil {
		t.Fatal(err)
	}

	ps, err := rlhf.LoadPrompts(prompts, nil)
	if err != nil {
		t.Fatal(err)
	}
	answer := func(m *checkpoint.Model) []string {
		gen, err := rlhf.NewLocal(m, "")
		if err != nil {
			t.Fatal(err)
		}
		out, err := winrate.Generate(context.Background(), gen, ps[:n], rlhf.Sampling{MaxNewTokens: 20})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	adapted, base := answer(ck), answer(testutil.Stories(t))
	differ := 0
	var rows []map[string]any
	for i := range adapted {
		if adapted[i] != base[i] {
			differ++
		}
		rows = append(rows, map[string]any{"completion": adapted[i]})
	}
	if differ == 0 {
		t.Fatal("the adapter leaves every answer as the base gives it")
	}

	cfg := winrate.DefaultConfig()
	cfg.ModelA, cfg.AnswersB = adDir, writeJSONL(t, dir, "b.jsonl", rows)
	cfg.Data.DatasetName, cfg.RewardModelNameOrPath = prompts, rm
	cfg.MaxNewTokens, cfg.OutputDir = 20, t.TempDir()
	s, err := winrate.Evaluate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Judgements != n || s.Ties != n || s.Skipped != 1 {
		t.Errorf("summary %+v: want %d ties", s, n)
	}
	got, err := data.ReadRows(filepath.Join(cfg.OutputDir, winrate.JudgementsFile))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r.Fields["answer_a"] != adapted[i] {
			t.Errorf("row %d: answer_a %q, the adapted model answers %q", i, r.Fields["answer_a"], adapted[i])
		}
	}
}
