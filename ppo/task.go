package ppo

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/train"
)

// ValueModelDir is the subdirectory of a saved PPO model (output_dir, each checkpoint) that holds
// the trained value model, an HF reward-model directory that value_model_path can name to go on.
const ValueModelDir = "value_model"

// ValueParamPrefix prefixes the value model's tensor names among the Task's Params, so that the
// policy's and the value model's tensors (both model.embed_tokens.weight, ...) stay distinct in
// checkpoints.
const ValueParamPrefix = "value_model."

// Task is PPO as a train.Task. An example is a prompt. The loop's micro-batch at micro position m of
// the first step of each update samples one response per prompt (per_device_train_batch_size ×
// num_mini_batches prompts: the loop is handed that many), scores them and computes the advantages;
// that step and the next UpdateSteps()−1 each train on one mini-batch of those rollouts
// (per_device_train_batch_size rows of each micro position), as TRL takes one optimizer step per
// mini-batch. Params are the policy's tensors, then the value model's (prefixed with
// ValueParamPrefix), so one AdamW trains both and checkpoints cover both.
type Task struct {
	describe     string
	cfg          TrainConfig
	policy       *lm.Model
	ref          *lm.Model // nil with LoRA: the policy's base with the adapter off
	value        *lm.Model
	params       []train.Param
	nPolicy      int
	gen          *rlhf.Local
	served       *rlhf.ServedPolicy // backend openai: samples the rollouts; nil samples with gen
	models       *rlhf.RewardModels
	chatTemplate string
	eos          []int32

	prompts  []rlhf.Prompt
	ids      [][]int32
	seqLen   int              // T of every laid-out batch: the longest prompt plus response_length
	rollouts map[int]*rollout // per micro position: the current update's rollouts
	log      io.Writer
}

// rollout is one micro position's sampled responses of the current update, scored, with their
// advantages and returns.
type rollout struct {
	start  int // the optimizer step that sampled it
	batch  *data.Batch
	starts []int // per row: the position whose target is the first response token
	lens   []int // per row: response tokens
	old    [][]float64
	oldV   [][]float64
	adv    [][]float64
	ret    [][]float64
	values map[string]float64 // objective/* metrics of the rollout
}

var _ recipe.Prepare[TrainConfig] = Prepare

// Prepare loads the policy (and without LoRA a frozen copy as the reference), the value model, the
// reward models and the prompts, and checks what can be checked before training. It writes nothing.
func Prepare(ctx context.Context, cfg TrainConfig, opts ...train.Option) (*recipe.Job, error) {
	if err := rlhf.CheckServedRanks(cfg.Rollouts, opts...); err != nil {
		return nil, err
	}
	t, err := newTask(ctx, cfg, train.LogWriter(opts...))
	if err != nil {
		return nil, err
	}
	args := t.cfg.Args
	k := t.cfg.UpdateSteps()
	args.PerDeviceTrainBatchSize *= t.cfg.NumMiniBatches // the loop hands each micro position a rollout's prompts
	args.NumTrainEpochs *= float64(k)                    // k optimizer steps per rollout batch: every prompt is sampled num_train_epochs times
	report := []string{fmt.Sprintf("ppo: %d prompts from %s; %d per rollout batch, %d optimizer steps on each (num_ppo_epochs %d × num_mini_batches %d); value model %s",
		len(t.prompts), cfg.DatasetName, args.PerDeviceTrainBatchSize*args.GradientAccumulationSteps, k, t.cfg.NumPPOEpochs, t.cfg.NumMiniBatches, t.cfg.ValueModelPath)}
	job := &recipe.Job{Args: args, Task: t, Report: recipe.Lines(report, t.describe)}
	if t.served != nil {
		job.Close = t.served.Close // the server drops the last policy and its snapshot goes
	}
	return job, nil
}

// Run is `alignkit ppo`: Prepare, then the shared training loop, which writes output_dir
// (metrics.jsonl with TRL's objective/*, policy/*, loss/*, val/* names, checkpoints, the final
// policy and its value model).
func Run(ctx context.Context, cfg TrainConfig, opts ...train.Option) (train.Result, error) {
	return recipe.Run(ctx, Prepare, cfg, opts...)
}

