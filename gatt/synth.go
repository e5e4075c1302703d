package gatt

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/alignkit/alignkit/internal/atomicfile"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
)

// Output file names in output_dir.
const (
	ParquetFile = "gatt.parquet"
	JournalFile = "gatt.journal.jsonl"
	SummaryFile = "gatt_summary.json"
)

// SynthConfig is `alignkit gatt synth`'s YAML.
type SynthConfig struct {
	// Data holds dataset_name (the source dialogues: a `messages` column), columns, chat_template and
	// max_length; the other data keys do not apply to synthesis and are rejected.
	Data            data.Args `mapstructure:",squash"`
	ModelNameOrPath string    `mapstructure:"model_name_or_path" doc:"the current model: samples the replies (backend local), and gives the tokenizer and chat template the rows are placed and measured with"`
	OutputDir       string    `mapstructure:"output_dir" doc:"receives gatt.parquet, its journal (gatt.journal.jsonl, for resuming) and gatt_summary.json"`
	Seed            int64     `mapstructure:"seed" doc:"drives the instructions (per source row) and the sampling (per row and turn); default 42"`

	MaxDialogues int     `mapstructure:"max_dialogues" doc:"synthesise this many dialogues, the first source rows that succeed (0: all)"`
	MaxTurns     int     `mapstructure:"max_turns" doc:"use at most this many user turns of each dialogue (0: all)"`
	MaxNewTokens int     `mapstructure:"max_new_tokens" doc:"most tokens per sampled reply (default 256)"`
	Temperature  float64 `mapstructure:"temperature" doc:"sampling temperature (default 0.7; 0 is greedy)"`
	TopP         float64 `mapstructure:"top_p" doc:"nucleus sampling mass (default 1: no cut)"`
	Samples      string  `mapstructure:"samples" doc:"last_turn: one sample per dialogue trained on its final reply; every_turn: one per turn t, trained on reply t (default last_turn)"`

	InstructionPlacement string `mapstructure:"instruction_placement" doc:"where the instruction goes in the first turn: system, first_user, or auto (system when the chat template renders a system message; default)"`
	Constraints          Lists  `mapstructure:"constraints" doc:"hobbies, languages and figures to draw from; a list given here replaces the default one (see extend_constraints)"`
	ExtendConstraints    bool   `mapstructure:"extend_constraints" doc:"add the constraints lists to the defaults instead of replacing them"`

	NumSamplesPerPrompt   int    `mapstructure:"num_samples_per_prompt" doc:"K replies sampled per turn; the reward model keeps the best (default 1)"`
	RewardModelNameOrPath string `mapstructure:"reward_model_name_or_path" doc:"reward model for best-of-K (needed when num_samples_per_prompt > 1)"`
	Backend               `mapstructure:",squash"`
	Progress              io.Writer `mapstructure:"-"`
}

// DefaultSynthConfig is what a YAML file that sets nothing means; load a config over it.
func DefaultSynthConfig() SynthConfig {
	return SynthConfig{Seed: 42, MaxNewTokens: 256, Temperature: 0.7, TopP: 1, Samples: string(SamplesLastTurn),
		InstructionPlacement: string(PlaceAuto), NumSamplesPerPrompt: 1}
}

