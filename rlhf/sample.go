package rlhf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/reward"
)

// SampleConfig is `alignkit rlhf sample`'s YAML (and the sampling part of `rlhf run`'s): the shared
// data keys, the policy and reward model, and the sampling keys.
type SampleConfig struct {
	// ModelNameOrPath is the policy to sample from (local backend).
	ModelNameOrPath string `mapstructure:"model_name_or_path" doc:"policy to sample from: an HF directory or .gguf (the local backend; the openai backend samples served_model_name)"`
	// RewardModelNameOrPath scores every sample.
	RewardModelNameOrPath string `mapstructure:"reward_model_name_or_path" doc:"reward model that scores every sample: an HF directory or .gguf with a score head (or reward_models)"`
	// RewardModels is the alternative to RewardModelNameOrPath: one model, or a helpfulness and a
	// safety model combined as Llama 2 does (reward.Select, per sample).
	RewardModels []reward.ModelSpec `mapstructure:"reward_models" doc:"reward models instead of reward_model_name_or_path: list of {path, role: helpfulness|safety}; two are combined as Llama 2 does (the safety score on safety prompts or when sigmoid(safety) < 0.15, else the helpfulness score)"`
	SafetyColumn string             `mapstructure:"safety_column" doc:"with two reward_models: the prompt dataset's column saying which prompts are safety prompts (default is_safety)"`
	// Data holds dataset_name (the prompts), eval_dataset_name / eval_split (held-out prompts, never
	// sampled for training), columns, chat_template, max_length (the SFT step's) and
	// max_train_samples / max_eval_samples (the first N prompts).
	Data data.Args `mapstructure:",squash"`
	// OutputDir receives the sample files.
	OutputDir string `mapstructure:"output_dir" doc:"directory for samples.parquet, best.parquet, pairs.parquet, reward_vs_k.json/.png"`
	// Seed drives sampling (sample j of prompt i draws with seed + i·K + j) and eval_split.
	Seed int64 `mapstructure:"seed" doc:"random seed: sample j of prompt i is drawn with seed + i*K + j; also seeds eval_split (default 42)"`

	NumSamplesPerPrompt int       `mapstructure:"num_samples_per_prompt" doc:"K, completions sampled per prompt (default 4)"`
	Temperature         float64   `mapstructure:"temperature" doc:"sampling temperature; 0 is greedy (default 1)"`
	Temperatures        []float64 `mapstructure:"temperatures" doc:"temperature sweep: sample at each and plot one reward-vs-K curve per temperature (overrides temperature)"`
	TopP                float64   `mapstructure:"top_p" doc:"nucleus sampling mass (default 1: off)"`
	TopK                int       `mapstructure:"top_k" doc:"sample among the K most likely tokens (0: off)"`
	MaxNewTokens        int       `mapstructure:"max_new_tokens" doc:"longest completion in tokens (default 256)"`

	// BackendConfig holds backend, base_url, served_model_name, api_key, concurrency, request_timeout,
	// max_retries, n_supported and extra_body.
	BackendConfig `mapstructure:",squash"`

	WritePairs bool `mapstructure:"write_pairs" doc:"also write pairs.parquet: best vs worst sample of each prompt as a preference pair"`
}

// DefaultSampleConfig is what a YAML file that sets nothing means. Load a config over it.
func DefaultSampleConfig() SampleConfig {
	retries := defaultMaxRetries
	return SampleConfig{
		Seed: 42, NumSamplesPerPrompt: 4, Temperature: 1, TopP: 1, MaxNewTokens: 256,
		BackendConfig: BackendConfig{Backend: BackendLocal, Concurrency: 4, RequestTimeout: 2 * time.Minute, MaxRetries: &retries},
		Data:          data.Args{}.Defaults(),
		SafetyColumn:  DefaultSafetyColumn,
	}
}

// DefaultSafetyColumn is safety_column's default, the column grpo reads too.
const DefaultSafetyColumn = "is_safety"

// rewardSpecs is the reward model list the keys name: reward_models, or
// reward_model_name_or_path as one model.
func (c SampleConfig) rewardSpecs() []reward.ModelSpec {
	if len(c.RewardModels) > 0 {
		return c.RewardModels
	}
	return []reward.ModelSpec{{Path: c.RewardModelNameOrPath, Role: reward.RoleHelpfulness}}
}

// LoadRewardModels loads the reward model(s) the keys name; errors name the key at fault.
func (c SampleConfig) LoadRewardModels() (*RewardModels, error) {
	rm, err := LoadRewardModels(c.rewardSpecs(), c.Data.ChatTemplate)
	if err != nil && len(c.RewardModels) == 0 {
		return nil, fmt.Errorf("reward_model_name_or_path: %w", err)
	}
	return rm, err
}

