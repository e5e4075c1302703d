package infer

import (
	"math"
	"sync"
	"testing"
)

// TestHiddenFeedsTheHead ties Hidden to Forward: logits[t] = head · hidden[t].
func TestHiddenFeedsTheHead(t *testing.T) {
	e, w := randomEngine(t, testConfig("MixtralForCausalLM"), 5)
	toks := randomTokens(9, e.V, 1)
	hidden, err := e.Hidden(toks)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := e.Forward(toks, nil)
	if err != nil {
		t.Fatal(err)
	}
	head := w.OutputHead().Data
	for p := range toks {
		for v := 0; v < e.V; v++ {
			var s float64
			for d := 0; d < e.D; d++ {
				s += float64(head[v*e.D+d]) * float64(hidden[p][d])
			}
			if math.Abs(s-float64(logits[p][v])) > 1e-5 {
				t.Fatalf("position %d id %d: head·hidden %.7f, logit %.7f", p, v, s, logits[p][v])
			}
		}
	}
}

// TestScore checks the reward head: score.weight · h_last for each sequence, whether scored alone or
// packed with others (sequences long enough to need several packed passes included).
func TestScore(t *testing.T) {
	c := testConfig("LlamaForSequenceClassification")
	c.MaxPositionEmbeddings = 1024
	e, w := randomEngine(t, c, 8)
	seqs := [][]int32{randomTokens(7, e.V, 1), randomTokens(1, e.V, 2), randomTokens(900, e.V, 3),
		randomTokens(900, e.V, 4), randomTokens(33, e.V, 5), randomTokens(900, e.V, 6)}
	batch, err := e.ScoreBatch(seqs)
	if err != nil {
		t.Fatal(err)
	}
	scoreW := w.Tensors["score.weight"].Data
	var spread float64
	for i, s := range seqs {
		h, err := e.Hidden(s)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for d, v := range h[len(h)-1] {
			want += float64(scoreW[d]) * float64(v)
		}
		alone, err := e.Score(s)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(alone)-want) > 1e-5 || math.Abs(float64(batch[i])-want) > 1e-5 {
			t.Errorf("sequence %d: Score %.7f, ScoreBatch %.7f, score.weight·h_last %.7f", i, alone, batch[i], want)
		}
		spread = math.Max(spread, math.Abs(want-float64(batch[0])))
	}
	if spread < 1e-3 {
		t.Errorf("all scores are equal (%v): the head is not reading the sequence", batch)
	}
}

// TestConcurrentUse runs Forward and independent Sessions of one Engine from several goroutines (run with
// -race); each must give the single-threaded answer.
func TestConcurrentUse(t *testing.T) {
	e, _ := randomEngine(t, testConfig("MistralForCausalLM"), 4)
	toks := randomTokens(30, e.V, 2)
	want, err := e.Forward(toks, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g%2 == 0 {
				got, err := e.Forward(toks, nil)
				if err != nil || maxAbsDiff(got[29], want[29]) != 0 {
					errs <- "concurrent Forward differs"
				}
				return
			}
			s := e.NewSession(0)
			got, err := s.Prefill(toks, 7)
			if err != nil || maxAbsDiff(got, want[29]) > 1e-5 {
				errs <- "concurrent session differs"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}