// Validate checks the keys and returns one error line naming the first bad one.
func (c SynthConfig) Validate() error {
	c.Backend = withDefaults(c.Backend)
	d := c.Data.Defaults()
	switch {
	case d.DatasetName == "":
		return errors.New("dataset_name: must be set (a .parquet or .jsonl file with a messages column)")
	case d.EvalDatasetName != "" || d.EvalSplit != 0:
		return errors.New("eval_dataset_name, eval_split: not used by gatt synth: remove them")
	case d.Packing || d.LossMask != "":
		return errors.New("packing, loss_mask: training keys, not used by gatt synth: set them in the sft config")
	case d.MaxTrainSamples != 0 || d.MaxEvalSamples != 0:
		return errors.New("max_train_samples, max_eval_samples: not used by gatt synth: use max_dialogues")
	case d.MaxLength < 2:
		return fmt.Errorf("max_length: must be >= 2, got %d", d.MaxLength)
	case c.OutputDir == "":
		return errors.New("output_dir: must be set")
	case c.MaxDialogues < 0:
		return fmt.Errorf("max_dialogues: must be >= 0 (0: all), got %d", c.MaxDialogues)
	case c.MaxTurns < 0 || c.MaxTurns == 1:
		return fmt.Errorf("max_turns: must be 0 (all) or >= 2, got %d", c.MaxTurns)
	case c.MaxNewTokens < 1:
		return fmt.Errorf("max_new_tokens: must be >= 1, got %d", c.MaxNewTokens)
	case math.IsNaN(c.Temperature) || c.Temperature < 0:
		return fmt.Errorf("temperature: must be >= 0, got %v", c.Temperature)
	case math.IsNaN(c.TopP) || c.TopP <= 0 || c.TopP > 1:
		return fmt.Errorf("top_p: must be in (0, 1], got %v", c.TopP)
	case c.NumSamplesPerPrompt < 1:
		return fmt.Errorf("num_samples_per_prompt: must be >= 1, got %d", c.NumSamplesPerPrompt)
	case c.NumSamplesPerPrompt > 1 && c.RewardModelNameOrPath == "":
		return fmt.Errorf("num_samples_per_prompt %d: best-of-K needs reward_model_name_or_path", c.NumSamplesPerPrompt)
	case c.NumSamplesPerPrompt > 1 && c.Temperature == 0:
		return fmt.Errorf("num_samples_per_prompt %d: greedy decoding (temperature 0) gives K identical replies: set temperature > 0", c.NumSamplesPerPrompt)
	}
	if _, err := ParseSampleMode(c.Samples); err != nil {
		return err
	}
	if _, err := ParsePlacement(c.InstructionPlacement); err != nil {
		return err
	}
	if _, err := ResolveLists(c.Constraints, c.ExtendConstraints); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return err
	}
	return validateBackend(c.Backend, c.ModelNameOrPath)
}

// ResolveLists applies a config's constraints over the defaults: a list that is given (non-nil)
// replaces the default list, or with extend adds to it. Every resulting list must hold at least one
// value, since Sample draws from all three categories.
func ResolveLists(given Lists, extend bool) (Lists, error) {
	out := DefaultLists()
	if extend {
		out = out.Extend(given)
	} else {
		if given.Hobbies != nil {
			out.Hobbies = given.Hobbies
		}
		if given.Languages != nil {
			out.Languages = given.Languages
		}
		if given.Figures != nil {
			out.Figures = given.Figures
		}
	}
	if err := out.check(kinds[:]); err != nil {
		return Lists{}, fmt.Errorf("constraints: %w", err)
	}
	return out, nil
}

// SynthSummary counts what a synthesis did; it is written to output_dir/gatt_summary.json.
type SynthSummary struct {
	SourceRows int `json:"source_rows"`
	Dialogues  int `json:"dialogues"` // dialogues in gatt.parquet
	Rows       int `json:"rows"`      // training samples in gatt.parquet
	TerseRows  int `json:"terse_rows"`
	// Skipped counts, per reason, the source rows before the last one used that gave no dialogue:
	// "fewer_than_2_user_turns" and "too_long" (not two turns within max_length).
	Skipped map[string]int `json:"skipped"`
	// Resumed is how many of the dialogues were taken from the journal of an earlier run, not
	// regenerated; Generated is how many source rows this run sampled (skips included).
	Resumed   int       `json:"resumed"`
	Generated int       `json:"generated"`
	Placement Placement `json:"instruction_placement"`
	Lists     Lists     `json:"constraints"`
}

// Skip reasons.
const (
	SkipFewTurns = "fewer_than_2_user_turns"
	SkipTooLong  = "too_long"
)

