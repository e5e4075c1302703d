package dpo

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/ctxerr"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/tokenizer"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/train"
)

// hooks let tests observe the reference model; production code sets none.
type hooks struct {
	// refForward is called after every forward pass of the reference model with the number of
	// pairs it scored (tests count reference passes).
	refForward func(pairs int)
	// refLoaded sees the reference model as soon as it exists (tests check that it is freed).
	refLoaded func(*lm.Model)
}

// Task is DPO as a train.Task: each micro-batch of pair indices is collated into one batch of 2N
// rows (chosen c_1..c_N, then rejected r_1..r_N), run through the policy once, scored by Loss
// against the reference log-probs, and the gradient of the loss with respect to the 2N summed
// log-probs is fed back into the graph.
type Task struct {
	// describe is recipe.Base.Describe's line for the job's report.
	describe string
	cfg      Config
	loss     LossConfig
	log      io.Writer // notes: truncation counts, the reference cache
	hooks    hooks
	policy   *lm.Model
	tok      *tokenizer.Tokenizer // the policy's, which tokenizes the data
	// ref is the reference model scored per batch; nil when the log-probs were precomputed or the
	// loss is reference-free.
	ref         *lm.Model
	train, eval *pairSet
	moe         bool
	// chatTemplate is the Jinja source the data was rendered with when it is not the policy's own
	// (a built-in name or a file given as chat_template), saved with the model; "" otherwise.
	chatTemplate string
}

var _ recipe.Prepare[Config] = Prepare

// Prepare loads the policy, the reference and the data, and, with precompute_ref_log_probs,
// scores every pair with the reference (or reads that from the cache) and lets the reference go.
// Its notes (truncation counts, the reference cache) go to the log writer among opts as they
// happen; the cache is the one file it may write.
func Prepare(ctx context.Context, cfg Config, opts ...train.Option) (*recipe.Job, error) {
	return prepare(ctx, cfg, hooks{}, opts...)
}

// Run is `alignkit dpo`: Prepare, then the shared training loop, which writes output_dir
// (metrics.jsonl with TRL's rewards/*, logps/*, logits/* names, checkpoints, the final model).
func Run(ctx context.Context, cfg Config, opts ...train.Option) (train.Result, error) {
	return recipe.Run(ctx, Prepare, cfg, opts...)
}

func prepare(ctx context.Context, cfg Config, h hooks, opts ...train.Option) (*recipe.Job, error) {
	t, err := newTask(ctx, cfg, h, train.LogWriter(opts...))
	if err != nil {
		return nil, err
	}
	return &recipe.Job{Args: t.cfg.Args, Task: t, Report: recipe.Lines(nil, t.describe)}, nil
}

