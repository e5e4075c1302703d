package gatt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/tokenizer"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
)

// writeSource writes a JSON Lines file of conversations.
func writeSource(t *testing.T, convs ...[]chat.Message) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.jsonl")
	var b strings.Builder
	for _, c := range convs {
		ms := make([]map[string]string, len(c))
		for i, m := range c {
			ms[i] = map[string]string{"role": m.Role, "content": m.Content}
		}
		line, _ := json.Marshal(map[string]any{"messages": ms})
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fiveDialogues: rows 0 and 4 have one user turn; rows 1–3 are usable.
func fiveDialogues(t *testing.T) string {
	return writeSource(t,
		msgs("user", "only one", "assistant", "a"),
		msgs("user", "alpha one", "assistant", "x", "user", "alpha two", "assistant", "y", "user", "alpha three", "assistant", "z"),
		msgs("user", "beta one", "assistant", "x", "user", "beta two", "assistant", "y"),
		msgs("system", "Be kind.", "user", "gamma one", "assistant", "x", "user", "gamma two"),
		msgs("user", "lonely", "assistant", "a"),
	)
}

func synthCfg(src, out string) SynthConfig {
	c := DefaultSynthConfig()
	c.Data.DatasetName, c.OutputDir, c.ModelNameOrPath = src, out, "unused"
	c.Seed = 5
	return c
}

func llama2(t *testing.T) *chat.Template {
	tmpl, err := chat.Resolve("llama-2", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// seedReply answers with the sampling seed and sample index, so a reply shows which (row, turn)
// stream produced it.
func seedGen() *seedGenerator { return &seedGenerator{} }

type seedGenerator struct{ calls int }

func (g *seedGenerator) Generate(_ context.Context, ps []rlhf.Prompt, k int, s rlhf.Sampling) ([][]string, error) {
	g.calls++
	out := make([][]string, len(ps))
	for i := range ps {
		for j := range k {
			out[i] = append(out[i], fmt.Sprintf("seed %d", s.Seed+uint64(i*k+j)))
		}
	}
	return out, nil
}

func TestSynthesize(t *testing.T) {
	src := fiveDialogues(t)
	out := t.TempDir()
	gen := &scriptGen{reply: echoReply}
	sum, err := synthesize(context.Background(), synthCfg(src, out), &sampler{gen: gen, tmpl: llama2(t)}, nil, PlaceSystem)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Dialogues != 3 || sum.Rows != 3 || sum.SourceRows != 5 || sum.Generated != 3 || sum.Resumed != 0 ||
		!reflect.DeepEqual(sum.Skipped, map[string]int{SkipFewTurns: 2}) {
		t.Errorf("summary %+v", sum)
	}
	// Sampling: 3+2+2 turns, turn by turn, the instruction appended to every user message and the
	// earlier sampled replies in context.
	if len(gen.prompts) != 7 {
		t.Fatalf("%d generation calls, want 7", len(gen.prompts))
	}
	inst1, _ := InstructionFor(5, 1, DefaultLists())
	want := msgs("user", "alpha one\n\n"+inst1.Text(), "assistant", "reply 0 to alpha", "user", "alpha two\n\n"+inst1.Text(),
		"assistant", "reply 0 to alpha", "user", "alpha three\n\n"+inst1.Text())
	if !reflect.DeepEqual(gen.prompts[2], want) {
		t.Errorf("third prompt of row 1:\n got %q\nwant %q", gen.prompts[2], want)
	}
	rows, err := ReadRows(filepath.Join(out, ParquetFile))
	if err != nil {
		t.Fatal(err)
	}
	users := map[int][]string{1: {"alpha one", "alpha two", "alpha three"}, 2: {"beta one", "beta two"}, 3: {"gamma one", "gamma two"}}
	for i, r := range rows {
		if r.SourceRow != i+1 {
			t.Errorf("row %d from source row %d", i, r.SourceRow)
		}
		inst, _ := InstructionFor(5, r.SourceRow, DefaultLists())
		if r.Instruction != inst.Text() || r.Terse != inst.UseTerse || len(r.Constraints) != len(inst.Constraints) {
			t.Errorf("row %d: instruction %q terse %v constraints %q, want %+v", i, r.Instruction, r.Terse, r.Constraints, inst)
		}
		checkInstructionFirstOnly(t, r, users[r.SourceRow])
		if r.TrainedTurn != len(r.Messages)-1 || r.Messages[r.TrainedTurn].Role != "assistant" {
			t.Errorf("row %d: trained turn %d of %d messages", i, r.TrainedTurn, len(r.Messages))
		}
	}
	// Row 3's source system message stays, before the instruction.
	if rows[2].Messages[0].Content != "Be kind.\n\n"+rows[2].Instruction {
		t.Errorf("system of row 3: %q", rows[2].Messages[0].Content)
	}
	var disk SynthSummary
	b, _ := os.ReadFile(filepath.Join(out, SummaryFile))
	if err := json.Unmarshal(b, &disk); err != nil || disk.Dialogues != 3 || disk.Skipped[SkipFewTurns] != 2 {
		t.Errorf("summary file: %+v %v", disk, err)
	}

	// Run again: everything is in the journal, nothing is regenerated, the file is the same.
	again := &scriptGen{reply: func([]chat.Message, int) string { t.Fatal("a finished dialogue was regenerated"); return "" }}
	sum, err = synthesize(context.Background(), synthCfg(src, out), &sampler{gen: again, tmpl: llama2(t)}, nil, PlaceSystem)
	if err != nil || sum.Resumed != 3 || sum.Generated != 0 || sum.Dialogues != 3 {
		t.Fatalf("rerun: %+v %v", sum, err)
	}
	rows2, _ := ReadRows(filepath.Join(out, ParquetFile))
	if !reflect.DeepEqual(rows, rows2) {
		t.Error("rerun changed gatt.parquet")
	}
	// Another seed is another configuration: the journal refuses it.
	c := synthCfg(src, out)
	c.Seed = 6
	if _, err := synthesize(context.Background(), c, &sampler{gen: gen, tmpl: llama2(t)}, nil, PlaceSystem); err == nil || !strings.Contains(err.Error(), "was written with another configuration") {
		t.Errorf("other seed: %v", err)
	}
}

// cancelGen cancels the run when asked for a given source row, as a kill would stop it there.
type cancelGen struct {
	inner  rlhf.Generator
	row    int
	cancel context.CancelFunc
}

func (g *cancelGen) Generate(ctx context.Context, ps []rlhf.Prompt, k int, s rlhf.Sampling) ([][]string, error) {
	if ps[0].Row == g.row {
		g.cancel()
		return nil, ctx.Err()
	}
	return g.inner.Generate(ctx, ps, k, s)
}

// TestSynthesizeResume: a run stopped in the middle leaves no gatt.parquet; the next run regenerates
// only the unfinished dialogues, and the result is the file an uninterrupted run writes.
func TestSynthesizeResume(t *testing.T) {
	src := fiveDialogues(t)
	ref := t.TempDir()
	if _, err := synthesize(context.Background(), synthCfg(src, ref), &sampler{gen: seedGen(), tmpl: llama2(t)}, nil, PlaceSystem); err != nil {
		t.Fatal(err)
	}
	want, _ := ReadRows(filepath.Join(ref, ParquetFile))

	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := synthesize(ctx, synthCfg(src, out), &sampler{gen: &cancelGen{inner: seedGen(), row: 2, cancel: cancel}, tmpl: llama2(t)}, nil, PlaceSystem)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, ParquetFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an interrupted run left %s: %v", ParquetFile, err)
	}
	g := seedGen()
	sum, err := synthesize(context.Background(), synthCfg(src, out), &sampler{gen: g, tmpl: llama2(t)}, nil, PlaceSystem)
	if err != nil {
		t.Fatal(err)
	}
	// Row 1 (3 turns) was done; rows 2 and 3 (2 turns each) are generated now.
	if sum.Resumed != 1 || sum.Generated != 2 || g.calls != 4 {
		t.Errorf("resumed %d, generated %d, %d calls; want 1, 2, 4", sum.Resumed, sum.Generated, g.calls)
	}
	got, _ := ReadRows(filepath.Join(out, ParquetFile))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resumed file differs:\n got %+v\nwant %+v", got, want)
	}

	// max_dialogues takes the first rows that succeed; raising it later continues the same journal.
	out2 := t.TempDir()
	c := synthCfg(src, out2)
	c.MaxDialogues = 2
	sum, err = synthesize(context.Background(), c, &sampler{gen: seedGen(), tmpl: llama2(t)}, nil, PlaceSystem)
	if err != nil || sum.Dialogues != 2 || sum.Skipped[SkipFewTurns] != 1 {
		t.Fatalf("max_dialogues 2: %+v %v", sum, err)
	}
	c.MaxDialogues = 3
	c.Concurrency = 3
	sum, err = synthesize(context.Background(), c, &sampler{gen: seedGen(), tmpl: llama2(t)}, nil, PlaceSystem)
	if err != nil || sum.Resumed != 2 || sum.Generated != 1 || sum.Dialogues != 3 || sum.Skipped[SkipFewTurns] != 1 {
		t.Fatalf("max_dialogues 3: %+v %v", sum, err)
	}
	got, _ = ReadRows(filepath.Join(out2, ParquetFile))
	if !reflect.DeepEqual(got, want) {
		t.Error("max_dialogues 2 then 3 differs from one full run")
	}
}

// rankScorer prefers the candidate whose text ends in the wanted index.
type rankScorer struct {
	want  string
	convs [][]data.Message
}

func (r *rankScorer) Score(_ context.Context, convs [][]data.Message) ([]float64, error) {
	out := make([]float64, len(convs))
	for i, c := range convs {
		r.convs = append(r.convs, c)
		if strings.HasSuffix(c[len(c)-1].Content, r.want) {
			out[i] = 1
		}
	}
	return out, nil
}

func TestSynthesizeBestOfK(t *testing.T) {
	src := fiveDialogues(t)
	c := synthCfg(src, t.TempDir())
	c.NumSamplesPerPrompt, c.RewardModelNameOrPath = 4, "rm"
	c.Samples = string(SamplesEveryTurn)
	gen := &scriptGen{reply: func(m []chat.Message, j int) string { return fmt.Sprintf("  candidate %d  ", j) }}
	rs := &rankScorer{want: "candidate 2"}
	sum, err := synthesize(context.Background(), c, &sampler{gen: gen, tmpl: llama2(t)}, rs, PlaceFirstUser)
	if err != nil {
		t.Fatal(err)
	}
	// every_turn: 3 + 2 + 2 samples.
	if sum.Rows != 7 || len(rs.convs) != 7*4 {
		t.Fatalf("rows %d, %d scored conversations", sum.Rows, len(rs.convs))
	}
	// The reward model sees the sampling prompt followed by the candidate (trimmed).
	if got := rs.convs[1]; got[len(got)-1] != (data.Message{Role: "assistant", Content: "candidate 1"}) || !reflect.DeepEqual(got[:len(got)-1], gen.prompts[0]) {
		t.Errorf("scored conversation %q", got)
	}
	rows, _ := ReadRows(filepath.Join(c.OutputDir, ParquetFile))
	for _, r := range rows {
		for _, m := range r.Messages {
			if m.Role == "assistant" && m.Content != "candidate 2" {
				t.Errorf("row %d kept %q, want the reward model's best", r.SourceRow, m.Content)
			}
		}
	}
}

// TestSynthesizeTooLong: a dialogue is cut at the first turn whose prompt and reply would not fit
// max_length; one that does not reach two turns is skipped and counted.
func TestSynthesizeTooLong(t *testing.T) {
	src := writeSource(t,
		msgs("user", strings.Repeat("long ", 40), "assistant", "x", "user", "short"),
		msgs("user", "a", "assistant", "x", "user", "b", "assistant", "y", "user", strings.Repeat("long ", 40)),
		msgs("user", "c", "assistant", "x", "user", "d"),
	)
	c := synthCfg(src, t.TempDir())
	c.Data.MaxLength = 200
	c.MaxNewTokens = 10
	// One "token" per byte of the messages: a 200-byte message cannot fit 200 with room for 10
	// new tokens; row 2's longest prompt, two short turns with the instruction (at most 61 bytes)
	// on each, and a 12-byte reply, fits.
	count := func(ms []chat.Message) (int, error) {
		n := 0
		for _, m := range ms {
			n += len(m.Content)
		}
		return n, nil
	}
	c.Constraints = Lists{Hobbies: []string{"Go"}, Languages: []string{"Go"}, Figures: []string{"Go"}} // short instructions
	sum, err := synthesize(context.Background(), c, &sampler{gen: &scriptGen{reply: echoReply}, tmpl: llama2(t), count: count}, nil, PlaceSystem)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Dialogues != 2 || !reflect.DeepEqual(sum.Skipped, map[string]int{SkipTooLong: 1}) {
		t.Errorf("summary %+v", sum)
	}
	rows, _ := ReadRows(filepath.Join(c.OutputDir, ParquetFile))
	if len(rows) != 2 || rows[0].SourceRow != 1 || len(rows[0].Messages) != 5 {
		t.Errorf("row 1 should keep its first two turns: %+v", rows)
	}

	// Nothing usable at all is an error that says why.
	only := writeSource(t, msgs("user", "one", "assistant", "a"))
	c = synthCfg(only, t.TempDir())
	if _, err := synthesize(context.Background(), c, &sampler{gen: &scriptGen{reply: echoReply}, tmpl: llama2(t)}, nil, PlaceSystem); err == nil ||
		err.Error() != only+": no dialogue could be synthesised (1 rows: 1 skipped as fewer_than_2_user_turns)" {
		t.Errorf("nothing usable: %v", err)
	}
}

// TestSynthesizedMask tokenizes synthesised rows as `alignkit sft` does (data + lm.ChatTokenizer on
// the stories260K tokenizer) and checks the loss mask: exactly the trained reply's tokens and the
// EOS that closes it, nothing of any earlier turn.
func TestSynthesizedMask(t *testing.T) {
	shared := sharedDir(t)
	tok, err := tokenizer.Load(filepath.Join(shared, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		template string
		place    Placement
	}{{"llama-2", PlaceSystem}, {"mistral", PlaceFirstUser}} { // templates whose end of turn is the tokenizer's </s>
		t.Run(tc.template, func(t *testing.T) {
			dt, err := lm.ChatTokenizer(tok, tc.template)
			if err != nil {
				t.Fatal(err)
			}
			d := Dialogue{SourceRow: 0, Users: []string{"Tell me a story.", "What happened next?", "How did it end?"}}
			replies := []string{"Once upon a time there was a cat.", "The cat found a ball.", "They played all day."}
			inst := NewInstruction([]Constraint{{Figure, "Napoleon"}, {Hobby, "Tennis"}}, false)
			var rows []Row
			for _, mode := range []SampleMode{SamplesLastTurn, SamplesEveryTurn} {
				rs, err := BuildRows(d, inst, tc.place, mode, replies)
				if err != nil {
					t.Fatal(err)
				}
				rows = append(rows, rs...)
			}
			path := filepath.Join(t.TempDir(), ParquetFile)
			if err := WriteParquet(path, rows); err != nil {
				t.Fatal(err)
			}
			ds, err := data.Load(data.Source{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			eos := tok.EOS()
			for i, rec := range ds.Records {
				ex, err := dt.Example(&rec, data.MaskLastTurnOnly)
				if err != nil {
					t.Fatal(err)
				}
				// The trained_turn column decides alone: SFT's default mask (assistant_only) gives the same.
				def, err := dt.Example(&rec, "")
				if err != nil || !reflect.DeepEqual(def.Mask, ex.Mask) {
					t.Errorf("row %d: the default mask differs from last_turn_only: %v", i, err)
				}
				first, last := -1, -1
				for k, m := range ex.Mask {
					if m {
						if first < 0 {
							first = k
						}
						last = k
					}
				}
				for k := first; k <= last; k++ {
					if !ex.Mask[k] {
						t.Fatalf("row %d: mask has a hole at %d", i, k)
					}
				}
				trained := rows[i].Messages[rows[i].TrainedTurn].Content
				if ex.IDs[last] != eos {
					t.Errorf("row %d: the last trained token is %d, want EOS %d", i, ex.IDs[last], eos)
				}
				if got := strings.TrimSpace(tok.Decode(ex.IDs[first:last])); got != trained {
					t.Errorf("row %d: trained tokens decode to %q, want the trained reply %q", i, got, trained)
				}
				// Every token before the trained reply, every earlier assistant reply included, is
				// context: the prefix decodes to a text that holds every earlier reply, none trained.
				prefix := tok.Decode(ex.IDs[:first])
				for _, r := range replies {
					if r == trained {
						break
					}
					if !strings.Contains(prefix, r) {
						t.Errorf("row %d: earlier reply %q not in the untrained prefix %q", i, r, prefix)
					}
				}
				if last != len(ex.IDs)-1 && tc.template != "mistral" { // mistral writes " " after </s>
					t.Errorf("row %d: %d tokens after the trained EOS", i, len(ex.IDs)-1-last)
				}
			}
		})
	}
}

// TestSynthesizeBestOfKReal runs best-of-K on stories260K with a reward model (stories260K's
// backbone with a random score head): each kept reply is the highest-scoring of the K the policy
// samples with that turn's seeds, re-derived here with the same generator and scorer.
func TestSynthesizeBestOfKReal(t *testing.T) {
	shared := sharedDir(t)
	stories := filepath.Join(shared, "models", "stories260K")
	rmDir := rewardModelDir(t, stories)
	src := writeSource(t,
		msgs("user", "Tell me a story.", "assistant", "x", "user", "What happened next?"),
		msgs("user", "Who is Lily?", "assistant", "x", "user", "Where does she live?"),
	)
	cfg := DefaultSynthConfig()
	cfg.Data.DatasetName, cfg.Data.ChatTemplate, cfg.OutputDir, cfg.ModelNameOrPath = src, "llama-2", t.TempDir(), stories
	cfg.NumSamplesPerPrompt, cfg.RewardModelNameOrPath, cfg.MaxNewTokens, cfg.Temperature = 3, rmDir, 8, 1
	sum, err := Synthesize(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Dialogues != 2 || sum.Placement != PlaceSystem {
		t.Fatalf("summary %+v", sum)
	}
	rows, _ := ReadRows(filepath.Join(cfg.OutputDir, ParquetFile))

	policy, _ := checkpoint.Open(stories)
	gen, err := rlhf.NewLocal(policy, "llama-2")
	if err != nil {
		t.Fatal(err)
	}
	scorer, err := reward.NewScorer(rmDir, reward.WithChatTemplate("llama-2"))
	if err != nil {
		t.Fatal(err)
	}
	distinct := 0
	for _, r := range rows {
		d := Dialogue{SourceRow: r.SourceRow, Users: []string{r.Messages[1].Content, r.Messages[3].Content}}
		var kept []string
		for turn := range 2 {
			prompt := d.SamplingPrompt(r.Instruction, kept)
			out, err := gen.Generate(context.Background(), []rlhf.Prompt{{Messages: prompt}}, 3,
				rlhf.Sampling{Temperature: 1, TopP: 1, MaxNewTokens: 8, Seed: turnSeed(42, r.SourceRow, turn)})
			if err != nil {
				t.Fatal(err)
			}
			convs := make([][]data.Message, 3)
			for j, c := range out[0] {
				convs[j] = append(append([]data.Message(nil), prompt...), data.Message{Role: "assistant", Content: strings.TrimSpace(c)})
			}
			scores, err := scorer.Score(context.Background(), convs)
			if err != nil {
				t.Fatal(err)
			}
			best := strings.TrimSpace(out[0][rlhf.Best(scores)])
			if got := r.Messages[2+2*turn].Content; got != best {
				t.Errorf("row %d turn %d kept %q, want the best of %q (scores %v): %q", r.SourceRow, turn+1, got, out[0], scores, best)
			}
			if out[0][0] != out[0][1] || out[0][1] != out[0][2] {
				distinct++
			}
			kept = append(kept, best)
		}
	}
	if distinct == 0 {
		t.Error("the K samples were identical in every turn: best-of-K was not exercised")
	}
}

// rewardModelDir saves stories260K's backbone with a random score head as a reward model.
func rewardModelDir(t *testing.T, stories string) string {
	t.Helper()
	ck, err := checkpoint.Open(stories)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := reward.FromCausalLM(ck, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rm")
	if err := checkpoint.Save(dir, rm, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}