// Synthesize runs GAtt synthesis: for each source dialogue (in row order) it samples an instruction,
// samples every reply turn by turn with the instruction appended to every user message (best of K by
// the reward model when K > 1), and writes the training samples. Each finished dialogue is appended
// to the journal, so a killed run continues where it stopped; gatt.parquet is written, atomically,
// only at the end.
//
// Under mpirun (dist.World of several ranks) the dialogues are dealt over the ranks in rounds of
// ranks × concurrency (fewer near max_dialogues) and gathered in row order; rank 0 alone keeps the
// journal and writes the output, which is the file one process writes with the same seed (each
// dialogue's instruction and sampling depend on the seed and its row alone).
func Synthesize(ctx context.Context, cfg SynthConfig) (SynthSummary, error) {
	var sum SynthSummary
	cfg.Backend = withDefaults(cfg.Backend)
	cfg.Data = cfg.Data.Defaults()
	if err := cfg.Validate(); err != nil {
		return sum, err
	}
	place, err := ParsePlacement(cfg.InstructionPlacement)
	if err != nil {
		return sum, err
	}
	s, err := newSampler(ctx, cfg.Backend, cfg.ModelNameOrPath, cfg.Data.ChatTemplate)
	if err != nil {
		return sum, err
	}
	if place == PlaceAuto {
		if place, err = DetectPlacement(s.tmpl); err != nil {
			return sum, err
		}
	}
	var scorer convScorer
	if cfg.NumSamplesPerPrompt > 1 {
		if scorer, err = reward.NewScorer(cfg.RewardModelNameOrPath, reward.WithChatTemplate(cfg.Data.ChatTemplate)); err != nil {
			return sum, err
		}
	}
	return synthesize(ctx, cfg, s, scorer, place)
}

// convScorer scores conversations that end in the reply being judged (reward.Scorer).
type convScorer interface {
	Score(ctx context.Context, convs [][]data.Message) ([]float64, error)
}

// synthesize is Synthesize once the backend, the reward model and the placement are settled.
func synthesize(ctx context.Context, cfg SynthConfig, s *sampler, scorer convScorer, place Placement) (SynthSummary, error) {
	var sum SynthSummary
	cfg.Backend = withDefaults(cfg.Backend)
	cfg.Data = cfg.Data.Defaults()
	lists, err := ResolveLists(cfg.Constraints, cfg.ExtendConstraints)
	if err != nil {
		return sum, err
	}
	mode, err := ParseSampleMode(cfg.Samples)
	if err != nil {
		return sum, err
	}
	ds, err := data.Load(data.Source{Path: cfg.Data.DatasetName, Columns: cfg.Data.Columns, Format: data.FormatConversation, Split: cfg.Data.DatasetTrainSplit})
	if err != nil {
		return sum, err
	}
	sum.SourceRows = len(ds.Records)
	sum.Placement, sum.Lists = place, lists
	sum.Skipped = map[string]int{}

	comm, err := dist.World()
	if err != nil {
		return sum, err
	}
	fp, err := fingerprint(cfg, place, lists)
	if err != nil {
		return sum, err
	}
	// Rank 0 opens the journal (journal stays nil on the others) and sends them its entries.
	var journal *Journal
	var entries []Entry
	b, err := dist.OnLeader(comm, func() ([]byte, error) {
		if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
			return nil, fmt.Errorf("output_dir: %w", err)
		}
		var err error
		if journal, entries, err = OpenJournal(filepath.Join(cfg.OutputDir, JournalFile), fp); err != nil || comm.Size() == 1 {
			return nil, err
		}
		return json.Marshal(entries)
	})
	if err != nil {
		return sum, err
	}
	if journal != nil {
		defer journal.Close()
	}
	if comm.Rank() != 0 {
		if err := json.Unmarshal(b, &entries); err != nil {
			return sum, fmt.Errorf("journal entries from rank 0: %w", err)
		}
	}
	done := map[int]Entry{}
	for _, e := range entries {
		done[e.SourceRow] = e
	}
	journaled := make(map[int]bool, len(done)) // rows finished by an earlier run
	for r := range done {
		journaled[r] = true
	}

	// Candidates in row order; rows with fewer than two user turns are skipped without sampling.
	dialogues := make([]Dialogue, len(ds.Records))
	eligible := make([]bool, len(ds.Records))
	for i, r := range ds.Records {
		d, err := DialogueFrom(r.Row, r.Messages, place)
		if err == nil && cfg.MaxTurns > 0 && len(d.Users) > cfg.MaxTurns {
			d.Users = d.Users[:cfg.MaxTurns]
		}
		dialogues[i], eligible[i] = d, err == nil
	}
	okDone := 0
	for _, e := range done {
		if e.Skipped == "" {
			okDone++
		}
	}

	w := &synthWorker{cfg: cfg, s: s, scorer: scorer, lists: lists, place: place, mode: mode}
	limit := cfg.Data.MaxLength
	if s.maxPos > 0 && s.maxPos < limit {
		limit = s.maxPos
	}
	w.limit = limit

	okCount := okDone
	progress := cfg.Progress
	if comm.Rank() != 0 {
		progress = nil
	}
	// record takes a finished dialogue into the journal (rank 0) and the tallies (every rank).
	record := func(e Entry) error {
		if journal != nil {
			if err := journal.Append(e); err != nil {
				return err
			}
		}
		done[e.SourceRow] = e
		sum.Generated++
		if e.Skipped == "" {
			okCount++
		}
		if progress != nil {
			fmt.Fprintf(progress, "gatt synth: row %d: %s (%d/%s dialogues)\n", e.SourceRow, entryWord(e), okCount, maxWord(cfg.MaxDialogues))
		}
		return nil
	}
	if comm.Size() > 1 {
		var todo []Dialogue
		for i, d := range dialogues {
			if _, ok := done[d.SourceRow]; !ok && eligible[i] {
				todo = append(todo, d)
			}
		}
		if err := w.rounds(ctx, comm, todo, &okCount, record); err != nil {
			return sum, err
		}
	} else if err := w.pool(ctx, dialogues, eligible, done, &okCount, record); err != nil {
		return sum, err
	}
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	err = finishSynth(comm, cfg, dialogues, eligible, done, journaled, &sum)
	return sum, err
}