func newTask(ctx context.Context, cfg Config, h hooks, log io.Writer) (*Task, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Defaults()
	t := &Task{cfg: cfg, loss: cfg.Loss(), log: log, hooks: h}

	// Text pairs need no template: without one (none set, none in the tokenizer) conversational rows
	// fail in data with their row named.
	base, err := recipe.Open(ctx, "model_name_or_path", cfg.ModelNameOrPath, cfg.Model, cfg.Data.ChatTemplate)
	if err != nil {
		return nil, err
	}
	ck, tok, pad := base.Ckpt, base.Tok, base.Pad
	t.tok, t.chatTemplate = ck.Tok, base.ChatTemplate
	rows := 2 * cfg.PerDeviceTrainBatchSize
	// The reference: its own checkpoint (opened now, to fail before the data work), or the policy's
	// initial weights, copied before training moves them (and only when a model is needed: a cache
	// hit needs only their hash).
	var refCk *checkpoint.Model
	if cfg.RefModelNameOrPath != "" {
		if refCk, err = checkpoint.OpenContext(ctx, cfg.RefModelNameOrPath); err != nil {
			return nil, fmt.Errorf("ref_model_name_or_path: %w", err)
		}
		if a, b := refCk.Weights.Config.VocabSize, ck.Weights.Config.VocabSize; a != b {
			return nil, fmt.Errorf("ref_model_name_or_path %s: a vocabulary of %d tokens, the policy %s has %d: the reference must score the same token ids",
				cfg.RefModelNameOrPath, a, cfg.ModelNameOrPath, b)
		}
	}
	refWeights := ck.Weights
	if refCk != nil {
		refWeights = refCk.Weights
	}
	// With LoRA the reference is the base with the adapter off, as TRL: the same frozen weights,
	// shared rather than copied, since training moves only the adapter.
	peft := cfg.Model.Lora.UsePEFT || cfg.Model.AdapterNameOrPath != ""
	newRef := func() *lm.Model {
		rc := refCk
		switch {
		case rc == nil && peft:
			rc = &checkpoint.Model{Weights: ck.Weights, Tok: ck.Tok, Dir: ck.Dir, Source: ck.Source}
		case rc == nil:
			rc = &checkpoint.Model{Weights: ck.Weights.Clone(), Tok: ck.Tok, Dir: ck.Dir, Source: ck.Source}
		}
		ref := lm.New(rc, rows)
		ref.Checkpoint = cfg.GradientCheckpointing && !peft
		if h.refLoaded != nil {
			h.refLoaded(ref)
		}
		return ref
	}
	t.moe = ck.Weights.Config.IsMoE()
	seed := uint64(*cfg.Seed)
	trainDS, evalDS, err := cfg.Data.LoadContext(ctx, seed)
	if err != nil {
		return nil, err
	}
	if t.train, err = newPairSet(ctx, "train", trainDS, tok, cfg, cfg.PerDeviceTrainBatchSize, pad, ck.Tok.EOS()); err != nil {
		return nil, err
	}
	fmt.Fprintln(log, t.train.report())
	if evalDS != nil {
		if t.eval, err = newPairSet(ctx, "eval", evalDS, tok, cfg, cfg.PerDeviceEvalBatchSize, pad, ck.Tok.EOS()); err != nil {
			return nil, err
		}
		fmt.Fprintln(log, t.eval.report())
	}

	switch {
	case cfg.ReferenceFree:
	case !cfg.PrecomputeRefLogProbs:
		t.ref = newRef()
	default:
		if err := t.precompute(ctx, refWeights, newRef, tok); err != nil {
			return nil, err
		}
		// Nothing refers to a reference model any more: hand its memory back before training
		// allocates.
		refCk, refWeights, newRef = nil, nil, nil
		runtime.GC()
		debug.FreeOSMemory()
	}
	if err := base.Adapt(seed); err != nil {
		return nil, err
	}
	t.describe = base.Describe()
	t.policy = lm.New(ck, rows)
	t.policy.Checkpoint = cfg.GradientCheckpointing
	return t, nil
}

// precompute fills the splits' reference log-probs from the cache (keyed by the reference weights
// refWeights), or builds the reference model with newRef, scores every pair once and writes the
// cache. It stops, writing no cache, when ctx ends: scoring a large dataset takes minutes.
func (t *Task) precompute(ctx context.Context, refWeights *model.Weights, newRef func() *lm.Model, tok *data.Tokenizer) error {
	key, err := t.cacheKey(refWeights, tok)
	if err != nil {
		return err
	}
	dir, err := t.cfg.refCacheDir()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, key+".bin")
	nEval := 0
	if t.eval != nil {
		nEval = t.eval.batcher.NumPairs()
	}
	tr, ev, err := readCache(path, key, t.train.batcher.NumPairs(), nEval)
	switch {
	case err == nil && tr != nil:
		t.train.ref = tr
		if t.eval != nil {
			t.eval.ref = ev
		}
		fmt.Fprintf(t.log, "dpo: reference log-probs of %d pairs read from %s\n", len(tr)+len(ev), path)
		return nil
	case err != nil && !isInvalid(err):
		return err
	case err != nil:
		fmt.Fprintf(t.log, "dpo: %v; recomputing\n", err)
	}
	start := time.Now()
	ref := newRef()
	for _, s := range []*pairSet{t.train, t.eval} {
		if s == nil {
			continue
		}
		bs := t.cfg.PerDeviceTrainBatchSize
		if s == t.eval {
			bs = t.cfg.PerDeviceEvalBatchSize
		}
		if s.ref, err = t.scoreAll(ctx, ref, s, bs); err != nil {
			return err
		}
	}
	var evalRef []pairLogps
	if t.eval != nil {
		evalRef = t.eval.ref
	}
	if err := writeCache(path, key, t.train.ref, evalRef); err != nil {
		return err
	}
	fmt.Fprintf(t.log, "dpo: reference log-probs of %d pairs computed in %s, cached in %s\n",
		len(t.train.ref)+len(evalRef), time.Since(start).Round(time.Millisecond), path)
	return nil
}

