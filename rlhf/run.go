package rlhf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/internal/atomicfile"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/sft"
	"github.com/alignkit/alignkit/train"
)

// RunConfig is `alignkit rlhf run`'s YAML: every sampling key (the policy, reward model, prompts,
// held-out prompts, K, temperature(s), ...), the loop's own keys, and an `sft:` section for the
// fine-tuning step of each round.
//
// The sft: section takes sft.Config's keys (the training loop's: learning_rate, max_steps,
// num_train_epochs, per_device_train_batch_size, ...; and packing, loss_mask, max_length,
// chat_template). The loop sets the keys that tie a round together, which the section must not set:
// model_name_or_path (the round's policy), dataset_name (the round's SFT set), output_dir
// (round-r/checkpoint), eval_dataset_name / eval_split, resume_from_checkpoint (set when a round's
// training resumes) and columns. chat_template, max_length and seed are taken from the top level
// when the section leaves them unset, so that the SFT step renders prompts as they were sampled.
//
// The held-out prompts (eval_dataset_name, or eval_split of dataset_name) are never sampled for
// training; each round's policy draws K samples of each at the first temperature, with the same
// seeds every round.
type RunConfig struct {
	SampleConfig `mapstructure:",squash"`
	// NumRounds is R, the number of rejection-sampling rounds.
	NumRounds int `mapstructure:"num_rounds" doc:"rejection-sampling rounds R: sample with the policy, select, fine-tune, evaluate (default 2)"`
	// PoolKeep is how many samples per prompt the SFT set of a round takes from the pool.
	PoolKeep int `mapstructure:"pool_keep" doc:"SFT targets per prompt: the best samples of this round and all earlier ones (Llama 2's fix for forgetting; default 1)"`
	// SFT configures each round's fine-tuning.
	SFT sft.Config `mapstructure:"sft" doc:"fine-tuning step of each round (sft keys; the loop sets model_name_or_path, dataset_name and output_dir)"`
}

// DefaultRunConfig is what a YAML file that sets nothing means. Load a config over it.
func DefaultRunConfig() RunConfig {
	return RunConfig{SampleConfig: DefaultSampleConfig(), NumRounds: 2, PoolKeep: 1}
}

// Validate checks every key and returns one error line naming the first bad one.
func (c RunConfig) Validate() error {
	if err := c.SampleConfig.Validate(); err != nil {
		return err
	}
	s := c.SFT
	switch {
	case c.Backend != BackendLocal:
		return fmt.Errorf("backend %s: rlhf run samples with the policy it has just fine-tuned, which needs backend local", c.Backend)
	case c.Data.EvalDatasetName == "" && c.Data.EvalSplit == 0:
		return errors.New("eval_dataset_name / eval_split: set one: each round's policy is scored on held-out prompts")
	case c.NumRounds < 1:
		return fmt.Errorf("num_rounds %d: want at least 1", c.NumRounds)
	case c.PoolKeep < 1:
		return fmt.Errorf("pool_keep %d: want at least 1 sample per prompt", c.PoolKeep)
	case s.ModelNameOrPath != "":
		return errors.New("sft.model_name_or_path: set by the loop (the current policy); use model_name_or_path at the top level")
	case s.Data.DatasetName != "":
		return errors.New("sft.dataset_name: set by the loop (the round's selected samples); use dataset_name at the top level for the prompts")
	case s.Data.EvalDatasetName != "" || s.Data.EvalSplit != 0:
		return errors.New("sft.eval_dataset_name / sft.eval_split: not used: rounds are evaluated by reward on the top-level held-out prompts")
	case s.OutputDir != "":
		return errors.New("sft.output_dir: set by the loop (output_dir/round-r/checkpoint)")
	case s.ResumeFromCheckpoint != "":
		return errors.New("sft.resume_from_checkpoint: set by the loop when a round's training resumes")
	case len(s.Data.Columns) > 0:
		return errors.New("sft.columns: not used: the loop writes the SFT set with canonical column names")
	}
	probe := c.sftConfig(1, "policy", "sft.parquet")
	if err := probe.Validate(); err != nil {
		return fmt.Errorf("sft.%w", err)
	}
	return nil
}