// setSafety reads the safety flags of prompts, read from path (split), when two reward models
// are combined; otherwise it does nothing.
func (c SampleConfig) setSafety(prompts []Prompt, path, split string) error {
	if len(c.RewardModels) != 2 {
		return nil
	}
	col := c.SafetyColumn
	if col == "" {
		col = DefaultSafetyColumn
	}
	return LoadSafety(prompts, path, split, col)
}

// temperatures are the sweep's temperatures, or the one temperature.
func (c SampleConfig) temperatures() []float64 {
	if len(c.Temperatures) > 0 {
		return c.Temperatures
	}
	return []float64{c.Temperature}
}

// sampling is the sampling at temperature t.
func (c SampleConfig) sampling(t float64) Sampling {
	return Sampling{Temperature: t, TopP: c.TopP, TopK: c.TopK, MaxNewTokens: c.MaxNewTokens, Seed: uint64(c.Seed)}
}

// Validate checks every key and returns one error line naming the first bad one.
func (c SampleConfig) Validate() error {
	if err := checkK(c.NumSamplesPerPrompt); err != nil {
		return err
	}
	switch {
	case c.RewardModelNameOrPath != "" && len(c.RewardModels) > 0:
		return errors.New("reward_model_name_or_path, reward_models: both are set; use one (reward_models for a helpfulness and a safety model)")
	case c.RewardModelNameOrPath == "" && len(c.RewardModels) == 0:
		return errors.New("reward_model_name_or_path: must be set (the reward model that scores the samples)")
	case c.OutputDir == "":
		return errors.New("output_dir: must be set")
	case c.Backend != BackendLocal && c.Backend != BackendOpenAI:
		return fmt.Errorf("backend %q: want local or openai", c.Backend)
	case c.Backend == BackendLocal && c.ModelNameOrPath == "":
		return errors.New("model_name_or_path: must be set for the local backend (the policy to sample from)")
	case c.Backend == BackendOpenAI && c.ResolvedBaseURL() == "":
		return errors.New("base_url: must be set for the openai backend (or OPENAI_BASE_URL), e.g. http://127.0.0.1:8080/v1")
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency %d: want at least 1", c.Concurrency)
	case c.Retries() < 0:
		return fmt.Errorf("max_retries %d: want >= 0", c.Retries())
	case c.RequestTimeout <= 0:
		return fmt.Errorf("request_timeout %s: want a positive duration such as 60s", c.RequestTimeout)
	}
	for _, t := range c.temperatures() {
		if err := c.sampling(t).Validate(); err != nil {
			return err
		}
	}
	if err := reward.ValidateSpecs(c.RewardModels); err != nil {
		return err
	}
	return c.Data.Defaults().Validate()
}

// LoadPromptSets reads the prompts: the sampling prompts and the held-out ones (nil without
// eval_dataset_name or eval_split), each capped by max_train_samples / max_eval_samples.
func (c SampleConfig) LoadPromptSets() (train, eval []Prompt, err error) {
	a := c.Data.Defaults()
	all, err := LoadPromptsSplit(a.DatasetName, a.DatasetTrainSplit, a.Columns)
	if err != nil {
		return nil, nil, err
	}
	if err := c.setSafety(all, a.DatasetName, a.DatasetTrainSplit); err != nil {
		return nil, nil, err
	}
	train = all
	switch {
	case a.EvalDatasetName != "":
		if eval, err = LoadPromptsSplit(a.EvalDatasetName, a.DatasetTestSplit, a.Columns); err != nil {
			return nil, nil, err
		}
		if err := c.setSafety(eval, a.EvalDatasetName, a.DatasetTestSplit); err != nil {
			return nil, nil, err
		}
	case a.EvalSplit > 0:
		if len(all) < 2 {
			return nil, nil, fmt.Errorf("%s: eval_split %g needs at least 2 prompts, the file has %d", a.DatasetName, a.EvalSplit, len(all))
		}
		tr, ev, err := data.SplitIndices(len(all), a.EvalSplit, uint64(c.Seed))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", a.DatasetName, err)
		}
		train, eval = pick(all, tr), pick(all, ev)
	}
	return capPrompts(train, a.MaxTrainSamples), capPrompts(eval, a.MaxEvalSamples), nil
}

func pick(ps []Prompt, idx []int) []Prompt {
	out := make([]Prompt, len(idx))
	for i, j := range idx {
		out[i] = ps[j]
	}
	return out
}