// scoreAll runs the reference over every pair of s in order, bs pairs per forward pass, checking
// ctx before each pass.
func (t *Task) scoreAll(ctx context.Context, ref *lm.Model, s *pairSet, bs int) ([]pairLogps, error) {
	n := s.batcher.NumPairs()
	out := make([]pairLogps, n)
	for lo := 0; lo < n; lo += bs {
		if err := ctxerr.Err(ctx); err != nil {
			return nil, fmt.Errorf("reference log-probs of %s pairs: %w after %d of %d pairs", s.name, err, lo, n)
		}
		idx := make([]int, 0, bs)
		for i := lo; i < min(lo+bs, n); i++ {
			idx = append(idx, i)
		}
		pb, err := s.batcher.Pairs(idx)
		if err != nil {
			return nil, err
		}
		st, err := t.refLogProbs(ref, pb)
		if err != nil {
			return nil, fmt.Errorf("reference log-probs of %s pairs %d-%d: %w", s.name, lo, lo+len(idx)-1, err)
		}
		for k, i := range idx {
			out[i] = pairLogps{
				Chosen: st.LogProb[k], Rejected: st.LogProb[pb.N+k],
				ChosenTokens: uint32(st.Tokens[k]), RejectedTokens: uint32(st.Tokens[pb.N+k]),
			}
		}
	}
	return out, nil
}

// refLogProbs is one forward pass of the reference over a pair batch (through the one log-prob
// function), reported to the WithRefForward hook.
func (t *Task) refLogProbs(ref *lm.Model, pb *data.PairBatch) (model.Stats, error) {
	st, err := ref.LogProbs(&pb.Batch)
	if err != nil {
		return st, err
	}
	if t.hooks.refForward != nil {
		t.hooks.refForward(pb.N)
	}
	return st, nil
}

// cacheKey hashes what the reference log-probs depend on (see refcache.go).
func (t *Task) cacheKey(refWeights *model.Weights, tok *data.Tokenizer) (string, error) {
	c := t.cfg
	k := cacheKey{
		Format:    fmt.Sprintf("%s/%d", cacheMagic, cacheVersion),
		EvalSplit: c.Data.EvalSplit, SplitSeed: uint64(*c.Seed),
		MaxTrainSamples: c.Data.MaxTrainSamples, MaxEvalSamples: c.Data.MaxEvalSamples,
		MaxLength: c.Data.MaxLength, MaxPromptLength: c.MaxPromptLength,
	}
	var err error
	if k.Train, err = fileKey(c.Data.DatasetName); err != nil {
		return "", err
	}
	if c.Data.EvalDatasetName != "" {
		ek, err := fileKey(c.Data.EvalDatasetName)
		if err != nil {
			return "", err
		}
		k.Eval = &ek
	}
	if c.Data.EvalSplit == 0 {
		k.SplitSeed = 0 // the seed picks nothing without a split
	}
	for _, name := range sortedKeys(c.Data.Columns) {
		k.Columns = append(k.Columns, [2]string{name, c.Data.Columns[name]})
	}
	if tm := tok.Template(); tm != nil {
		k.Template = &templateKey{Source: tm.Source(), BOS: tm.BOSToken(), EOS: tm.EOSToken()}
	}
	if k.Tokenizer, err = tokenizerHash(t.tok); err != nil {
		return "", err
	}
	if k.Reference, err = weightsHash(refWeights); err != nil {
		return "", err
	}
	return k.hex()
}

// BarMetrics puts TRL's preference accuracy and margin on the training progress bar.
func (t *Task) BarMetrics() []string { return []string{"rewards/accuracies", "rewards/margins"} }

var _ train.LossUnitsTask = (*Task)(nil)

// Params are the policy's tensors.
func (t *Task) Params() []train.Param { return t.policy.Params() }

// NumExamples is the number of training pairs.
func (t *Task) NumExamples() int { return t.train.batcher.NumPairs() }

// NumEvalExamples is the number of evaluation pairs (0 without evaluation data).
func (t *Task) NumEvalExamples() int {
	if t.eval == nil {
		return 0
	}
	return t.eval.batcher.NumPairs()
}

// Step runs the policy forward and backward on the pairs b.Examples.
func (t *Task) Step(ctx context.Context, b train.Batch, grads [][]float32, scale float32) (train.Metrics, error) {
	t.policy.SetDropoutSeed(model.DropoutSeed(b.Seed, b.Step, b.Micro)) // LoRA dropout, resumable
	return t.run(ctx, t.train, b.Examples, grads, scale)
}

// LossUnits is the number of pairs in b: the DPO loss is a mean over pairs (train.LossUnitsTask).
func (t *Task) LossUnits(b train.Batch) (float64, error) { return float64(len(b.Examples)), nil }