// sftConfig is round r's fine-tuning configuration.
func (c RunConfig) sftConfig(r int, policy, dataset string) sft.Config {
	s := c.SFT
	s.ModelNameOrPath = policy
	s.Data.DatasetName = dataset
	s.OutputDir = filepath.Join(c.roundDir(r), "checkpoint")
	if s.Data.ChatTemplate == "" {
		s.Data.ChatTemplate = c.Data.ChatTemplate
	}
	if s.Data.MaxLength == 0 {
		s.Data.MaxLength = c.Data.MaxLength
	}
	if s.Seed == nil {
		seed := c.Seed
		s.Seed = &seed
	}
	return s
}

func (c RunConfig) roundDir(r int) string {
	return filepath.Join(c.OutputDir, fmt.Sprintf("round-%d", r))
}

// Stages of a round, in order. Round 0 has only eval (the starting policy's score).
const (
	StageSample = "sample" // round-r/samples: K scored samples per prompt from the current policy
	StageSelect = "select" // round-r/data: the pool with this round's samples, and the SFT set
	StageTrain  = "train"  // round-r/checkpoint: the policy fine-tuned on the SFT set
	StageEval   = "eval"   // round-r/eval: the new policy's samples on the held-out prompts, scored
)

var stages = []string{StageSample, StageSelect, StageTrain, StageEval}

// ErrInterrupted is matched (errors.Is) by the error Run returns when its context was cancelled.
var ErrInterrupted = errors.New("rlhf run interrupted")

// StateFile is output_dir/state.json: the last completed stage and the policy it left.
const StateFile = "state.json"

type runState struct {
	Round  int    `json:"round"`
	Stage  string `json:"stage"`
	Policy string `json:"policy"`
	// Config is the run's configuration (api_key excluded): a resume must use the same one, but
	// for num_rounds, which may grow to add rounds.
	Config map[string]any `json:"config"`
}

// next is the stage after (round, stage); ("", 0) is a run that has done nothing yet.
func next(round int, stage string) (int, string) {
	switch {
	case round == 0 && stage == "":
		return 0, StageEval
	case stage == StageEval:
		return round + 1, StageSample
	}
	return round, stages[slices.Index(stages, stage)+1]
}

// RoundSummary is one line of summary.json: the policy after round r (round 0: the starting one),
// scored on the held-out prompts, with what the round sampled and trained.
type RoundSummary struct {
	Round  int    `json:"round"`
	Policy string `json:"policy"`
	// EvalMeanReward is the mean reward of all K samples per held-out prompt; EvalMaxReward is the
	// mean over held-out prompts of the best of their K samples (the N = K point of Figure 7).
	EvalMeanReward float64 `json:"eval_mean_reward"`
	EvalMaxReward  float64 `json:"eval_max_reward"`
	// SampleMeanReward and SampleBestReward describe the round's training samples (drawn from the
	// previous policy); SFTExamples and SFTTrainLoss its fine-tuning. Absent for round 0.
	SampleMeanReward *float64 `json:"sample_mean_reward,omitempty"`
	SampleBestReward *float64 `json:"sample_best_reward,omitempty"`
	SFTExamples      *int     `json:"sft_examples,omitempty"`
	SFTTrainLoss     *float64 `json:"sft_train_loss,omitempty"`
}

