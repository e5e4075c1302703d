package rlhf_test

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/rlhf"
)

// lengthScorer scores a completion by its length: enough to check that rewards stay with their
// prompts after skipping.
type lengthScorer struct{}

func (lengthScorer) Score(_ context.Context, _ rlhf.Prompt, cs []string) ([]float64, error) {
	out := make([]float64, len(cs))
	for i, c := range cs {
		out[i] = float64(len(c))
	}
	return out, nil
}

// TestOpenAISkipsPromptsTooLong: a prompt longer than the served model's context (the server
// answers 400 "no room to generate within the context length 512") is skipped and counted, as the
// local backend skips prompts that leave no room for max_new_tokens, instead of aborting the run;
// the other prompts get exactly the samples they get without it.
func TestOpenAISkipsPromptsTooLong(t *testing.T) {
	base, _, _ := newServe(t, "", nil)
	o, err := rlhf.NewOpenAI(context.Background(), rlhf.OpenAIConfig{BaseURL: base + "/v1", Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	long := rlhf.Prompt{Text: strings.Repeat("Once upon a time there was a dog. ", 120), Source: "test", Row: 9}
	prompts := []rlhf.Prompt{storyPrompts[0], long, storyPrompts[1]}
	const k = 2
	temps := []float64{0.7, 1.0}

	// Generate keeps its contract: the rejection is the error.
	if _, err := o.Generate(context.Background(), prompts, k, sampling); err == nil || !strings.Contains(err.Error(), "no room to generate within the context length 512") {
		t.Fatalf("Generate: %v", err)
	}

	var log bytes.Buffer
	got, err := rlhf.SampleAll(context.Background(), o, lengthScorer{}, prompts, k, temps, sampling, &log)
	if err != nil {
		t.Fatal(err)
	}
	want, err := rlhf.SampleAll(context.Background(), o, lengthScorer{}, []rlhf.Prompt{storyPrompts[0], storyPrompts[1]}, k, temps, sampling, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Prompts, want.Prompts) || len(got.Completions) != 2 {
		t.Fatalf("prompts %+v", got.Prompts)
	}
	// Prompt 2 keeps its own seeds (Seed + 2·K), so only prompt 0's samples equal the run without
	// the long prompt; every kept prompt has K scored samples at each temperature.
	for ti := range temps {
		if !reflect.DeepEqual(got.Completions[ti][0], want.Completions[ti][0]) {
			t.Errorf("temperature %g: prompt 0 %q, want %q", temps[ti], got.Completions[ti][0], want.Completions[ti][0])
		}
		for i := range got.Prompts {
			if len(got.Completions[ti][i]) != k || len(got.Rewards[ti][i]) != k || got.Rewards[ti][i][0] != float64(len(got.Completions[ti][i][0])) {
				t.Errorf("temperature %g prompt %d: %q %v", temps[ti], i, got.Completions[ti][i], got.Rewards[ti][i])
			}
		}
	}
	if !strings.Contains(log.String(), "\nskipped 1 of 3 prompts the server rejected as longer than its context (first: test: row 9: ") ||
		!strings.Contains(log.String(), "no room to generate within the context length 512") {
		t.Errorf("log:\n%s", log.String())
	}

	// Every prompt too long: one error line, as the local backend's.
	_, err = rlhf.SampleAll(context.Background(), o, lengthScorer{}, []rlhf.Prompt{long}, k, temps, sampling, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "test: the server rejected every prompt as longer than its context: test: row 9: ") {
		t.Errorf("all too long: %v", err)
	}
}