// Eval scores the evaluation pairs b.Examples, forward only.
func (t *Task) Eval(ctx context.Context, b train.Batch) (train.Metrics, error) {
	if t.eval == nil {
		return train.Metrics{}, fmt.Errorf("dpo: no evaluation data")
	}
	return t.run(ctx, t.eval, b.Examples, nil, 0)
}

// SaveModel writes the policy as an HF directory, with the chat template the data was rendered
// with when that is not the policy's own.
func (t *Task) SaveModel(dir string) error {
	return recipe.Save(dir, t.policy, t.chatTemplate)
}

// Stats are the train and eval batchers' truncation counts (eval is zero without evaluation data).
func (t *Task) Stats() (trainStats, evalStats data.PairStats) {
	trainStats = t.train.batcher.Stats()
	if t.eval != nil {
		evalStats = t.eval.batcher.Stats()
	}
	return trainStats, evalStats
}

// run is Step (grads non-nil) or Eval (grads nil) on the pairs idx of s.
func (t *Task) run(ctx context.Context, s *pairSet, idx []int, grads [][]float32, scale float32) (train.Metrics, error) {
	if err := ctx.Err(); err != nil {
		return train.Metrics{}, err
	}
	pb, err := s.batcher.Pairs(idx)
	if err != nil {
		return train.Metrics{}, err
	}
	n := pb.N
	refC, refR := make([]float64, n), make([]float64, n)
	switch {
	case t.loss.ReferenceFree:
		refC, refR = nil, nil
	case s.ref != nil:
		for k, i := range idx {
			refC[k], refR[k] = s.ref[i].Chosen, s.ref[i].Rejected
		}
	default:
		st, err := t.refLogProbs(t.ref, pb)
		if err != nil {
			return train.Metrics{}, fmt.Errorf("reference forward: %w", err)
		}
		copy(refC, st.LogProb[:n])
		copy(refR, st.LogProb[n:2*n])
	}
	var out Output
	obj := func(st model.Stats) (float64, []float64, []float64, error) {
		if s.ref != nil {
			if err := checkTokens(s, idx, st, n); err != nil {
				return 0, nil, nil, err
			}
		}
		o, err := Loss(t.loss, Batch{
			PolicyChosen: st.LogProb[:n], PolicyRejected: st.LogProb[n : 2*n],
			RefChosen: refC, RefRejected: refR,
			ChosenTokens: st.Tokens[:n], RejectedTokens: st.Tokens[n : 2*n],
		})
		if err != nil {
			return 0, nil, nil, err
		}
		out = o
		d := make([]float64, 0, 2*n)
		d = append(append(d, o.DPolicyChosen...), o.DPolicyRejected...)
		return o.Loss, d, nil, nil
	}
	loss, st, err := t.policy.Run(&pb.Batch, model.LMHead, obj, grads, scale)
	if err != nil {
		return train.Metrics{}, err
	}
	m := train.Metrics{Loss: loss, Tokens: tokensIn(&pb.Batch), Values: out.Metrics, Weights: map[string]float64{}}
	// TRL's logits/chosen is the mean logit over all chosen answer tokens of the batch (and the whole
	// vocabulary): weigh each row's mean by its token count, here and across micro-batches.
	for _, side := range []struct {
		key    string
		lo, hi int
	}{{"logits/chosen", 0, n}, {"logits/rejected", n, 2 * n}} {
		var sum, w float64
		for r := side.lo; r < side.hi; r++ {
			sum += st.MeanLogit[r] * st.Tokens[r]
			w += st.Tokens[r]
		}
		if w > 0 {
			m.Values[side.key] = sum / w
			m.Weights[side.key] = w
		}
	}
	if t.moe {
		m.Values["aux_loss"] = st.AuxLoss
	}
	return m, nil
}

// checkTokens guards the precomputed log-probs: each must have been summed over exactly the answer
// tokens the policy scores now.
func checkTokens(s *pairSet, idx []int, st model.Stats, n int) error {
	for k, i := range idx {
		r := s.ref[i]
		if float64(r.ChosenTokens) != st.Tokens[k] || float64(r.RejectedTokens) != st.Tokens[n+k] {
			return fmt.Errorf("%s pair %d (row %d): the reference log-probs cover %d and %d answer tokens, the policy scores %v and %v: the reference cache is stale; delete it",
				s.name, i, s.rows[i], r.ChosenTokens, r.RejectedTokens, st.Tokens[k], st.Tokens[n+k])
		}
	}
	return nil
}

// tokensIn counts the batch's real (non-padding) tokens.
func tokensIn(b *data.Batch) int {
	n := 0
	for _, s := range b.Segments {
		if s != 0 {
			n++
		}
	}
	return n
}