func newTask(ctx context.Context, cfg TrainConfig, log io.Writer) (*Task, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Defaults()
	t := &Task{cfg: cfg, log: log, rollouts: map[int]*rollout{}}

	base, err := recipe.Open(ctx, "model_name_or_path", cfg.ModelNameOrPath, cfg.Model, cfg.ChatTemplate)
	if err != nil {
		return nil, err
	}
	if err := base.Adapt(uint64(*cfg.Seed)); err != nil {
		return nil, err
	}
	t.describe = base.Describe()
	ck := base.Ckpt
	t.chatTemplate, t.eos = base.ChatTemplate, ck.Tok.EOSIDs()
	if t.gen, err = rlhf.NewLocal(ck, cfg.ChatTemplate); err != nil {
		return nil, fmt.Errorf("model_name_or_path: %w", err)
	}
	if cfg.Rollouts.Backend == rlhf.BackendOpenAI {
		save := func(dir string) error { return recipe.Save(dir, t.policy, t.chatTemplate) }
		if t.served, err = rlhf.NewRolloutServer(ctx, cfg.Rollouts, ck, cfg.OutputDir, save, t.gen, log); err != nil {
			return nil, err
		}
	}

	vck, err := checkpoint.OpenContext(ctx, cfg.ValueModelPath)
	if err != nil {
		return nil, fmt.Errorf("value_model_path: %w", err)
	}
	vc, pc := vck.Weights.Config, ck.Weights.Config
	switch {
	case !vc.IsRewardModel():
		return nil, fmt.Errorf("value_model_path %s: %v is not a reward model; the value model needs a score head (score.weight)", cfg.ValueModelPath, vc.Architectures)
	case vc.VocabSize != pc.VocabSize:
		return nil, fmt.Errorf("value_model_path %s: vocab_size %d, the policy's is %d; the value model reads the policy's tokens", cfg.ValueModelPath, vc.VocabSize, pc.VocabSize)
	}

	ps, models, err := cfg.RLPromptArgs.Load(ctx, t.gen, cfg.ResponseLength, min(t.gen.MaxPositions(), vc.MaxPositionEmbeddings),
		"ppo", "response_length", log)
	if err != nil {
		return nil, err
	}
	t.prompts, t.ids, t.models = ps.Prompts, ps.IDs, models
	for _, ids := range t.ids {
		t.seqLen = max(t.seqLen, len(ids)+cfg.ResponseLength)
	}

	micro := cfg.PerDeviceTrainBatchSize
	if ck.Adapter == nil {
		// The reference is the initial policy: a frozen copy of its weights (with LoRA it is the
		// base with the adapter off, sharing the frozen weights, as TRL).
		t.ref = lm.New(&checkpoint.Model{Weights: ck.Weights.Clone(), Tok: ck.Tok, Dir: ck.Dir, Source: ck.Source}, micro)
	}
	t.policy = lm.New(ck, micro)
	t.value = lm.New(vck, micro)
	t.policy.Checkpoint, t.value.Checkpoint = cfg.GradientCheckpointing, cfg.GradientCheckpointing
	// Log-probs of the distribution the responses are sampled from: the logits divided by the
	// temperature, for the ratios and the KL alike (TRL's PPOTrainer).
	t.policy.Temperature = cfg.Temperature
	if t.ref != nil {
		t.ref.Checkpoint, t.ref.Temperature = cfg.GradientCheckpointing, cfg.Temperature
	}
	t.params = append(t.params, t.policy.Params()...)
	t.nPolicy = len(t.params)
	for _, p := range t.value.Params() {
		p.Name = ValueParamPrefix + p.Name
		t.params = append(t.params, p)
	}
	return t, nil
}

// BarMetrics puts the score and the KL on the progress bar.
func (t *Task) BarMetrics() []string { return []string{"objective/scores", "objective/kl"} }

// Params are the policy's tensors, then the value model's.
func (t *Task) Params() []train.Param { return t.params }

// NumExamples is the number of prompts.
func (t *Task) NumExamples() int { return len(t.prompts) }

// NumEvalExamples is 0: PPO has no evaluation set.
func (t *Task) NumEvalExamples() int { return 0 }

// Eval is never called (no evaluation set).
func (t *Task) Eval(context.Context, train.Batch) (train.Metrics, error) {
	return train.Metrics{}, fmt.Errorf("ppo: no evaluation data")
}