// pool synthesises, in one process, the eligible dialogues that are not done, concurrency at a
// time, in row order, until max_dialogues succeed (counting *okCount): a dialogue starts only
// while the ones done and in flight could still fall short of it. record takes each as it
// finishes.
func (w *synthWorker) pool(ctx context.Context, dialogues []Dialogue, eligible []bool, done map[int]Entry, okCount *int, record func(Entry) error) error {
	cfg := w.cfg
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		e   Entry
		err error
	}
	results := make(chan result)
	inflight, next := 0, 0
	var firstErr error
	for {
		for firstErr == nil && inflight < cfg.Concurrency && next < len(dialogues) &&
			(cfg.MaxDialogues == 0 || *okCount+inflight < cfg.MaxDialogues) && runCtx.Err() == nil {
			i := next
			next++
			if _, ok := done[dialogues[i].SourceRow]; ok || !eligible[i] {
				continue
			}
			inflight++
			go func(d Dialogue) {
				e, err := w.dialogue(runCtx, d)
				results <- result{e, err}
			}(dialogues[i])
		}
		if inflight == 0 {
			break
		}
		r := <-results
		inflight--
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
				cancel()
			}
			continue
		}
		if firstErr != nil {
			continue
		}
		if err := record(r.e); err != nil {
			firstErr = err
			cancel()
		}
	}
	return firstErr
}

// rounds synthesises todo (the eligible dialogues not done, in row order) over the ranks of comm:
// each round takes the next ranks × concurrency dialogues (no more than max_dialogues still needs,
// so that, as in pool, no dialogue past the max_dialogues-th success is sampled), deals them
// round-robin over the ranks, each rank running its share concurrency at a time, and records the
// results in row order on every rank.
func (w *synthWorker) rounds(ctx context.Context, comm dist.Comm, todo []Dialogue, okCount *int, record func(Entry) error) error {
	cfg := w.cfg
	size := comm.Size()
	for next := 0; next < len(todo); {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := size * cfg.Concurrency
		if cfg.MaxDialogues > 0 {
			n = min(n, cfg.MaxDialogues-*okCount)
		}
		if n <= 0 {
			break
		}
		batch := todo[next:min(next+n, len(todo))]
		next += len(batch)
		shares, err := dist.Chunks(comm, size, func(r int) ([]Entry, error) {
			var mine []Dialogue
			for _, j := range dist.Share(len(batch), r, size) {
				mine = append(mine, batch[j])
			}
			return w.some(ctx, mine)
		})
		if err != nil {
			return err
		}
		for j := range batch {
			if err := record(shares[j%size][j/size]); err != nil {
				return err
			}
		}
	}
	return nil
}