// Run is `alignkit rlhf run`: Llama 2's iterative rejection-sampling fine-tuning. Round r = 1..R
// samples K completions per prompt with the current policy and scores them (round-r/samples), adds
// them to the pool of top samples of all rounds so far and writes the SFT set (round-r/data),
// fine-tunes the current policy on it (round-r/checkpoint, which becomes the policy), and scores the
// new policy's samples on the held-out prompts (round-r/eval). Round 0 scores the starting policy.
//
// state.json is rewritten atomically after each stage, so a killed run started again with the same
// config resumes at the stage where it stopped (a stopped fine-tuning from its last checkpoint).
// summary.json and summary.md (the per-round table, also printed) are rewritten after each eval.
//
// Its notes and each round's training progress go to the log writer among opts, which also go to
// each round's training loop.
//
// Under mpirun (dist.World of several ranks) every rank takes part in the sampling and evaluation
// (their prompts dealt over the ranks, as `rlhf sample` does) and in the fine-tuning (data-parallel,
// as `sft`); rank 0 alone reads and writes output_dir (state.json, the samples, the SFT set, the
// summaries) and tells the others what it found, so output_dir must be one directory that every
// rank sees at the same path (a shared file system on several machines), as for `sft`'s resume.
func Run(ctx context.Context, cfg RunConfig, opts ...train.Option) ([]RoundSummary, error) {
	return run(ctx, cfg, nil, opts...)
}

// run is Run calling afterStage (when non-nil) after each stage is complete and recorded in
// state.json; tests use it to stop a run at a chosen point.
func run(ctx context.Context, cfg RunConfig, afterStage func(round int, stage string), opts ...train.Option) ([]RoundSummary, error) {
	comm, err := dist.World()
	if err != nil {
		return nil, err
	}
	return runOn(ctx, comm, cfg, afterStage, opts...)
}

// runOn is run over the ranks of comm.
func runOn(ctx context.Context, comm dist.Comm, cfg RunConfig, afterStage func(round int, stage string), opts ...train.Option) ([]RoundSummary, error) {
	log := train.LogWriter(opts...)
	if comm.Rank() != 0 {
		log = io.Discard
	}
	opts = append(slices.Clip(opts), train.WithComm(comm)) // each round's fine-tuning runs on comm too
	cfg.Data = cfg.Data.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	prompts, evalPrompts, err := cfg.LoadPromptSets()
	if err != nil {
		return nil, err
	}
	if len(evalPrompts) == 0 {
		return nil, fmt.Errorf("%s: no held-out prompts", cfg.Data.DatasetName)
	}
	if prompts[0].Conversational() != evalPrompts[0].Conversational() {
		return nil, fmt.Errorf("the prompts are %s and the held-out prompts %s: want one kind", kind(prompts[0]), kind(evalPrompts[0]))
	}
	sc, err := cfg.LoadRewardModels()
	if err != nil {
		return nil, err
	}
	st, err := openStateOn(comm, cfg)
	if err != nil {
		return nil, err
	}
	if st.Round > cfg.NumRounds || st.Round == cfg.NumRounds && st.Stage == StageEval {
		fmt.Fprintf(log, "rlhf run: %s already holds all %d rounds\n", cfg.OutputDir, cfg.NumRounds)
		return cfg.writeSummaryOn(comm)
	}
	if st.Stage != "" {
		fmt.Fprintf(log, "rlhf run: resuming %s after round %d stage %s (policy %s)\n", cfg.OutputDir, st.Round, st.Stage, st.Policy)
	}
	fmt.Fprintf(log, "rlhf run: %d rounds, %d prompts (%d held out), K=%d\n", cfg.NumRounds, len(prompts), len(evalPrompts), cfg.NumSamplesPerPrompt)
	for {
		r, stage := next(st.Round, st.Stage)
		if r > cfg.NumRounds {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w before round %d stage %s (rerun with the same config to resume): %v", ErrInterrupted, r, stage, err)
		}
		fmt.Fprintf(log, "rlhf run: round %d: %s\n", r, stage)
		policy := st.Policy
		switch stage {
		case StageSample:
			err = cfg.sampleStage(ctx, comm, r, policy, prompts, sc, log)
		case StageSelect:
			err = dist.LeaderDo(comm, func() error { return cfg.selectStage(r, prompts, log) })
		case StageTrain:
			policy, err = cfg.trainStage(ctx, comm, r, policy, opts)
		case StageEval:
			err = cfg.evalStage(ctx, comm, r, policy, evalPrompts, sc, log)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w in round %d stage %s (rerun with the same config to resume): %v", ErrInterrupted, r, stage, err)
			}
			return nil, fmt.Errorf("round %d %s: %w", r, stage, err)
		}
		st.Round, st.Stage, st.Policy = r, stage, policy
		if err := dist.LeaderDo(comm, func() error { return atomicfile.WriteJSON(filepath.Join(cfg.OutputDir, StateFile), st) }); err != nil {
			return nil, err
		}
		if afterStage != nil {
			afterStage(r, stage)
		}
	}
	return cfg.writeSummaryOn(comm)
}

