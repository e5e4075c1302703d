package reward

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"

	"github.com/parquet-go/parquet-go"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
)

// TestScorerMatchesTrainingGraph: the scorer (inference engine, packed sequences) gives the reward
// the training graph gives the same pair's chosen row, for text and conversational items, and
// Score, ScoreText and ScoreItems agree.
func TestScorerMatchesTrainingGraph(t *testing.T) {
	rm, dir := storiesRM(t, 11)
	s, err := NewScorer(dir, WithBatchSize(2), WithChatTemplate("llama-2"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var prompts, responses []string
	for _, tr := range storyTriples {
		prompts, responses = append(prompts, tr[0]), append(responses, tr[1])
	}
	got, err := s.ScoreText(ctx, prompts, responses)
	if err != nil {
		t.Fatal(err)
	}
	b := pairBatch(t, rm, nil, storyTriples...)
	want, err := lm.New(rm, 0).Rewards(&b.Batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-4 {
			t.Errorf("text item %d: scorer %.7f, training graph %.7f", i, got[i], want[i])
		}
	}

	// Conversations: the graph sees data's tokenization of a pair with the same template.
	convs := [][]data.Message{
		{{Role: "user", Content: "Tell me about the cat."}, {Role: "assistant", Content: "The cat sat on the mat."}},
		{{Role: "system", Content: "Be kind."}, {Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello! How are you?"}},
		{{Role: "user", Content: "Once"}, {Role: "assistant", Content: "upon"}, {Role: "user", Content: "a"}, {Role: "assistant", Content: "time"}},
	}
	got, err = s.Score(ctx, convs)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := lm.ChatTokenizer(rm.Tok, "llama-2")
	if err != nil {
		t.Fatal(err)
	}
	var exs []data.PairExample
	for i, c := range convs {
		k := len(c) - 1
		ex, err := tok.PairExample(&data.Pair{Source: "t", Row: i, Conversational: true, PromptMessages: c[:k],
			ChosenMessages: c[k:], RejectedMessages: []data.Message{{Role: "assistant", Content: "no"}}})
		if err != nil {
			t.Fatal(err)
		}
		exs = append(exs, ex)
	}
	pb, err := data.NewPairBatcher(exs, rm.Tok.EOS(), data.PairBatchConfig{BatchSize: 3, MaxLength: 512, PadID: 0})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := pb.Pairs([]int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	want, err = lm.New(rm, 0).Rewards(&cb.Batch)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]Item, len(convs))
	for i, c := range convs {
		k := len(c) - 1
		items[i] = Item{PromptMessages: c[:k], ResponseMessages: c[k:]}
	}
	viaItems, err := s.ScoreItems(ctx, items, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-4 || got[i] != viaItems[i] {
			t.Errorf("conversation %d: Score %.7f, ScoreItems %.7f, training graph %.7f", i, got[i], viaItems[i], want[i])
		}
	}

	for _, tc := range []struct {
		convs [][]data.Message
		want  string
	}{
		{[][]data.Message{{{Role: "user", Content: "hi"}}}, "conversation 0: the last message is from the user, want the assistant's response"},
		{[][]data.Message{convs[0], {{Role: "assistant", Content: "hi"}}}, "conversation 1: no prompt before the assistant's response"},
	} {
		if _, err := s.Score(ctx, tc.convs); errText(err) != tc.want {
			t.Errorf("error %q, want %q", errText(err), tc.want)
		}
	}
	if _, err := s.ScoreText(ctx, []string{"a"}, nil); errText(err) != "1 prompts and 0 responses: want as many of each" {
		t.Errorf("error %q", errText(err))
	}
}

// TestScoreFileRoundTrip scores a real conversational Parquet file (nested message lists, extra
// columns) and reads the output back: same rows in the same order with every input value intact,
// the columns in the input's order plus reward, and rewards equal to the in-memory scores.
func TestScoreFileRoundTrip(t *testing.T) {
	in := sharedData(t, "no_robots_test_sft.parquet")
	_, dir := storiesRM(t, 5)
	s, err := NewScorer(dir, WithChatTemplate("llama-2"), WithBatchSize(32), WithMaxLength(64))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "scored.parquet")
	var progress strings.Builder
	res, err := ScoreFile(context.Background(), s, FileConfig{Input: in, Output: out, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	back, err := data.ReadRows(out)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := data.ReadRows(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(orig) || res.Rows != len(orig) {
		t.Fatalf("%d rows back, %d in, result %d", len(back), len(orig), res.Rows)
	}
	var convs [][]data.Message
	for i := range orig {
		r, ok := back[i].Fields["reward"].(float64)
		if !ok || r != res.Rewards[i] {
			t.Fatalf("row %d: reward %v, scored %v", i, back[i].Fields["reward"], res.Rewards[i])
		}
		delete(back[i].Fields, "reward")
		if !reflect.DeepEqual(back[i].Fields, orig[i].Fields) {
			t.Fatalf("row %d changed:\n%v\n%v", i, back[i].Fields, orig[i].Fields)
		}
		var c []data.Message
		for _, m := range orig[i].Fields["messages"].([]any) {
			mm := m.(map[string]any)
			c = append(c, data.Message{Role: mm["role"].(string), Content: mm["content"].(string)})
		}
		convs = append(convs, c)
	}
	mem, err := s.Score(context.Background(), convs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mem, res.Rewards) {
		t.Error("file rewards differ from in-memory scores")
	}
	if !strings.Contains(progress.String(), "scoring") {
		t.Errorf("no progress bar: %q", progress.String())
	}
	cols := func(path string) []string {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, fl := range pf.Schema().Fields() {
			names = append(names, fl.Name())
		}
		return names
	}
	if got, want := cols(out), append(cols(in), "reward"); !slices.Equal(got, want) {
		t.Errorf("columns %v, want %v", got, want)
	}
}

// TestScorerTokensAreTrainingTokens: on real preference data the scorer's sequence for (prompt,
// chosen) is token for token the chosen row the trainer's pair batcher builds, truncation included
// (max length 96 cuts many of these prompts from the left and some answers from the right).
func TestScorerTokensAreTrainingTokens(t *testing.T) {
	_, dir := storiesRM(t, 5)
	s, err := NewScorer(dir, WithChatTemplate("llama-2"), WithMaxLength(96), WithMaxPromptLength(40))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"orca_dpo_pairs_validation_chat.parquet", "hh_rlhf_harmless_base_test.parquet"} {
		set, err := LoadPairs(sharedData(t, name), nil, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		pairs := set.Pairs[:60]
		exs, err := s.tok.PairExamples(context.Background(), pairs)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := data.NewPairBatcher(exs, s.ck.Tok.EOS(), data.PairBatchConfig{BatchSize: 1, MaxLength: 96, MaxPromptLength: 40, PadID: 0})
		if err != nil {
			t.Fatal(err)
		}
		if st := pb.Stats(); st.PromptTruncated == 0 || st.AnswerTruncated == 0 {
			t.Fatalf("%s: no truncation to test (%s)", name, st)
		}
		for i, p := range pairs {
			it := Item{Prompt: p.Prompt, Response: p.Chosen, PromptMessages: p.PromptMessages, ResponseMessages: p.ChosenMessages}
			got, err := s.Tokens(it)
			if err != nil {
				t.Fatal(err)
			}
			b, err := pb.Pairs([]int{i})
			if err != nil {
				t.Fatal(err)
			}
			want := b.Tokens[:b.LastIndex[0]+1]
			if !slices.Equal(got, want) {
				t.Fatalf("%s pair %d: scorer tokens\n%v\ntraining row\n%v", name, i, got, want)
			}
		}
	}
}

// TestScoreFileJSONLAndReplace scores a JSON Lines file of prompt/response strings, then scores the
// output again as Parquet is not involved: the second run replaces the reward column rather than
// adding a second one, and the rewards are those of ScoreText.
func TestScoreFileJSONLAndReplace(t *testing.T) {
	_, dir := storiesRM(t, 9)
	s, err := NewScorer(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	var prompts, responses []string
	for i, tr := range storyTriples {
		rows = append(rows, map[string]any{"prompt": tr[0], "response": tr[1], "id": i})
		prompts, responses = append(prompts, tr[0]), append(responses, tr[1])
	}
	in := testutil.WriteJSONL(t, "in.jsonl", rows...)
	out := filepath.Join(filepath.Dir(in), "out.jsonl")
	res, err := ScoreFile(context.Background(), s, FileConfig{Input: in, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.ScoreText(context.Background(), prompts, responses)
	if err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(filepath.Dir(in), "again.jsonl")
	if _, err := ScoreFile(context.Background(), s, FileConfig{Input: out, Output: again}); err != nil {
		t.Fatal(err)
	}
	back, err := data.ReadRows(again)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range back {
		if len(r.Fields) != 4 || r.Fields["reward"] != want[i] || res.Rewards[i] != want[i] || r.Fields["id"] != int64(i) || r.Fields["prompt"] != prompts[i] {
			t.Errorf("row %d: %v, want reward %v", i, r.Fields, want[i])
		}
	}
}

// TestScoreBadInput: each bad input is one error line, and no output file (not even a temporary
// one) is left behind.
func TestScoreBadInput(t *testing.T) {
	_, dir := storiesRM(t, 9)
	s, err := NewScorer(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	good := testutil.WriteJSONL(t, "good.jsonl", map[string]any{"prompt": "The cat", "response": " sat."}, map[string]any{"prompt": "A dog", "response": " ran."})
	noResp := testutil.WriteJSONL(t, "noresp.jsonl", map[string]any{"prompt": "The cat", "answer": " sat."})
	userLast := testutil.WriteJSONL(t, "userlast.jsonl", map[string]any{"messages": []map[string]string{{"role": "user", "content": "hi"}}})
	mixed := testutil.WriteJSONL(t, "mixed.jsonl", map[string]any{"prompt": "The cat", "response": " sat."}, map[string]any{"prompt": "x", "response": 3})
	needsTemplate := testutil.WriteJSONL(t, "conv.jsonl", map[string]any{"messages": []map[string]string{{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}}})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		cfg  FileConfig
		want string
	}{
		{"missing column", nil, FileConfig{Input: noResp, Output: filepath.Join(tmp, "a.jsonl")},
			noResp + ": scoring needs prompt and response (or completion) columns, a messages column, or instruction and output columns; the file has columns [answer prompt]"},
		{"mapped column", nil, FileConfig{Input: noResp, Output: filepath.Join(tmp, "b.jsonl"), Columns: map[string]string{"response": "reply"}},
			noResp + `: scoring needs prompt and response (or completion) columns, a messages column, or instruction and output columns; the file has columns [answer prompt]`},
		{"last message from the user", nil, FileConfig{Input: userLast, Output: filepath.Join(tmp, "c.jsonl")},
			userLast + `: row 0: column "messages": the last message is from the user, want a prompt then the assistant's response`},
		{"bad value in a later row", nil, FileConfig{Input: mixed, Output: filepath.Join(tmp, "d.jsonl")},
			mixed + `: row 1: column "response" (mapped from "completion"): want string, got int`},
		{"conversation without a template", nil, FileConfig{Input: needsTemplate, Output: filepath.Join(tmp, "e.jsonl")},
			needsTemplate + ": row 0: conversational data needs a chat template, and none is set (the tokenizer has none; set chat_template)"},
		{"interrupted", cancelled, FileConfig{Input: good, Output: filepath.Join(tmp, "f.jsonl")}, "context canceled"},
		{"output type", nil, FileConfig{Input: good, Output: filepath.Join(tmp, "g.parquet")},
			"--output " + filepath.Join(tmp, "g.parquet") + ": want a jsonl file, like the input"},
		{"output is the input", nil, FileConfig{Input: good, Output: good},
			"--output " + good + " is the input: write the scored rows to another file"},
	}
	for _, tc := range cases {
		ctx := tc.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		_, err := ScoreFile(ctx, s, tc.cfg)
		if errText(err) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, errText(err), tc.want)
		}
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("failed runs left files: %v", left)
	}

	// A model without a score head, and a reward-model directory whose weights lack score.weight.
	lmDir := storiesPath(t)
	if _, err := NewScorer(lmDir); errText(err) != lmDir+" is not a reward model: it has no score.weight (architectures LlamaForCausalLM); train one with `alignkit reward train`" {
		t.Errorf("causal LM: %s", errText(err))
	}
	broken := filepath.Join(t.TempDir(), "broken")
	rm, err := FromCausalLM(testutil.Stories(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.Save(broken, rm, hfOpts); err != nil {
		t.Fatal(err)
	}
	st, err := hf.ReadSafetensors(filepath.Join(broken, hf.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	delete(st, model.ScoreKey)
	cfg := rm.Weights.Config
	if err := hf.Save(broken, &model.Weights{Config: cfgCausal(cfg), Tensors: st}, hfOpts); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, hf.ConfigFile), mustMarshal(t, cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewScorer(broken)
	if errText(err) != "loading reward model: "+broken+`: tensor "score.weight" is missing: config.json declares LlamaForSequenceClassification, a reward model with a [1, 64] score head` {
		t.Errorf("no score.weight: %s", errText(err))
	}
}

// cfgCausal is cfg as the causal LM it was made from (tied, no lm_head).
func cfgCausal(cfg model.Config) model.Config {
	cfg.Architectures = []string{"LlamaForCausalLM"}
	cfg.NumLabels = 0
	return cfg
}

func mustMarshal(t *testing.T, cfg model.Config) []byte {
	t.Helper()
	b, err := cfg.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cancelWriter cancels a context on its first write: a progress bar that stops the run after the
// first batch.
type cancelWriter struct{ cancel context.CancelFunc }

func (w cancelWriter) Write(p []byte) (int, error) { w.cancel(); return len(p), nil }

// TestScoreFileInterrupted stops a Parquet scoring run as soon as its progress bar first draws:
// the error says so and the output directory stays empty.
func TestScoreFileInterrupted(t *testing.T) {
	in := sharedData(t, "no_robots_test_sft.parquet")
	_, dir := storiesRM(t, 5)
	s, err := NewScorer(dir, WithChatTemplate("llama-2"), WithBatchSize(8), WithMaxLength(32))
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = ScoreFile(ctx, s, FileConfig{Input: in, Output: filepath.Join(outDir, "out.parquet"), Progress: cancelWriter{cancel}})
	if errText(err) != "context canceled" {
		t.Errorf("error %s", errText(err))
	}
	if left, _ := os.ReadDir(outDir); len(left) != 0 {
		t.Errorf("interrupted run left %v", left)
	}
}

// TestScorerConcurrent: one Scorer serves several goroutines at once (the server's /v1/score) and
// each gets the serial answer (run with -race).
func TestScorerConcurrent(t *testing.T) {
	_, dir := storiesRM(t, 2)
	s, err := NewScorer(dir, WithBatchSize(2))
	if err != nil {
		t.Fatal(err)
	}
	var prompts, responses []string
	for _, tr := range storyTriples {
		prompts, responses = append(prompts, tr[0], tr[0]), append(responses, tr[1], tr[2])
	}
	want, err := s.ScoreText(context.Background(), prompts, responses)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan string, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.ScoreText(context.Background(), prompts, responses)
			if err != nil || !slices.Equal(got, want) {
				errs <- fmt.Sprintf("concurrent scores %v (%v), serial %v", got, err, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