func capPrompts(ps []Prompt, n int) []Prompt {
	if n > 0 && n < len(ps) {
		return ps[:n]
	}
	return ps
}

// NewGenerator builds the configured backend for policy (the local backend's checkpoint path).
func (c SampleConfig) NewGenerator(ctx context.Context, policy string, log io.Writer) (Generator, error) {
	if c.Backend == BackendOpenAI {
		o, err := c.BackendConfig.NewOpenAI(ctx, log)
		if err != nil {
			return nil, err // not a typed nil *OpenAI inside the interface
		}
		return o, nil
	}
	ck, err := checkpoint.OpenInference(ctx, policy, "")
	if err != nil {
		return nil, fmt.Errorf("model_name_or_path: %w", err)
	}
	return NewLocal(ck, c.Data.ChatTemplate)
}

// Sampled is every prompt's K scored samples at each temperature.
type Sampled struct {
	Prompts      []Prompt
	K            int
	Temperatures []float64
	// Completions[t][i][j] is sample j of prompt i at Temperatures[t]; Rewards likewise.
	Completions [][][]string
	Rewards     [][][]float64
	// With a DetailedScorer of two reward models: RewardModels are the models, ModelRewards[k][t][i][j]
	// sample j's score by RewardModels[k], and UsedSafety[t][i][j] whether Rewards took the safety
	// score. All nil with one reward model.
	RewardModels []reward.ModelSpec
	ModelRewards [][][][]float64
	UsedSafety   [][][]bool
}

// sampleChunk is the number of prompts generated and scored between progress lines (and checks of
// the context).
const sampleChunk = 16

// SampleAll samples K completions of every prompt at each temperature and scores them all. Under
// mpirun (dist.World of several ranks) the chunks of prompts are dealt over the ranks and every rank
// returns the whole result, in prompt order: the same chunks with the same seeds as one process, so
// the same samples.
func SampleAll(ctx context.Context, gen Generator, sc Scorer, prompts []Prompt, k int, temps []float64, base Sampling, log io.Writer) (*Sampled, error) {
	comm, err := dist.World()
	if err != nil {
		return nil, err
	}
	return SampleAllOn(ctx, comm, gen, sc, prompts, k, temps, base, log)
}

// sampledChunk is one chunk's completions and rewards, as they travel between ranks.
type sampledChunk struct {
	Completions [][]string
	Rewards     [][]float64
	// ModelRewards[k][i] and UsedSafety[i] are kept with two reward models (Sampled's).
	ModelRewards [][][]float64
	UsedSafety   [][]bool
	// TooLong holds, by index in the whole prompt set, the prompts the server rejected as longer
	// than its context, with its message.
	TooLong map[int]string
}