// openStateOn is openState on rank 0, whose state every rank receives.
func openStateOn(comm dist.Comm, cfg RunConfig) (*runState, error) {
	b, err := dist.OnLeader(comm, func() ([]byte, error) {
		st, err := openState(cfg)
		if err != nil {
			return nil, err
		}
		return json.Marshal(st)
	})
	if err != nil {
		return nil, err
	}
	var st runState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s from rank 0: %w", StateFile, err)
	}
	return &st, nil
}

// openState reads state.json, or starts one; a resumed run must have the same config.
func openState(cfg RunConfig) (*runState, error) {
	conf, err := configMap(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.OutputDir, StateFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
			return nil, fmt.Errorf("output_dir: %w", err)
		}
		st := &runState{Policy: cfg.ModelNameOrPath, Config: conf}
		return st, atomicfile.WriteJSON(path, st)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var st runState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if st.Stage != "" && slices.Index(stages, st.Stage) < 0 || st.Round < 0 {
		return nil, fmt.Errorf("%s: round %d stage %q: not a stage of this loop", path, st.Round, st.Stage)
	}
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		if k == "num_rounds" {
			continue
		}
		if !reflect.DeepEqual(conf[k], st.Config[k]) {
			return nil, fmt.Errorf("output_dir %s holds a run with %s = %v, this config has %v: resume with the same config (only num_rounds may change) or choose another output_dir",
				cfg.OutputDir, k, st.Config[k], conf[k])
		}
	}
	st.Config = conf
	return &st, nil
}

// configMap is the config by dotted key (as the YAML names them) with JSON-encoded values; fields
// tagged json:"-" (api_key) are left out.
func configMap(cfg RunConfig) (map[string]any, error) {
	out := map[string]any{}
	var walk func(v reflect.Value, prefix string) error
	walk = func(v reflect.Value, prefix string) error {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if name == "-" {
				continue
			}
			fv := v.Field(i)
			if strings.Contains(opts, "squash") || (f.Anonymous && name == "") {
				if err := walk(fv, prefix); err != nil {
					return err
				}
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if fv.Kind() == reflect.Struct {
				if err := walk(fv, prefix+name+"."); err != nil {
					return err
				}
				continue
			}
			b, err := json.Marshal(fv.Interface())
			if err != nil {
				return fmt.Errorf("encoding config key %s%s: %w", prefix, name, err)
			}
			var x any
			if err := json.Unmarshal(b, &x); err != nil {
				return err
			}
			out[prefix+name] = x
		}
		return nil
	}
	return out, walk(reflect.ValueOf(cfg), "")
}

func (c RunConfig) sampleStage(ctx context.Context, comm dist.Comm, r int, policy string, prompts []Prompt, sc Scorer, log io.Writer) error {
	gen, err := c.NewGenerator(ctx, policy, log)
	if err != nil {
		return err
	}
	temps := c.temperatures()
	s, err := SampleAllOn(ctx, comm, gen, sc, prompts, c.NumSamplesPerPrompt, temps, c.sampling(temps[0]), log)
	if err != nil {
		return err
	}
	return dist.LeaderDo(comm, func() error {
		_, err := WriteSamples(filepath.Join(c.roundDir(r), "samples"), s, c.WritePairs, len(c.Temperatures) > 0)
		return err
	})
}

