package grpo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/tokenizer"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/train"
)

// Task is GRPO as a train.Task: an example is a prompt; each micro-batch samples num_generations
// completions of each of its prompts with the current policy, scores them and takes the clipped
// surrogate's gradient.
type Task struct {
	// describe is recipe.Base.Describe's line for the job's report.
	describe string
	cfg      Config
	loss     LossConfig
	policy   *lm.Model
	// ref is the frozen initial policy (nil when beta is 0).
	ref *lm.Model
	gen *rlhf.Local
	// served samples the rollouts from an OpenAI server following the policy (backend openai);
	// nil samples them with gen.
	served *rlhf.ServedPolicy
	tok    *tokenizer.Tokenizer
	// chatTemplate is the template the prompts were rendered with when it is not the policy's own.
	chatTemplate string

	prompts []rlhf.Prompt
	ids     [][]int32        // each prompt's tokens
	fields  []map[string]any // each prompt's dataset row

	funcs    []Func
	names    []string           // metric name of each reward component
	models   *rlhf.RewardModels // nil without reward_models
	weights  []float64
	pad      int32
	rollouts map[int]*rollout // the last generation of each micro-batch position (num_iterations > 1)
	log      io.Writer
}

// rollout is one micro-batch's sampled completions, scored, laid out as a training batch.
type rollout struct {
	batch  *data.Batch
	starts []int // per row: the position whose target is the first completion token
	lens   []int // per row: completion tokens
	adv    []float64
	old    [][]float64 // the sampling policy's log-probs (num_iterations > 1), else nil
	ref    [][]float64 // the reference's (beta > 0), else nil
	values map[string]float64
}

var _ recipe.Prepare[Config] = Prepare

// Prepare loads the policy (and with beta > 0 its frozen copy as the reference), the prompts, the
// reward functions and models, and checks what can be checked before training. It writes nothing.
func Prepare(ctx context.Context, cfg Config, opts ...train.Option) (*recipe.Job, error) {
	if err := rlhf.CheckServedRanks(cfg.Rollouts, opts...); err != nil {
		return nil, err
	}
	t, err := newTask(ctx, cfg, train.LogWriter(opts...))
	if err != nil {
		return nil, err
	}
	args := t.cfg.Args
	args.PerDeviceTrainBatchSize /= t.cfg.NumGenerations // the loop counts prompts
	report := []string{fmt.Sprintf("grpo: %d prompts from %s, %d completions each (%d prompts, %d completions per micro-batch), %d reward(s)",
		len(t.prompts), cfg.DatasetName, t.cfg.NumGenerations, args.PerDeviceTrainBatchSize, t.cfg.PerDeviceTrainBatchSize, len(t.weights))}
	job := &recipe.Job{Args: args, Task: t, Report: recipe.Lines(report, t.describe)}
	if t.served != nil {
		job.Close = t.served.Close // the server drops the last policy and its snapshot goes
	}
	return job, nil
}

// Run is `alignkit grpo`: Prepare, then the shared training loop, which writes output_dir
// (metrics.jsonl with TRL's reward, reward_std, rewards/<name>/mean, kl, clip_ratio names,
// checkpoints, the final model).
func Run(ctx context.Context, cfg Config, opts ...train.Option) (train.Result, error) {
	return recipe.Run(ctx, Prepare, cfg, opts...)
}

