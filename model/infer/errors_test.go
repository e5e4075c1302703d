package infer

import (
	"context"
	"testing"

	"github.com/alignkit/alignkit/model"
)

func TestBadInput(t *testing.T) {
	c := testConfig("LlamaForCausalLM")
	c.VocabSize = 512
	e, _ := randomEngine(t, c, 1)
	rc := testConfig("LlamaForSequenceClassification")
	reward, _ := randomEngine(t, rc, 2)
	ok := []int32{5, 6, 7}
	bad := []int32{1, 2, 3, 600, 4}
	session := func(limit int, prefill []int32) *Session {
		s := e.NewSession(limit)
		if _, err := s.Prefill(prefill, 0); err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"token out of range", func() error { _, err := e.Forward(bad, nil); return err },
			"token id 600 at position 3 is outside the vocabulary (512)"},
		{"negative token", func() error { _, err := e.Forward([]int32{-1}, nil); return err },
			"token id -1 at position 0 is outside the vocabulary (512)"},
		{"too long", func() error { _, err := e.Forward(make([]int32, 65), nil); return err },
			"sequence of 65 tokens is longer than max_position_embeddings (64)"},
		{"empty", func() error { _, err := e.Forward(nil, nil); return err }, "the token sequence is empty"},
		{"positions length", func() error { _, err := e.Forward(ok, []int32{0, 1}); return err },
			"positions has 2 entries for 3 tokens"},
		{"position range", func() error { _, err := e.Forward(ok, []int32{0, 64, 2}); return err },
			"position 64 at index 1 is outside 0..63 (max_position_embeddings)"},
		{"hidden token", func() error { _, err := e.Hidden(bad); return err },
			"token id 600 at position 3 is outside the vocabulary (512)"},
		{"prefill token", func() error { _, err := e.NewSession(0).Prefill(bad, 2); return err },
			"token id 600 at position 3 is outside the vocabulary (512)"},
		{"step token names the sequence position", func() error { _, err := session(0, ok).Step(600); return err },
			"token id 600 at position 3 is outside the vocabulary (512)"},
		{"session full", func() error { _, err := session(4, ok).Prefill([]int32{1, 2}, 0); return err },
			"session holds 3 tokens and 2 more would exceed its limit of 4"},
		{"empty prefill", func() error { _, err := e.NewSession(0).Prefill(nil, 0); return err }, "prefill: no tokens"},
		{"generate prompt", func() error {
			_, err := e.Generate(context.Background(), [][]int32{ok, bad}, Sampling{MaxNewTokens: 2})
			return err
		}, "prompt 1: token id 600 at position 3 is outside the vocabulary (512)"},
		{"generate empty prompt", func() error {
			_, err := e.Generate(context.Background(), [][]int32{{}}, Sampling{MaxNewTokens: 2})
			return err
		}, "prompt 0 is empty"},
		{"generate max tokens", func() error { _, err := e.Generate(context.Background(), [][]int32{ok}, Sampling{}); return err },
			"sampling: MaxNewTokens 0 must be positive"},
		{"generate top-p", func() error {
			_, err := e.Generate(context.Background(), [][]int32{ok}, Sampling{MaxNewTokens: 1, TopP: 1.5})
			return err
		}, "sampling: TopP 1.5 must be in [0, 1]"},
		{"generate stop id", func() error {
			_, err := e.Generate(context.Background(), [][]int32{ok}, Sampling{MaxNewTokens: 1, StopIDs: []int32{512}})
			return err
		}, "sampling: stop id 512 is outside the vocabulary (512)"},
		{"score on a causal LM", func() error { _, err := e.Score(ok); return err },
			"the model is not a reward model (it has no score.weight)"},
		{"forward on a reward model", func() error { _, err := reward.Forward(ok, nil); return err },
			"a reward model (score head) has no language-model head: use Score"},
		{"score batch token", func() error { _, err := reward.ScoreBatch([][]int32{ok, {70}}); return err },
			"sequence 1: token id 70 at position 0 is outside the vocabulary (61)"},
		{"nil weights", func() error { _, err := New(nil); return err }, "infer: weights are nil"},
		{"missing tensor", func() error {
			w := model.InitRandom(c, 1, 0.02)
			delete(w.Tensors, model.FinalNormKey)
			_, err := New(w)
			return err
		}, `infer: weights: tensor "model.norm.weight" is missing`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error %q\n          want %q", err, tc.want)
			}
		})
	}
	// A rejected step leaves the session as it was.
	s := session(0, ok)
	if _, err := s.Step(600); err == nil || s.Len() != 3 {
		t.Fatalf("after a rejected step: err %v, Len %d (want 3)", err, s.Len())
	}
	got, err := s.Step(8)
	if err != nil {
		t.Fatal(err)
	}
	want, err := e.Forward([]int32{5, 6, 7, 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, want[3]); d > 1e-5 {
		t.Errorf("step after a rejected one differs from Forward by %.3g", d)
	}
}