// SampleAllOn is SampleAll over the ranks of comm; log is written by rank 0 only.
func SampleAllOn(ctx context.Context, comm dist.Comm, gen Generator, sc Scorer, prompts []Prompt, k int, temps []float64, base Sampling, log io.Writer) (*Sampled, error) {
	if err := checkK(k); err != nil {
		return nil, err
	}
	if len(prompts) == 0 {
		return nil, errors.New("no prompts to sample")
	}
	if log == nil || comm.Rank() != 0 {
		log = io.Discard
	}
	prompts, err := fitPrompts(gen, prompts, base.MaxNewTokens, log)
	if err != nil {
		return nil, err
	}
	chunk := sampleChunk
	if o, ok := gen.(*OpenAI); ok {
		chunk = max(chunk, 4*o.cfg.Concurrency) // keep every connection busy
	}
	out := &Sampled{Prompts: prompts, K: k, Temperatures: temps}
	detailed, _ := sc.(DetailedScorer)
	if detailed != nil && len(detailed.Specs()) < 2 {
		detailed = nil // one model: its score is the reward
	}
	if detailed != nil {
		out.RewardModels = detailed.Specs()
		out.ModelRewards = make([][][][]float64, len(out.RewardModels))
	}
	skipper, canSkip := gen.(interface {
		GenerateSkipping(context.Context, []Prompt, int, Sampling) ([][]string, map[int]string, error)
	})
	tooLong := map[int]string{} // prompt index -> the server's rejection
	for _, t := range temps {
		s := base
		s.Temperature = t
		start := time.Now()
		nChunks := (len(prompts) + chunk - 1) / chunk
		chunks, err := dist.Chunks(comm, nChunks, func(c int) (sampledChunk, error) {
			i0 := c * chunk
			i1 := min(len(prompts), i0+chunk)
			// Seeds are Seed + i·K + j with i the prompt's index in the whole set.
			cs := s
			cs.Seed = s.Seed + uint64(i0*k)
			var got [][]string
			var long map[int]string
			var err error
			if canSkip {
				got, long, err = skipper.GenerateSkipping(ctx, prompts[i0:i1], k, cs)
			} else {
				got, err = gen.Generate(ctx, prompts[i0:i1], k, cs)
			}
			if err != nil {
				return sampledChunk{}, err
			}
			var res sampledChunk
			for i, texts := range got {
				if msg, ok := long[i]; ok {
					if res.TooLong == nil {
						res.TooLong = map[int]string{}
					}
					res.TooLong[i0+i] = msg
					res.Completions = append(res.Completions, nil)
					res.Rewards = append(res.Rewards, nil)
					res.addDetail(nil)
					continue
				}
				if len(texts) != k {
					return res, fmt.Errorf("%s: the backend returned %d completions, want %d", prompts[i0+i].where(), len(texts), k)
				}
				var r []float64
				if detailed != nil {
					d, err := detailed.ScoreDetailed(ctx, prompts[i0+i], texts)
					if err != nil {
						return res, err
					}
					r = d.Reward
					res.addDetail(&d)
				} else if r, err = sc.Score(ctx, prompts[i0+i], texts); err != nil {
					return res, err
				}
				for j, v := range r {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						return res, fmt.Errorf("%s: sample %d: reward %v is not finite", prompts[i0+i].where(), j, v)
					}
				}
				res.Completions = append(res.Completions, texts)
				res.Rewards = append(res.Rewards, r)
			}
			if comm.Size() > 1 {
				fmt.Fprintf(log, "sampled prompts %d-%d of %d x %d at temperature %g on rank 0 of %d (%s)\n", i0+1, i1, len(prompts), k, t, comm.Size(), time.Since(start).Round(time.Millisecond))
			} else {
				fmt.Fprintf(log, "sampled %d/%d prompts x %d at temperature %g (%s)\n", i1, len(prompts), k, t, time.Since(start).Round(time.Millisecond))
			}
			return res, nil
		})
		if err != nil {
			return nil, err
		}
		comps := make([][]string, 0, len(prompts))
		rewards := make([][]float64, 0, len(prompts))
		var used [][]bool
		models := make([][][]float64, len(out.ModelRewards))
		for _, c := range chunks {
			comps = append(comps, c.Completions...)
			rewards = append(rewards, c.Rewards...)
			used = append(used, c.UsedSafety...)
			for m := range models {
				models[m] = append(models[m], c.ModelRewards[m]...)
			}
			maps.Copy(tooLong, c.TooLong)
		}
		out.Completions = append(out.Completions, comps)
		out.Rewards = append(out.Rewards, rewards)
		if detailed != nil {
			out.UsedSafety = append(out.UsedSafety, used)
			for m := range models {
				out.ModelRewards[m] = append(out.ModelRewards[m], models[m])
			}
		}
	}
	return dropTooLong(out, tooLong, log)
}

// addDetail appends one prompt's per-model scores (nil for a skipped prompt) when d or the chunk
// holds some. It is called before the prompt's Rewards row is appended (after it, for a skipped
// prompt).
func (c *sampledChunk) addDetail(d *reward.Scores) {
	if d == nil {
		if c.UsedSafety != nil {
			c.UsedSafety = append(c.UsedSafety, nil)
			for m := range c.ModelRewards {
				c.ModelRewards[m] = append(c.ModelRewards[m], nil)
			}
		}
		return
	}
	if c.ModelRewards == nil {
		// Earlier prompts of the chunk were skipped: give them their nil rows.
		c.ModelRewards = make([][][]float64, len(d.Model))
		for m := range c.ModelRewards {
			c.ModelRewards[m] = make([][]float64, len(c.Rewards))
		}
		c.UsedSafety = make([][]bool, len(c.Rewards))
	}
	for m := range d.Model {
		c.ModelRewards[m] = append(c.ModelRewards[m], d.Model[m])
	}
	c.UsedSafety = append(c.UsedSafety, d.UsedSafety)
}