func newTask(ctx context.Context, cfg Config, log io.Writer) (*Task, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Defaults()
	t := &Task{cfg: cfg, loss: cfg.Loss(), log: log, rollouts: map[int]*rollout{}}
	for i, spec := range cfg.RewardFuncs {
		f, err := NewFunc(spec, i, cfg.MaxCompletionLength)
		if err != nil {
			return nil, err
		}
		t.funcs = append(t.funcs, f)
		t.names = append(t.names, fmt.Sprintf("rewards/%s/mean", uniqueName(spec.Name, i, cfg.RewardFuncs)))
	}
	if len(cfg.RewardModels) > 0 {
		t.names = append(t.names, "rewards/reward_model/mean")
	}
	t.weights = cfg.RewardWeights
	if t.weights == nil {
		t.weights = make([]float64, len(t.names))
		for i := range t.weights {
			t.weights[i] = 1
		}
	}

	base, err := recipe.Open(ctx, "model_name_or_path", cfg.ModelNameOrPath, cfg.Model, cfg.ChatTemplate)
	if err != nil {
		return nil, err
	}
	if err := base.Adapt(uint64(*cfg.Seed)); err != nil {
		return nil, err
	}
	t.describe = base.Describe()
	ck := base.Ckpt
	t.tok, t.chatTemplate, t.pad = ck.Tok, base.ChatTemplate, base.Pad
	if t.gen, err = rlhf.NewLocal(ck, cfg.ChatTemplate); err != nil {
		return nil, fmt.Errorf("model_name_or_path: %w", err)
	}
	if cfg.Rollouts.Backend == rlhf.BackendOpenAI {
		save := func(dir string) error { return recipe.Save(dir, t.policy, t.chatTemplate) }
		if t.served, err = rlhf.NewRolloutServer(ctx, cfg.Rollouts, ck, cfg.OutputDir, save, t.gen, log); err != nil {
			return nil, err
		}
	}

	// Prompts, with their dataset rows for the reward functions (read once, stopping on a signal),
	// and the reward models: one is used as is; two are combined as Llama 2 does.
	ps, models, err := cfg.RLPromptArgs.Load(ctx, t.gen, cfg.MaxCompletionLength, t.gen.MaxPositions(), "grpo", "max_completion_length", log)
	if err != nil {
		return nil, err
	}
	t.prompts, t.ids, t.models = ps.Prompts, ps.IDs, models
	for _, p := range t.prompts {
		t.fields = append(t.fields, ps.Rows[p.Row].Fields)
	}

	rows2 := cfg.PerDeviceTrainBatchSize // completions per micro-batch: the graph's height
	if cfg.Beta != 0 {
		// The reference is the initial policy: with LoRA the base with the adapter off, sharing the
		// frozen weights (training moves only the adapter), as TRL; otherwise a copy of the weights.
		w := ck.Weights
		if ck.Adapter == nil {
			w = w.Clone()
		}
		t.ref = lm.New(&checkpoint.Model{Weights: w, Tok: ck.Tok, Dir: ck.Dir, Source: ck.Source}, rows2)
	}
	t.policy = lm.New(ck, rows2)
	return t, nil
}

// uniqueName is a reward function's metric name: its name, with its index when another function
// of reward_funcs has the same name.
func uniqueName(name string, i int, specs []FuncSpec) string {
	for j, s := range specs {
		if j != i && s.Name == name {
			return fmt.Sprintf("%s_%d", name, i)
		}
	}
	return name
}

// BarMetrics puts the mean reward and the KL on the progress bar.
func (t *Task) BarMetrics() []string { return []string{"reward", "kl"} }

// Params are the policy's tensors.
func (t *Task) Params() []train.Param { return t.policy.Params() }

// NumExamples is the number of prompts.
func (t *Task) NumExamples() int { return len(t.prompts) }

// NumEvalExamples is 0: GRPO has no evaluation set.
func (t *Task) NumEvalExamples() int { return 0 }

// Eval is never called (no evaluation set).
func (t *Task) Eval(context.Context, train.Batch) (train.Metrics, error) {
	return train.Metrics{}, fmt.Errorf("grpo: no evaluation data")
}

// SaveModel writes the policy as an HF directory, with the chat template the prompts were rendered
// with when that is not the policy's own.
func (t *Task) SaveModel(dir string) error {
	return recipe.Save(dir, t.policy, t.chatTemplate)
}