// selectStage adds round r's samples to the pool of rounds 1..r-1 and writes round r's SFT set: per
// prompt, the pool_keep best samples seen so far.
func (c RunConfig) selectStage(r int, prompts []Prompt, log io.Writer) error {
	s, err := ReadSamples(filepath.Join(c.roundDir(r), "samples"))
	if err != nil {
		return err
	}
	var pool *Pool
	if r == 1 {
		pool, err = NewPool(c.PoolKeep)
	} else {
		pool, err = LoadPool(filepath.Join(c.roundDir(r-1), "data", "pool.json"))
	}
	if err != nil {
		return err
	}
	for i, p := range s.Prompts {
		var texts []string
		var rewards []float64
		for t := range s.Temperatures {
			texts = append(texts, s.Completions[t][i]...)
			rewards = append(rewards, s.Rewards[t][i]...)
		}
		if err := pool.Add(r, p.Key(), texts, rewards); err != nil {
			return err
		}
	}
	dir := filepath.Join(c.roundDir(r), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	byKey := map[string]Prompt{}
	for _, p := range prompts {
		byKey[p.Key()] = p
	}
	var rows []Prompt
	var answers []Sample
	fromEarlier := 0
	for _, ps := range pool.Samples() {
		p, ok := byKey[ps.Prompt]
		if !ok {
			return fmt.Errorf("the pool holds a prompt that is not in %s: %.60q", c.Data.DatasetName, ps.Prompt)
		}
		rows = append(rows, p)
		answers = append(answers, ps)
		if ps.Round < r {
			fromEarlier++
		}
	}
	if err := writeBest(filepath.Join(dir, "sft.parquet"), rows, func(i int) (string, float64) { return answers[i].Text, answers[i].Reward }); err != nil {
		return err
	}
	if err := pool.Save(filepath.Join(dir, "pool.json")); err != nil {
		return err
	}
	fmt.Fprintf(log, "rlhf run: round %d: SFT set of %d samples (%d from earlier rounds)\n", r, len(answers), fromEarlier)
	return nil
}

// trainStage fine-tunes policy on round r's SFT set; the checkpoint directory becomes the policy.
// Every rank trains (sft.Run is data-parallel over dist.World); rank 0 decides whether to resume.
func (c RunConfig) trainStage(ctx context.Context, comm dist.Comm, r int, policy string, opts []train.Option) (string, error) {
	log := train.LogWriter(opts...)
	if comm.Rank() != 0 {
		log = io.Discard
	}
	scfg := c.sftConfig(r, policy, filepath.Join(c.roundDir(r), "data", "sft.parquet"))
	const trained = "trained"
	found, err := dist.OnLeader(comm, func() ([]byte, error) {
		if _, err := os.Stat(filepath.Join(scfg.OutputDir, "training_complete.json")); err == nil {
			return []byte(trained), nil // trained before the run stopped, not yet recorded
		}
		latest, err := train.LatestCheckpoint(scfg.OutputDir)
		return []byte(latest), err
	})
	if err != nil {
		return "", err
	}
	switch latest := string(found); latest {
	case trained:
		return scfg.OutputDir, nil
	case "":
	default:
		scfg.ResumeFromCheckpoint = "latest"
		fmt.Fprintf(log, "rlhf run: round %d: resuming fine-tuning from %s\n", r, latest)
	}
	if _, err := sft.Run(ctx, scfg, opts...); err != nil {
		return "", err
	}
	return scfg.OutputDir, nil
}

// EvalFile is round-r/eval/eval.json.
const EvalFile = "eval.json"

type evalStats struct {
	Policy     string  `json:"policy"`
	Prompts    int     `json:"prompts"`
	K          int     `json:"k"`
	MeanReward float64 `json:"mean_reward"`
	MaxReward  float64 `json:"max_reward"`
}

func (c RunConfig) evalStage(ctx context.Context, comm dist.Comm, r int, policy string, prompts []Prompt, sc Scorer, log io.Writer) error {
	gen, err := c.NewGenerator(ctx, policy, log)
	if err != nil {
		return err
	}
	t := c.temperatures()[0]
	s, err := SampleAllOn(ctx, comm, gen, sc, prompts, c.NumSamplesPerPrompt, []float64{t}, c.sampling(t), log)
	if err != nil {
		return err
	}
	return dist.LeaderDo(comm, func() error { return c.writeEval(r, policy, prompts, s, log) })
}

// writeEval writes round r's evaluation (samples and eval.json) and the summaries.
func (c RunConfig) writeEval(r int, policy string, prompts []Prompt, s *Sampled, log io.Writer) error {
	dir := filepath.Join(c.roundDir(r), "eval")
	if _, err := WriteSamples(dir, s, false, false); err != nil {
		return err
	}
	var sum, best float64
	for _, rs := range s.Rewards[0] {
		m := math.Inf(-1)
		for _, v := range rs {
			sum += v
			m = math.Max(m, v)
		}
		best += m
	}
	st := evalStats{Policy: policy, Prompts: len(prompts), K: s.K,
		MeanReward: sum / float64(len(prompts)*s.K), MaxReward: best / float64(len(prompts))}
	if err := atomicfile.WriteJSON(filepath.Join(dir, EvalFile), st); err != nil {
		return err
	}
	rows, err := c.writeSummary()
	if err != nil {
		return err
	}
	fmt.Fprint(log, SummaryMarkdown(rows))
	return nil
}

// writeSummaryOn is writeSummary on rank 0, whose rows every rank receives.
func (c RunConfig) writeSummaryOn(comm dist.Comm) ([]RoundSummary, error) {
	b, err := dist.OnLeader(comm, func() ([]byte, error) {
		rows, err := c.writeSummary()
		if err != nil {
			return nil, err
		}
		return json.Marshal(rows)
	})
	if err != nil {
		return nil, err
	}
	var rows []RoundSummary
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, fmt.Errorf("summary from rank 0: %w", err)
	}
	return rows, nil
}