// some synthesises ds, concurrency at a time, and returns their entries in the order of ds (the
// first error stops it).
func (w *synthWorker) some(ctx context.Context, ds []Dialogue) ([]Entry, error) {
	out := make([]Entry, len(ds))
	errs := make([]error, len(ds))
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, d := range ds {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if out[i], errs[i] = w.dialogue(runCtx, d); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	// The error that stopped the others, rather than a peer's context.Canceled.
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
		first = cmp.Or(first, err)
	}
	return out, first
}

// finishSynth picks the output rows from done and writes gatt.parquet and the summary (rank 0).
func finishSynth(comm dist.Comm, cfg SynthConfig, dialogues []Dialogue, eligible []bool, done map[int]Entry, journaled map[int]bool, sum *SynthSummary) error {
	// The output: the first max_dialogues successful rows, whatever order they finished in.
	var rows []Row
	lastUsed := len(dialogues) - 1
	n := 0
	for i, d := range dialogues {
		if cfg.MaxDialogues > 0 && n == cfg.MaxDialogues {
			lastUsed = i - 1
			break
		}
		if e, ok := done[d.SourceRow]; ok && e.Skipped == "" && eligible[i] {
			rows = append(rows, e.Rows...)
			n++
			if journaled[d.SourceRow] {
				sum.Resumed++
			}
		}
	}
	for i := 0; i <= lastUsed; i++ {
		switch e, ok := done[dialogues[i].SourceRow]; {
		case !eligible[i]:
			sum.Skipped[SkipFewTurns]++
		case ok && e.Skipped != "":
			sum.Skipped[e.Skipped]++
		}
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s: no dialogue could be synthesised (%d rows: %s)", cfg.Data.DatasetName, len(dialogues), skipWords(sum.Skipped))
	}
	SortRows(rows)
	sum.Dialogues, sum.Rows = n, len(rows)
	for _, r := range rows {
		if r.Terse {
			sum.TerseRows++
		}
	}
	return dist.LeaderDo(comm, func() error {
		if err := WriteParquet(filepath.Join(cfg.OutputDir, ParquetFile), rows); err != nil {
			return err
		}
		b, _ := json.MarshalIndent(sum, "", "  ")
		return atomicfile.WriteFile(filepath.Join(cfg.OutputDir, SummaryFile), append(b, '\n'))
	})
}

func entryWord(e Entry) string {
	if e.Skipped != "" {
		return "skipped, " + e.Skipped
	}
	return fmt.Sprintf("%d sample(s)", len(e.Rows))
}

func maxWord(n int) string {
	if n == 0 {
		return "all"
	}
	return fmt.Sprint(n)
}

func skipWords(m map[string]int) string {
	if len(m) == 0 {
		return "none skipped"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d skipped as %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// fingerprint hashes everything that decides a dialogue's content, so a journal is only resumed by
// the same synthesis. max_dialogues, concurrency, base_url and output_dir are left out: they change
// how much is done and where, not what.
func fingerprint(cfg SynthConfig, place Placement, lists Lists) (string, error) {
	b, err := json.Marshal(struct {
		Model, Dataset, Template, Backend, Served, RM string
		Columns                                       map[string]string
		MaxLength, MaxTurns, MaxNew, K                int
		Seed                                          int64
		Temperature, TopP                             float64
		Samples                                       string
		Place                                         Placement
		Lists                                         Lists
	}{cfg.ModelNameOrPath, cfg.Data.DatasetName, cfg.Data.ChatTemplate, cfg.Backend.Backend, cfg.ServedModelName, cfg.RewardModelNameOrPath,
		cfg.Data.Columns, cfg.Data.MaxLength, cfg.MaxTurns, cfg.MaxNewTokens, cfg.NumSamplesPerPrompt,
		cfg.Seed, cfg.Temperature, cfg.TopP, cfg.Samples, place, lists})
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8]), nil
}