// SaveModel writes the policy as an HF directory (or its PEFT adapter), with the chat template the
// prompts were rendered with when that is not the policy's own, and the value model under
// ValueModelDir. TRL saves the policy alone; the value model is kept too so that a later PPO run
// can start from it (value_model_path: <dir>/value_model).
func (t *Task) SaveModel(dir string) error {
	if err := recipe.Save(dir, t.policy, t.chatTemplate); err != nil {
		return err
	}
	return checkpoint.Save(filepath.Join(dir, ValueModelDir), t.value.Ckpt, hf.SaveOptions{})
}

// Step trains one mini-batch of the current update's rollouts at b's micro position, sampling them
// first on the update's first step.
func (t *Task) Step(ctx context.Context, b train.Batch, grads [][]float32, scale float32) (train.Metrics, error) {
	if err := ctx.Err(); err != nil {
		return train.Metrics{}, err
	}
	if len(grads) != len(t.params) {
		return train.Metrics{}, fmt.Errorf("ppo: %d gradient buffers for %d parameters", len(grads), len(t.params))
	}
	k, mbs := t.cfg.UpdateSteps(), t.cfg.NumMiniBatches
	i := (b.Step - 1) % k
	first := b.Step - i
	ro := t.rollouts[b.Micro]
	if ro == nil || ro.start != first {
		if i != 0 {
			// A run resumed inside an update: the rollouts were sampled by a policy no longer held.
			fmt.Fprintf(t.log, "ppo: step %d resumes inside the update begun at step %d; sampling its rollouts again with the restored policy\n", b.Step, first)
		}
		var err error
		if ro, err = t.sample(ctx, b, first); err != nil {
			return train.Metrics{}, err
		}
		t.rollouts[b.Micro] = ro
	}
	// TRL shuffles the rollout rows once per PPO epoch and cuts them into mini-batches.
	epoch, j := i/mbs, i%mbs
	perm := rand.New(rand.NewPCG(uint64(b.Seed), train.SampleSeed(b.Seed, first, b.Micro)^uint64(epoch))).Perm(len(ro.lens))
	size := len(ro.lens) / mbs
	sel := perm[j*size : (j+1)*size]
	slices.Sort(sel)
	mb := ro.subBatch(sel)
	T := mb.T

	tokens := func(st []float64, sel []int, useLP bool) []Token {
		var toks []Token
		for r, k := range sel {
			for p := 0; p < ro.lens[k]; p++ {
				tk := Token{LogProb: ro.old[k][p], OldLogProb: ro.old[k][p], Advantage: ro.adv[k][p], Return: ro.ret[k][p],
					Value: ro.oldV[k][p], OldValue: ro.oldV[k][p]}
				x := st[r*T+ro.starts[k]+p]
				if useLP {
					tk.LogProb = x
				} else {
					tk.Value = x
				}
				toks = append(toks, tk)
			}
		}
		return toks
	}
	scatter := func(d []float64, n int) []float64 {
		out := make([]float64, n)
		q := 0
		for r, k := range sel {
			for p := 0; p < ro.lens[k]; p++ {
				out[r*T+ro.starts[k]+p] = d[q]
				q++
			}
		}
		return out
	}

	// The value loss trains the value model alone and the policy loss the policy alone: the two
	// parts of TRL's loss = pg_loss + vf_coef·vf_loss share no parameter.
	var vo, po LossOutput
	valueObj := func(st model.Stats) (float64, []float64, []float64, error) {
		o, err := Loss(t.cfg.Config, tokens(st.Values, sel, false))
		if err != nil {
			return 0, nil, nil, err
		}
		vo = o
		return t.cfg.VFCoef * o.ValueLoss, nil, scatter(o.DValue, len(st.Values)), nil
	}
	t.value.SetDropoutSeed(model.DropoutSeed(b.Seed, b.Step, b.Micro))
	vloss, _, err := t.value.Run(mb, model.ValueHead, valueObj, grads[t.nPolicy:], scale)
	if err != nil {
		return train.Metrics{}, fmt.Errorf("ppo: value model: %w", err)
	}
	var ratio, approxKL float64
	policyObj := func(st model.Stats) (float64, []float64, []float64, error) {
		toks := tokens(st.TokenLogProb, sel, true)
		o, err := Loss(t.cfg.Config, toks)
		if err != nil {
			return 0, nil, nil, err
		}
		po = o
		ratio, approxKL = 0, 0
		for _, tk := range toks {
			d := tk.LogProb - tk.OldLogProb
			ratio += math.Exp(d) / float64(len(toks))
			approxKL += 0.5 * d * d / float64(len(toks))
		}
		return o.PolicyLoss, scatter(o.DLogProb, len(st.TokenLogProb)), nil, nil
	}
	t.policy.SetDropoutSeed(model.DropoutSeed(b.Seed, b.Step, b.Micro))
	ploss, _, err := t.policy.Run(mb, model.LMHead, policyObj, grads[:t.nPolicy], scale)
	if err != nil {
		return train.Metrics{}, fmt.Errorf("ppo: policy: %w", err)
	}
	n := float64(len(po.DLogProb))
	m := train.Metrics{Loss: ploss + vloss, Tokens: len(po.DLogProb), Values: map[string]float64{}, Weights: map[string]float64{}}
	for k, v := range ro.values {
		m.Values[k] = v
	}
	for k, v := range map[string]float64{
		"loss/policy_avg": po.PolicyLoss, "loss/value_avg": vo.ValueLoss, "policy/clipfrac_avg": po.ClipFrac,
		"val/clipfrac_avg": vo.VFClipFrac, "val/ratio": ratio, "policy/approxkl_avg": approxKL,
	} {
		m.Values[k], m.Weights[k] = v, n
	}
	return m, nil
}