// dropTooLong removes the prompts a server rejected as longer than its context (at any
// temperature) from every temperature's results, saying how many, as fitPrompts does for the local
// backend; when none is left it is an error.
func dropTooLong(s *Sampled, tooLong map[int]string, log io.Writer) (*Sampled, error) {
	if len(tooLong) == 0 {
		return s, nil
	}
	first := slices.Min(slices.Collect(maps.Keys(tooLong)))
	if len(tooLong) == len(s.Prompts) {
		return nil, fmt.Errorf("%s: the server rejected every prompt as longer than its context: %s", s.Prompts[0].Source, tooLong[first])
	}
	keep := make([]int, 0, len(s.Prompts)-len(tooLong))
	for i := range s.Prompts {
		if _, ok := tooLong[i]; !ok {
			keep = append(keep, i)
		}
	}
	out := &Sampled{K: s.K, Temperatures: s.Temperatures, RewardModels: s.RewardModels}
	if s.ModelRewards != nil {
		out.ModelRewards = make([][][][]float64, len(s.ModelRewards))
	}
	for _, i := range keep {
		out.Prompts = append(out.Prompts, s.Prompts[i])
	}
	for t := range s.Completions {
		var cs [][]string
		var rs [][]float64
		var us [][]bool
		for _, i := range keep {
			cs = append(cs, s.Completions[t][i])
			rs = append(rs, s.Rewards[t][i])
			if s.UsedSafety != nil {
				us = append(us, s.UsedSafety[t][i])
			}
		}
		out.Completions = append(out.Completions, cs)
		out.Rewards = append(out.Rewards, rs)
		if s.UsedSafety != nil {
			out.UsedSafety = append(out.UsedSafety, us)
			for m := range s.ModelRewards {
				var ms [][]float64
				for _, i := range keep {
					ms = append(ms, s.ModelRewards[m][t][i])
				}
				out.ModelRewards[m] = append(out.ModelRewards[m], ms)
			}
		}
	}
	fmt.Fprintf(log, "skipped %d of %d prompts the server rejected as longer than its context (first: %s)\n",
		len(tooLong), len(s.Prompts), tooLong[first])
	return out, nil
}

// fitPrompts drops, for the local backend, the prompts that leave no room for max_new_tokens within
// the model's context (as TRL drops prompts over max_prompt_length), saying how many; an unusable
// prompt (a conversation without a chat template) is an error. Other backends get every prompt.
func fitPrompts(gen Generator, prompts []Prompt, maxNew int, log io.Writer) ([]Prompt, error) {
	l, ok := gen.(*Local)
	if !ok {
		return prompts, nil
	}
	limit := l.MaxPositions() - maxNew
	out := make([]Prompt, 0, len(prompts))
	for _, p := range prompts {
		ids, err := l.Encode(p)
		if err != nil {
			return nil, err
		}
		if len(ids) <= limit {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: every prompt is longer than %d tokens: max_position_embeddings %d leaves no room for max_new_tokens %d",
			prompts[0].Source, limit, l.MaxPositions(), maxNew)
	}
	if n := len(prompts) - len(out); n > 0 {
		fmt.Fprintf(log, "skipped %d of %d prompts longer than %d tokens (max_position_embeddings %d - max_new_tokens %d)\n",
			n, len(prompts), limit, l.MaxPositions(), maxNew)
	}
	return out, nil
}

// SampleResult is what RunSample wrote.
type SampleResult struct {
	*Sampled
	Files []string
}

// RunSample is `alignkit rlhf sample`: it samples K completions per prompt with the policy (at each
// temperature of a sweep), scores them with the reward model, and writes the sample files into
// output_dir (see WriteSamples). Everything is checked and loaded before output_dir is touched.
func RunSample(ctx context.Context, cfg SampleConfig, log io.Writer) (*SampleResult, error) {
	if log == nil {
		log = os.Stderr
	}
	cfg.Data = cfg.Data.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	prompts, _, err := cfg.LoadPromptSets()
	if err != nil {
		return nil, err
	}
	// The backend first: an unreachable server fails before the reward model is loaded.
	gen, err := cfg.NewGenerator(ctx, cfg.ModelNameOrPath, log)
	if err != nil {
		return nil, err
	}
	sc, err := cfg.LoadRewardModels()
	if err != nil {
		return nil, err
	}
	temps := cfg.temperatures()
	fmt.Fprintf(log, "rlhf sample: %d prompts from %s, K=%d, temperatures %s, %s backend\n",
		len(prompts), cfg.Data.DatasetName, cfg.NumSamplesPerPrompt, joinFloats(temps), cfg.Backend)
	s, err := SampleAll(ctx, gen, sc, prompts, cfg.NumSamplesPerPrompt, temps, cfg.sampling(temps[0]), log)
	if err != nil {
		return nil, err
	}
	// Every rank holds the whole result; rank 0 writes it.
	if comm, err := dist.World(); err != nil || comm.Rank() != 0 {
		return &SampleResult{Sampled: s}, err
	}
	files, err := WriteSamples(cfg.OutputDir, s, cfg.WritePairs, len(cfg.Temperatures) > 0)
	if err != nil {
		return nil, err
	}
	return &SampleResult{Sampled: s, Files: files}, nil
}

func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}