// synthWorker samples one dialogue at a time; several run at once over a shared (concurrency-safe)
// generator and scorer.
type synthWorker struct {
	cfg    SynthConfig
	s      *sampler
	scorer convScorer
	lists  Lists
	place  Placement
	mode   SampleMode
	limit  int
}

// InstructionFor is the instruction of a source row: drawn from a generator seeded by (seed, row), so
// that it does not depend on which rows ran before, in what order, or in which run.
func InstructionFor(seed int64, row int, lists Lists) (Instruction, error) {
	return Sample(rand.New(rand.NewPCG(uint64(seed), uint64(row))), lists)
}

// turnSeed is the sampling seed of a row's turn t: a SplitMix64 hash, so that neighbouring rows and
// turns draw unrelated streams (K samples use turnSeed..turnSeed+K-1).
func turnSeed(seed int64, row, turn int) uint64 {
	z := uint64(seed) ^ uint64(row)*0x9e3779b97f4a7c15 ^ uint64(turn+1)*0xbf58476d1ce4e5b9
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (w *synthWorker) dialogue(ctx context.Context, d Dialogue) (Entry, error) {
	e := Entry{SourceRow: d.SourceRow}
	inst, err := InstructionFor(w.cfg.Seed, d.SourceRow, w.lists)
	if err != nil {
		return e, err
	}
	text := inst.Text()
	var replies []string
	for t := range d.Users {
		msgs := d.SamplingPrompt(text, replies)
		if w.s.count != nil {
			n, err := w.s.count(msgs)
			if err != nil {
				return e, fmt.Errorf("%s: row %d: %w", w.cfg.Data.DatasetName, d.SourceRow, err)
			}
			if n+w.cfg.MaxNewTokens > w.limit {
				break // this turn does not fit: the dialogue ends before it
			}
		}
		reply, err := w.reply(ctx, d, t, msgs)
		if err != nil {
			return e, err
		}
		replies = append(replies, reply)
	}
	if len(replies) < 2 {
		e.Skipped = SkipTooLong
		return e, nil
	}
	e.Rows, err = BuildRows(d, inst, w.place, w.mode, replies)
	return e, err
}

// reply samples K replies to msgs and keeps the reward model's best (the first when K is 1).
func (w *synthWorker) reply(ctx context.Context, d Dialogue, turn int, msgs []chat.Message) (string, error) {
	k := w.cfg.NumSamplesPerPrompt
	p := rlhf.Prompt{Messages: msgs, Source: w.cfg.Data.DatasetName, Row: d.SourceRow}
	out, err := w.s.gen.Generate(ctx, []rlhf.Prompt{p}, k, rlhf.Sampling{
		Temperature: w.cfg.Temperature, TopP: w.cfg.TopP, MaxNewTokens: w.cfg.MaxNewTokens, Seed: turnSeed(w.cfg.Seed, d.SourceRow, turn),
	})
	if err != nil {
		return "", fmt.Errorf("%s: row %d: turn %d: %w", w.cfg.Data.DatasetName, d.SourceRow, turn+1, err)
	}
	cands := out[0]
	best := 0
	if k > 1 {
		convs := make([][]data.Message, len(cands))
		for j, c := range cands {
			convs[j] = append(append([]data.Message(nil), msgs...), data.Message{Role: "assistant", Content: strings.TrimSpace(c)})
		}
		scores, err := w.scorer.Score(ctx, convs)
		if err != nil {
			return "", fmt.Errorf("%s: row %d: turn %d: reward model: %w", w.cfg.Data.DatasetName, d.SourceRow, turn+1, err)
		}
		if best = rlhf.Best(scores); best < 0 {
			return "", fmt.Errorf("%s: row %d: turn %d: the reward model scored every reply NaN", w.cfg.Data.DatasetName, d.SourceRow, turn+1)
		}
	}
	return strings.TrimSpace(cands[best]), nil
}