// Step samples (on the first of every num_iterations steps; the others reuse that micro-batch
// position's completions, as TRL's num_iterations does) and takes the loss's gradient.
func (t *Task) Step(ctx context.Context, b train.Batch, grads [][]float32, scale float32) (train.Metrics, error) {
	if err := ctx.Err(); err != nil {
		return train.Metrics{}, err
	}
	t.policy.SetDropoutSeed(model.DropoutSeed(b.Seed, b.Step, b.Micro)) // LoRA dropout, resumable
	ro := t.rollouts[b.Micro]
	if (b.Step-1)%t.cfg.NumIterations == 0 || ro == nil {
		var err error
		if ro, err = t.sample(ctx, b); err != nil {
			return train.Metrics{}, err
		}
		if t.cfg.NumIterations > 1 {
			t.rollouts[b.Micro] = ro
		}
	}
	var out Output
	T := ro.batch.T
	obj := func(st model.Stats) (float64, []float64, []float64, error) {
		seqs := make([]Seq, len(ro.lens))
		for k := range seqs {
			lo := k*T + ro.starts[k]
			seqs[k] = Seq{LogProbs: st.TokenLogProb[lo : lo+ro.lens[k]], Advantage: ro.adv[k]}
			if ro.old != nil {
				seqs[k].Old = ro.old[k]
			}
			if ro.ref != nil {
				seqs[k].Ref = ro.ref[k]
			}
		}
		o, err := Loss(t.loss, seqs)
		if err != nil {
			return 0, nil, nil, err
		}
		out = o
		d := make([]float64, len(st.TokenLogProb))
		for k, dk := range o.DLogProbs {
			copy(d[k*T+ro.starts[k]:], dk)
		}
		return o.Loss, d, nil, nil
	}
	loss, _, err := t.policy.Run(ro.batch, model.LMHead, obj, grads, scale)
	if err != nil {
		return train.Metrics{}, err
	}
	m := train.Metrics{Loss: loss, Tokens: out.Tokens, Values: map[string]float64{}, Weights: map[string]float64{}}
	for k, v := range ro.values {
		m.Values[k] = v
	}
	if t.loss.Beta != 0 {
		m.Values["kl"], m.Weights["kl"] = out.KL, float64(out.Tokens)
	}
	for k, v := range map[string]float64{"clip_ratio/low_mean": out.ClipLow, "clip_ratio/high_mean": out.ClipHigh, "clip_ratio/region_mean": out.ClipRegion} {
		m.Values[k], m.Weights[k] = v, float64(out.Tokens)
	}
	return m, nil
}