// writeSummary gathers every evaluated round into summary.json and summary.md.
func (c RunConfig) writeSummary() ([]RoundSummary, error) {
	var rows []RoundSummary
	for r := 0; ; r++ {
		raw, err := os.ReadFile(filepath.Join(c.roundDir(r), "eval", EvalFile))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		var ev evalStats
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("reading round %d %s: %w", r, EvalFile, err)
		}
		row := RoundSummary{Round: r, Policy: ev.Policy, EvalMeanReward: ev.MeanReward, EvalMaxReward: ev.MaxReward}
		if r > 0 {
			if s, err := ReadSamples(filepath.Join(c.roundDir(r), "samples")); err == nil {
				var sum, best float64
				n := 0
				for i := range s.Prompts {
					_, b := s.Best(i)
					best += b
					for t := range s.Temperatures {
						for _, v := range s.Rewards[t][i] {
							sum += v
							n++
						}
					}
				}
				mean, bst := sum/float64(n), best/float64(len(s.Prompts))
				row.SampleMeanReward, row.SampleBestReward = &mean, &bst
			}
			var done struct {
				TrainLoss float64 `json:"train_loss"`
			}
			if raw, err := os.ReadFile(filepath.Join(c.roundDir(r), "checkpoint", "training_complete.json")); err == nil && json.Unmarshal(raw, &done) == nil {
				row.SFTTrainLoss = &done.TrainLoss
			}
			if raw, err := os.ReadFile(filepath.Join(c.roundDir(r), "data", "pool.json")); err == nil {
				var pf poolFile
				if json.Unmarshal(raw, &pf) == nil {
					n := len(pf.Samples)
					row.SFTExamples = &n
				}
			}
		}
		rows = append(rows, row)
	}
	if err := atomicfile.WriteJSON(filepath.Join(c.OutputDir, "summary.json"), map[string]any{"rounds": rows}); err != nil {
		return nil, err
	}
	if err := writeText(filepath.Join(c.OutputDir, "summary.md"), SummaryMarkdown(rows)); err != nil {
		return nil, err
	}
	return rows, nil
}

