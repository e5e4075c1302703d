package rlhf_test

import (
	"context"
	"io"
	"reflect"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/rlhf"
)

// TestSampleAllRanks: 20 prompts (two chunks of 16 and the rest, once the too long are skipped) sampled over 2 in-process ranks give
// every rank exactly the samples and rewards of one process with the same seed; with two reward
// models, each model's scores and the choices too.
func TestSampleAllRanks(t *testing.T) {
	t.Run("one model", func(t *testing.T) {
		testSampleAllRanks(t, func() (rlhf.Scorer, error) { return rlhf.NewScorer(rewardFrom(t, testutil.Stories(t), 3), "") })
	})
	t.Run("two models", func(t *testing.T) {
		specs := twoModelConfig(t).RewardModels
		testSampleAllRanks(t, func() (rlhf.Scorer, error) { return rlhf.LoadRewardModels(specs, "") })
	})
}

func testSampleAllRanks(t *testing.T, scorer func() (rlhf.Scorer, error)) {
	cfg := sampleConfig(t)
	cfg.RewardModelNameOrPath = ""
	cfg.Data.MaxTrainSamples = 20
	cfg.NumSamplesPerPrompt = 2
	cfg.MaxNewTokens = 8
	prompts, _, err := cfg.LoadPromptSets()
	if err != nil {
		t.Fatal(err)
	}
	if len(prompts) != 20 {
		t.Fatalf("%d prompts, want 20", len(prompts))
	}
	sample := func(c dist.Comm) (*rlhf.Sampled, error) {
		gen, err := cfg.NewGenerator(context.Background(), cfg.ModelNameOrPath, io.Discard)
		if err != nil {
			return nil, err
		}
		sc, err := scorer()
		if err != nil {
			return nil, err
		}
		base := rlhf.Sampling{Temperature: 1, TopP: 1, TopK: 50, MaxNewTokens: cfg.MaxNewTokens, Seed: uint64(cfg.Seed)}
		return rlhf.SampleAllOn(context.Background(), c, gen, sc, prompts, cfg.NumSamplesPerPrompt, []float64{1}, base, io.Discard)
	}
	want, err := sample(dist.Single())
	if err != nil {
		t.Fatal(err)
	}
	comms := dist.Local(2)
	got := make([]*rlhf.Sampled, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { got[r], errs[r] = sample(c) })
	}
	wg.Wait()
	for r := range 2 {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		if !reflect.DeepEqual(got[r], want) {
			t.Errorf("rank %d: samples differ from one process's", r)
		}
	}
	if len(want.RewardModels) == 2 && (len(want.ModelRewards) != 2 || len(want.UsedSafety[0]) != len(want.Prompts)) {
		t.Errorf("two models: %d model score sets, %d choice rows for %d prompts", len(want.ModelRewards), len(want.UsedSafety[0]), len(want.Prompts))
	}
	// Not vacuous: the prompts that fit make two chunks, so rank 1 sampled some of them.
	if n := len(want.Prompts); n <= 16 || len(want.Completions[0]) != n {
		t.Errorf("%d prompts fit, %d sampled: want more than one chunk of 16", n, len(want.Completions[0]))
	}
}