// sample generates, scores and lays out the completions of b's prompts.
func (t *Task) sample(ctx context.Context, b train.Batch) (*rollout, error) {
	g := t.cfg.NumGenerations
	prompts := make([]rlhf.Prompt, len(b.Examples))
	for k, i := range b.Examples {
		prompts[k] = t.prompts[i]
	}
	s := rlhf.Sampling{Temperature: *t.cfg.Temperature, TopP: *t.cfg.TopP, MaxNewTokens: t.cfg.MaxCompletionLength,
		Seed: train.SampleSeed(b.Seed, b.Step, b.Micro)}
	var comps [][]rlhf.Completion
	var err error
	if t.served != nil {
		if err := t.served.Sync(ctx, b.Step); err != nil {
			return nil, fmt.Errorf("grpo: %w", err)
		}
		comps, err = t.served.Complete(ctx, prompts, g, s)
	} else {
		comps, err = t.gen.Complete(ctx, prompts, g, s)
	}
	if err != nil {
		return nil, fmt.Errorf("grpo: sampling: %w", err)
	}
	n := len(prompts) * g
	cs := make([]Completion, 0, n)
	var seqs [][]int32
	ro := &rollout{values: map[string]float64{}}
	var meanLen, clipped float64
	for k, i := range b.Examples {
		promptText := prompts[k].Text
		if prompts[k].Messages != nil {
			js, err := json.Marshal(prompts[k].Messages)
			if err != nil {
				return nil, err
			}
			promptText = string(js)
		}
		for _, c := range comps[k] {
			cs = append(cs, Completion{Prompt: promptText, Text: c.Text, Tokens: len(c.IDs), Row: prompts[k].Row, Fields: t.fields[i]})
			seq := append(append(make([]int32, 0, len(t.ids[i])+len(c.IDs)), t.ids[i]...), c.IDs...)
			seqs = append(seqs, seq)
			ro.starts = append(ro.starts, len(t.ids[i])-1)
			ro.lens = append(ro.lens, len(c.IDs))
			meanLen += float64(len(c.IDs))
			if c.FinishReason == "length" {
				clipped++
			}
		}
	}
	ro.values["completions/mean_length"] = meanLen / float64(n)
	ro.values["completions/clipped_ratio"] = clipped / float64(n)
	total, err := t.rewards(ctx, prompts, cs, ro.values)
	if err != nil {
		return nil, err
	}
	adv, std, err := Advantages(total, g, *t.cfg.ScaleRewards)
	if err != nil {
		return nil, err
	}
	ro.adv = adv
	var meanR, meanStd, zero float64
	for k := range total {
		meanR += total[k]
		if k%g == 0 {
			meanStd += std[k]
			if std[k] == 0 {
				zero++
			}
		}
	}
	groups := float64(len(prompts))
	ro.values["reward"], ro.values["reward_std"], ro.values["frac_reward_zero_std"] = meanR/float64(n), meanStd/groups, zero/groups
	ro.batch = data.CompletionBatch(seqs, ro.starts, ro.lens, 0)
	if t.ref != nil {
		if ro.ref, err = lm.CompletionLogProbs(t.ref.LogProbs, ro.batch, ro.starts, ro.lens); err != nil {
			return nil, fmt.Errorf("grpo: reference log-probs: %w", err)
		}
	}
	if t.cfg.NumIterations > 1 {
		if ro.old, err = lm.CompletionLogProbs(t.policy.LogProbs, ro.batch, ro.starts, ro.lens); err != nil {
			return nil, fmt.Errorf("grpo: sampling policy log-probs: %w", err)
		}
	}
	return ro, nil
}

// rewards is Σ_k weight_k·reward_k per completion (TRL's weighted sum over reward_funcs), with each
// component's mean put in values.
func (t *Task) rewards(ctx context.Context, prompts []rlhf.Prompt, cs []Completion, values map[string]float64) ([]float64, error) {
	g := t.cfg.NumGenerations
	total := make([]float64, len(cs))
	add := func(c int, r []float64) {
		var sum float64
		for k, v := range r {
			total[k] += t.weights[c] * v
			sum += v
		}
		values[t.names[c]] = sum / float64(len(r))
	}
	for c, f := range t.funcs {
		r, err := f.Rewards(ctx, cs)
		if err != nil {
			return nil, err
		}
		if len(r) != len(cs) {
			return nil, fmt.Errorf("%s: %d rewards for %d completions", t.names[c], len(r), len(cs))
		}
		add(c, r)
	}
	if t.models == nil {
		return total, nil
	}
	// Each prompt's completions get the reward models' reward (with two models Llama 2's R_c, by
	// the prompt's safety flag), whitened over the whole batch with two models (reward.Combine).
	r := make([]float64, 0, len(cs))
	for k, p := range prompts {
		texts := make([]string, g)
		for j := range texts {
			texts[j] = cs[k*g+j].Text
		}
		s, err := t.models.Score(ctx, p, texts)
		if err != nil {
			return nil, fmt.Errorf("reward_models: %w", err)
		}
		r = append(r, s...)
	}
	if t.models.Combined() {
		reward.Whiten(r)
	}
	add(len(t.funcs), r)
	return total, nil
}
