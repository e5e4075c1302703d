package reward

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"

	_ "go4.org/unsafe/assume-no-moving-gc"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/infer"
)

var hfOpts = hf.SaveOptions{}

// TestFromCausalLM checks the sequence-classification layout: architectures, num_labels 1, a pad id
// that is not EOS, no lm_head, score.weight (1, D) drawn with std 1/√(D+1) from the seed, and a
// saved directory that transformers' config reader and our loader both take as a reward model.
func TestFromCausalLM(t *testing.T) {
	ck := testutil.Stories(t)
	rm, err := FromCausalLM(ck, 7)
	if err != nil {
		t.Fatal(err)
	}
	c := rm.Weights.Config
	if !slices.Equal(c.Architectures, []string{"LlamaForSequenceClassification"}) || c.NumLabels != 1 || !c.IsRewardModel() {
		t.Fatalf("config: architectures %v num_labels %d", c.Architectures, c.NumLabels)
	}
	// stories260K has no pad token; its unk (0) pads, never EOS (2).
	if c.PadTokenID == nil || *c.PadTokenID != 0 {
		t.Fatalf("pad_token_id %v, want 0 (unk)", c.PadTokenID)
	}
	if _, ok := rm.Weights.Tensors[model.LMHeadKey]; ok {
		t.Fatal("lm_head.weight kept")
	}
	score := rm.Weights.Tensors[model.ScoreKey]
	if score == nil || !slices.Equal(score.Shape, []int{1, 64}) {
		t.Fatalf("score.weight %v", score)
	}
	// Sample std of 64 draws from N(0, 1/65): relative standard error ≈ 1/√128 ≈ 0.09, so ±30% is
	// more than 3 standard errors.
	var ss float64
	for _, v := range score.Data {
		ss += float64(v) * float64(v)
	}
	if std, want := math.Sqrt(ss/64), 1/math.Sqrt(65); math.Abs(std-want) > 0.3*want {
		t.Errorf("score.weight std %v, want about %v", std, want)
	}
	again, _ := FromCausalLM(testutil.Stories(t), 7)
	other, _ := FromCausalLM(testutil.Stories(t), 8)
	if !slices.Equal(again.Weights.Tensors[model.ScoreKey].Data, score.Data) {
		t.Error("same seed, different score.weight")
	}
	if slices.Equal(other.Weights.Tensors[model.ScoreKey].Data, score.Data) {
		t.Error("different seeds, same score.weight")
	}
	// The backbone is the causal LM's, unchanged.
	if !slices.Equal(rm.Weights.Tensors[model.EmbedKey].Data, ck.Weights.Tensors[model.EmbedKey].Data) {
		t.Error("embeddings changed")
	}

	dir := filepath.Join(t.TempDir(), "rm")
	if err := checkpoint.Save(dir, rm, hfOpts); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatal(err)
	}
	if a, _ := js["architectures"].([]any); len(a) != 1 || a[0] != "LlamaForSequenceClassification" || js["pad_token_id"] != 0.0 {
		t.Errorf("config.json: architectures %v pad_token_id %v", js["architectures"], js["pad_token_id"])
	}
	back, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Weights.Config.NumLabels != 1 || !slices.Equal(back.Weights.Tensors[model.ScoreKey].Data, score.Data) {
		t.Errorf("reloaded: num_labels %d", back.Weights.Config.NumLabels)
	}

	if _, err := FromCausalLM(back, 1); errText(err) != dir+": already a reward model (LlamaForSequenceClassification)" {
		t.Errorf("error %q", errText(err))
	}
}

// pairBatch tokenizes (prompt, chosen, rejected) text triples and collates them with the given
// length buckets.
func pairBatch(t *testing.T, ck *checkpoint.Model, buckets []int, triples ...[3]string) *data.PairBatch {
	t.Helper()
	tok, err := lm.DataTokenizer(ck.Tok, "")
	if err != nil {
		t.Fatal(err)
	}
	var exs []data.PairExample
	for i, tr := range triples {
		ex, err := tok.PairExample(&data.Pair{Source: "test", Row: i, Prompt: tr[0], Chosen: tr[1], Rejected: tr[2]})
		if err != nil {
			t.Fatal(err)
		}
		exs = append(exs, ex)
	}
	pb, err := data.NewPairBatcher(exs, ck.Tok.EOS(), data.PairBatchConfig{BatchSize: len(triples), MaxLength: 128, PadID: 0, Buckets: buckets})
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, len(triples))
	for i := range idx {
		idx[i] = i
	}
	b, err := pb.Pairs(idx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var storyTriples = [][3]string{
	{"Once upon a time, there was a little girl named Lily.", " She loved to play in the park.", " The sky."},
	{"Tom had a big red ball.", " He threw it to his friend and they laughed.", " Ball ball ball ball."},
	{"The cat sat", " on the mat and purred.", " on."},
}

// TestPoolingIgnoresPadding: the score head reads each row's last real token (its EOS), so padding
// a row further (a longer length bucket, extra empty rows from lm.Model.Rows) leaves its reward
// unchanged; and the training graph agrees with the inference engine on the unpadded sequences.
func TestPoolingIgnoresPadding(t *testing.T) {
	rm, err := FromCausalLM(testutil.Stories(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	short := pairBatch(t, rm, []int{32}, storyTriples...)
	long := pairBatch(t, rm, []int{128}, storyTriples...)
	if short.T != 32 || long.T != 128 {
		t.Fatalf("buckets: T %d and %d", short.T, long.T)
	}
	r0, err := lm.New(rm, 0).Rewards(&short.Batch)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := lm.New(rm, 10).Rewards(&long.Batch) // 4 extra empty rows too
	if err != nil {
		t.Fatal(err)
	}
	eng, err := infer.New(rm.Weights)
	if err != nil {
		t.Fatal(err)
	}
	var seqs [][]int32
	for b := 0; b < short.B; b++ {
		seqs = append(seqs, short.Tokens[b*short.T:b*short.T+int(short.LastIndex[b])+1])
	}
	r2, err := eng.ScoreBatch(seqs)
	if err != nil {
		t.Fatal(err)
	}
	var spread float64
	for i := range r0 {
		if math.Abs(r0[i]-r1[i]) > 1e-5 || math.Abs(r0[i]-float64(r2[i])) > 1e-4 {
			t.Errorf("row %d: reward %.7f at T=32, %.7f at T=128, engine %.7f", i, r0[i], r1[i], r2[i])
		}
		spread = math.Max(spread, math.Abs(r0[i]-r0[0]))
	}
	if spread < 1e-3 {
		t.Errorf("all rewards equal (%v): the head does not read the sequence", r0)
	}
	// The row's last real token is the EOS that ends the answer.
	for b := 0; b < short.B; b++ {
		if got := short.Tokens[b*short.T+int(short.LastIndex[b])]; got != rm.Tok.EOS() {
			t.Errorf("row %d: the head reads token %d, want EOS %d", b, got, rm.Tok.EOS())
		}
	}
}