// sample generates one response per prompt of b, scores it, and computes the reference and old
// log-probs, the old values, the per-token rewards, and GAE's advantages (whitened) and returns.
func (t *Task) sample(ctx context.Context, b train.Batch, first int) (*rollout, error) {
	c := t.cfg
	prompts := make([]rlhf.Prompt, len(b.Examples))
	for k, i := range b.Examples {
		prompts[k] = t.prompts[i]
	}
	if extra := len(prompts) % c.NumMiniBatches; extra != 0 {
		// Only the epoch's last, partial micro-batch can be short: its rows must still split into
		// num_mini_batches equal mini-batches.
		prompts = prompts[:len(prompts)-extra]
		if len(prompts) == 0 {
			return nil, fmt.Errorf("ppo: micro-batch of %d prompts: fewer than num_mini_batches %d", len(b.Examples), c.NumMiniBatches)
		}
		fmt.Fprintf(t.log, "ppo: step %d: the epoch's last micro-batch holds %d prompts; %d left out so that num_mini_batches %d divides it\n",
			b.Step, len(b.Examples), extra, c.NumMiniBatches)
	}
	s := rlhf.Sampling{Temperature: c.Temperature, TopP: 1, MaxNewTokens: c.ResponseLength, Seed: train.SampleSeed(b.Seed, first, b.Micro)}
	var comps [][]rlhf.Completion
	var err error
	if t.served != nil {
		if err := t.served.Sync(ctx, b.Step); err != nil {
			return nil, fmt.Errorf("ppo: %w", err)
		}
		comps, err = t.served.Complete(ctx, prompts, 1, s)
	} else {
		comps, err = t.gen.Complete(ctx, prompts, 1, s)
	}
	if err != nil {
		return nil, fmt.Errorf("ppo: sampling: %w", err)
	}
	ro := &rollout{start: first, values: map[string]float64{}}
	var seqs [][]int32
	texts := make([]string, len(prompts))
	hasEOS := make([]bool, len(prompts))
	for k := range prompts {
		r := comps[k][0]
		ids := r.IDs
		if c.StopToken == "eos" {
			// Cut after the first EOS (the engine stops there already).
			for p, id := range ids {
				if slices.Contains(t.eos, id) {
					ids = ids[:p+1]
					break
				}
			}
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("ppo: prompt %d: empty response", k)
		}
		hasEOS[k] = slices.Contains(t.eos, ids[len(ids)-1])
		texts[k] = r.Text
		pid := t.ids[b.Examples[k]]
		seqs = append(seqs, append(append(make([]int32, 0, len(pid)+len(ids)), pid...), ids...))
		ro.starts = append(ro.starts, len(pid)-1)
		ro.lens = append(ro.lens, len(ids))
	}
	ro.batch = data.CompletionBatch(seqs, ro.starts, ro.lens, t.seqLen)

	// Scores: the reward model(s) on each prompt's response; two are combined as Llama 2 does and
	// whitened over the batch (reward.Combine).
	scores := make([]float64, len(prompts))
	for k, p := range prompts {
		sc, err := t.models.Score(ctx, p, texts[k:k+1])
		if err != nil {
			return nil, fmt.Errorf("reward_models: %w", err)
		}
		scores[k] = sc[0]
	}
	if t.models.Combined() {
		// The whitened scores average 0 by construction, so objective/scores cannot show whether
		// the combined reward rises: objective/raw_scores is its mean before whitening.
		var raw float64
		for _, v := range scores {
			raw += v
		}
		ro.values["objective/raw_scores"] = raw / float64(len(scores))
		reward.Whiten(scores)
	}

	if ro.old, err = lm.CompletionLogProbs(t.policy.LogProbs, ro.batch, ro.starts, ro.lens); err != nil {
		return nil, fmt.Errorf("ppo: policy log-probs: %w", err)
	}
	refFn := t.policy.BaseLogProbs
	if t.ref != nil {
		refFn = t.ref.LogProbs
	}
	ref, err := lm.CompletionLogProbs(refFn, ro.batch, ro.starts, ro.lens)
	if err != nil {
		return nil, fmt.Errorf("ppo: reference log-probs: %w", err)
	}
	vals, err := t.value.Values(ro.batch)
	if err != nil {
		return nil, fmt.Errorf("ppo: value model: %w", err)
	}
	T := ro.batch.T
	rewards := make([][]float64, len(prompts))
	var klSum, nonScore, scoreSum, eos float64
	for k := range prompts {
		lo := k*T + ro.starts[k]
		ro.oldV = append(ro.oldV, append([]float64(nil), vals[lo:lo+ro.lens[k]]...))
		kl, err := KL(c.KLEstimator, ro.old[k], ref[k])
		if err != nil {
			return nil, err
		}
		rewards[k] = Rewards(c.Config, scores[k], kl, hasEOS[k])
		score := scores[k]
		if !hasEOS[k] && c.MissingEOSPenalty != nil {
			score -= *c.MissingEOSPenalty
		}
		scoreSum += score
		for _, v := range kl {
			klSum += v
			nonScore -= c.KLCoef * v
		}
		if hasEOS[k] {
			eos++
		}
	}
	if c.WhitenRewards {
		if err := Whiten(rewards, false); err != nil {
			return nil, err
		}
	}
	for k := range prompts {
		adv, ret, err := GAE(rewards[k], ro.oldV[k], c.Gamma, c.Lam)
		if err != nil {
			return nil, err
		}
		ro.adv, ro.ret = append(ro.adv, adv), append(ro.ret, ret)
	}
	if err := Whiten(ro.adv, true); err != nil {
		return nil, fmt.Errorf("ppo: whitening the advantages: %w", err)
	}
	n := float64(len(prompts))
	ro.values["objective/kl"] = klSum / n
	ro.values["objective/non_score_reward"] = nonScore / n
	ro.values["objective/scores"] = scoreSum / n
	ro.values["objective/rlhf_reward"] = (scoreSum + nonScore) / n
	ro.values["val/num_eos_tokens"] = eos
	var meanLen float64
	for _, l := range ro.lens {
		meanLen += float64(l)
	}
	ro.values["completions/mean_length"] = meanLen / n
	return ro, nil
}

// subBatch is the rows sel of the rollout's batch.
func (ro *rollout) subBatch(sel []int) *data.Batch {
	src, T := ro.batch, ro.batch.T
	B := len(sel)
	b := &data.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T), Weights: make([]float32, B*T),
		Positions: make([]int32, B*T), Segments: make([]int32, B*T), LastIndex: make([]int32, B)}
	for r, k := range sel {
		copy(b.Tokens[r*T:(r+1)*T], src.Tokens[k*T:(k+1)*T])
		copy(b.Targets[r*T:(r+1)*T], src.Targets[k*T:(k+1)*T])
		copy(b.Weights[r*T:(r+1)*T], src.Weights[k*T:(k+1)*T])
		copy(b.Positions[r*T:(r+1)*T], src.Positions[k*T:(k+1)*T])
		copy(b.Segments[r*T:(r+1)*T], src.Segments[k*T:(k+1)*T])
		b.LastIndex[r] = src.LastIndex[k]
	}
	return b
}