// SummaryMarkdown is the per-round table of summary.md.
func SummaryMarkdown(rows []RoundSummary) string {
	var b strings.Builder
	b.WriteString("| round | eval mean reward | eval max reward | sample mean reward | sample best reward | SFT examples | SFT train loss | policy |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---|\n")
	opt := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.4f", *v)
	}
	for _, r := range rows {
		n := "-"
		if r.SFTExamples != nil {
			n = fmt.Sprint(*r.SFTExamples)
		}
		fmt.Fprintf(&b, "| %d | %.4f | %.4f | %s | %s | %s | %s | %s |\n", r.Round, r.EvalMeanReward, r.EvalMaxReward,
			opt(r.SampleMeanReward), opt(r.SampleBestReward), n, opt(r.SFTTrainLoss), r.Policy)
	}
	return b.String()
}

func writeText(path, s string) error {
	return atomicfile.WriteFile(path, []byte(s))
}

// ReadSamples reads a finished sample set written by WriteSamples (its samples.parquet), refusing a
// directory without the completion marker.
func ReadSamples(dir string) (*Sampled, error) {
	if !SamplesComplete(dir) {
		return nil, fmt.Errorf("%s: no %s: the sample set is missing or was not finished", dir, CompleteFile)
	}
	path := filepath.Join(dir, SamplesFile)
	rows, err := data.ReadParquet(path)
	if err != nil {
		return nil, err
	}
	s := &Sampled{}
	tIndex := map[float64]int{}
	for _, row := range rows {
		f := row.Fields
		temp, ok := f["temperature"].(float64)
		if !ok {
			return nil, fmt.Errorf("%s: row %d: temperature: want a double", path, row.Index)
		}
		t, seen := tIndex[temp]
		if !seen {
			t = len(s.Temperatures)
			tIndex[temp] = t
			s.Temperatures = append(s.Temperatures, temp)
			s.Completions = append(s.Completions, nil)
			s.Rewards = append(s.Rewards, nil)
		}
		comps, err := stringList(f["completions"])
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: completions: %w", path, row.Index, err)
		}
		rewards, err := floatList(f["rewards"])
		if err != nil || len(rewards) != len(comps) {
			return nil, fmt.Errorf("%s: row %d: rewards: want %d doubles (%v)", path, row.Index, len(comps), err)
		}
		if s.K == 0 {
			s.K = len(comps)
		}
		if t == 0 {
			p := Prompt{Source: path, Row: row.Index}
			if v, ok := f["prompt"].(string); ok {
				p.Text = v
			} else if v, ok := f["messages"].([]any); ok {
				if p.Messages, err = messageList(v); err != nil {
					return nil, fmt.Errorf("%s: row %d: messages: %w", path, row.Index, err)
				}
			} else {
				return nil, fmt.Errorf("%s: row %d: no prompt or messages column", path, row.Index)
			}
			s.Prompts = append(s.Prompts, p)
		}
		s.Completions[t] = append(s.Completions[t], comps)
		s.Rewards[t] = append(s.Rewards[t], rewards)
	}
	for t := range s.Temperatures {
		if len(s.Completions[t]) != len(s.Prompts) {
			return nil, fmt.Errorf("%s: temperature %g has %d rows, want one per prompt (%d)", path, s.Temperatures[t], len(s.Completions[t]), len(s.Prompts))
		}
	}
	if len(s.Prompts) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return s, nil
}

func stringList(v any) ([]string, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list of strings")
	}
	out := make([]string, len(l))
	for i, x := range l {
		if out[i], ok = x.(string); !ok {
			return nil, fmt.Errorf("item %d: want a string", i)
		}
	}
	return out, nil
}

func floatList(v any) ([]float64, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list of doubles")
	}
	out := make([]float64, len(l))
	for i, x := range l {
		if out[i], ok = x.(float64); !ok {
			return nil, fmt.Errorf("item %d: want a double", i)
		}
	}
	return out, nil
}
