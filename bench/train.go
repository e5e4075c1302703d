package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/blas"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/train"
)

// The optimizer settings of every benchmark step (HF Trainer's defaults but for the learning rate,
// which only has to be small enough to keep the loss finite).
const (
	benchLR          = 1e-4
	benchWeightDecay = 0.01
	benchMaxGradNorm = 1.0
)

// TrainOptions configure Train.
type TrainOptions struct {
	Preset Preset
	// Steps are timed after Warmup untimed ones; the median of the timed steps is reported.
	Steps, Warmup int
	Seed          uint64
	// PeakGFLOPS is the machine's fp32 peak; 0 measures it with MeasurePeak after the last step (after
	// the memory is read, so its matrices do not count in the peak RSS).
	PeakGFLOPS float64
	// Log, when non-nil, gets one line per step.
	Log io.Writer
	// AfterStep, when non-nil, is called after every step (1-based) with the memory at that point.
	AfterStep func(step int, mem Memory) error
	// Profile, when non-nil, gets a pprof CPU profile of the timed steps (not the warm-up, whose graph
	// building would otherwise dominate it).
	Profile io.Writer
	// GradientCheckpointing trains with lm.Model.Checkpoint (gradient_checkpointing: true).
	GradientCheckpointing bool
	// LoRAR > 0 trains a rank-LoRAR LoRA adapter (lora.New: use_peft, lora_r LoRAR, lora_alpha
	// 2·LoRAR, lora_dropout 0, lora_target_modules all-linear) on a frozen base; only its A and B
	// get gradients and AdamW state. 0 trains every weight.
	LoRAR int
	// BaseDtype is how the base is held (BaseQuant): float32 ("" too), bfloat16, float16, int8 or
	// nf4. Anything but float32 needs LoRAR > 0: a frozen base cannot be fully fine-tuned.
	BaseDtype string
}

// loraAlpha is lora_alpha for rank r: 2·r, the common choice (TRL's defaults, r 16 and alpha 32).
func loraAlpha(r int) float64 { return 2 * float64(r) }

// Validate checks the options that do not need the model, each error one line naming the flag.
func (o TrainOptions) Validate() error {
	if o.Steps < 1 || o.Warmup < 0 {
		return fmt.Errorf("bench train: steps %d must be >= 1 and warmup %d >= 0", o.Steps, o.Warmup)
	}
	if o.LoRAR < 0 {
		return fmt.Errorf("bench train: --lora-r %d: must be >= 0 (0 trains every weight, N > 0 a rank-N LoRA adapter)", o.LoRAR)
	}
	q, err := BaseQuant(o.BaseDtype)
	if err != nil {
		return fmt.Errorf("bench train: %w", err)
	}
	if q.Quantizes() && o.LoRAR == 0 {
		return fmt.Errorf("bench train: --base-dtype %s holds the base frozen, so it cannot be fully fine-tuned: set --lora-r N (LoRA)", o.BaseDtype)
	}
	return nil
}

// TrainResult is what `alignkit bench train --json` prints; bench/torch_train.py prints the same
// fields.
type TrainResult struct {
	Kind            string    `json:"kind"` // "train"
	Engine          string    `json:"engine"`
	Preset          string    `json:"preset"`
	Batch           int       `json:"batch"`
	SeqLen          int       `json:"seq_len"`
	Params          int64     `json:"params"`
	MatmulParams    int64     `json:"params_matmul"`
	Steps           int       `json:"steps"`
	Warmup          int       `json:"warmup"`
	StepSeconds     []float64 `json:"step_s"`
	TokensPerSecond float64   `json:"tokens_per_s"`
	PeakRSSMB       float64   `json:"peak_rss_mb"`
	FLOPPerToken    float64   `json:"flop_per_token"`
	AchievedGFLOPS  float64   `json:"achieved_gflops"`
	PeakGFLOPS      float64   `json:"peak_gflops"`
	PeakShare       float64   `json:"peak_share"`
	LossFirst       float64   `json:"loss_first"`
	LossLast        float64   `json:"loss_last"`
	BLAS            string    `json:"blas"`
	Threads         int       `json:"threads"`
	OpenBLASThreads string    `json:"openblas_threads"`
	OpenBLASCore    string    `json:"openblas_coretype"`

	// GradientCheckpointing is whether the run recomputed each layer's activations.
	GradientCheckpointing bool `json:"gradient_checkpointing,omitempty"`
	// LoRAR is the LoRA rank (0: full fine-tuning), BaseDtype how the base was held, and
	// TrainableParams the values that got gradients and AdamW state.
	LoRAR           int    `json:"lora_r"`
	BaseDtype       string `json:"base_dtype"`
	TrainableParams int64  `json:"trainable_params"`
}

// Mode is the run's FLOP-count mode.
func (r TrainResult) Mode() Mode {
	return Mode{LoRAR: r.LoRAR, GradientCheckpointing: r.GradientCheckpointing}
}

// Describe names the run's mode for report lines: "full", or "LoRA r16, nf4 base", then
// ", checkpointing" when it was on. Results from before base_dtype was recorded read as float32.
func (r TrainResult) Describe() string {
	s := "full"
	if r.LoRAR > 0 {
		dt := r.BaseDtype
		if dt == "" {
			dt = "float32"
		}
		s = fmt.Sprintf("LoRA r%d, %s base", r.LoRAR, dt)
	}
	if r.GradientCheckpointing {
		s += ", checkpointing"
	}
	return s
}

// Train runs full optimizer steps of the real training path on a randomly initialised model of
// opts.Preset (drawn by InitBase, held as opts.BaseDtype says, with a LoRA adapter when opts.LoRAR
// is set): lm.Model.Run (forward and backward of the mean next-token cross-entropy, as SFT's loss)
// into zeroed gradient buffers, train.ClipGradNorm and train.AdamW, on one fixed batch of random
// tokens (fixed so that the falling loss shows the updates land).
func Train(ctx context.Context, opts TrainOptions) (TrainResult, error) {
	p := opts.Preset
	if err := opts.Validate(); err != nil {
		return TrainResult{}, err
	}
	if p.Batch < 1 || p.SeqLen < 2 {
		return TrainResult{}, fmt.Errorf("bench train: preset %s has batch %d and seq_len %d", p.Name, p.Batch, p.SeqLen)
	}
	if err := p.Config.Validate(); err != nil {
		return TrainResult{}, fmt.Errorf("bench train: preset %s: %w", p.Name, err)
	}
	dtype := opts.BaseDtype
	if dtype == "" {
		dtype = "float32"
	}
	ck, err := trainModel(p, opts)
	if err != nil {
		return TrainResult{}, err
	}
	m := lm.New(ck, p.Batch)
	m.Checkpoint = opts.GradientCheckpointing
	params := m.Params()
	grads := make([][]float32, len(params))
	var trainable int64
	for i, q := range params {
		grads[i] = make([]float32, len(q.Value))
		trainable += int64(len(q.Value))
	}
	opt := train.NewAdamW(params, train.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: benchWeightDecay})
	batch := RandomBatch(p.Config.VocabSize, p.Batch, p.SeqLen, opts.Seed)

	res := TrainResult{
		Kind: "train", Engine: "alignkit", Preset: p.Name, Batch: p.Batch, SeqLen: p.SeqLen, GradientCheckpointing: opts.GradientCheckpointing,
		LoRAR: opts.LoRAR, BaseDtype: dtype, TrainableParams: trainable,
		Params: ParamCount(p.Config), MatmulParams: MatmulParams(p.Config), Steps: opts.Steps, Warmup: opts.Warmup,
		BLAS: blas.Name(), Threads: runtime.GOMAXPROCS(0), OpenBLASThreads: os.Getenv("OPENBLAS_NUM_THREADS"), OpenBLASCore: os.Getenv("OPENBLAS_CORETYPE"),
	}
	res.FLOPPerToken = StepFLOPsPerToken(p.Config, p.SeqLen, res.Mode())
	total := opts.Warmup + opts.Steps
	// steps runs optimizer steps from through to (1-based, inclusive).
	steps := func(from, to int) error {
		for step := from; step <= to; step++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			start := time.Now()
			zero(grads)
			loss, _, err := m.Run(batch, model.LMHead, MeanTokenLoss, grads, 1)
			if err != nil {
				return fmt.Errorf("bench train: step %d: %w", step, err)
			}
			norm := train.ClipGradNorm(grads, benchMaxGradNorm, 0)
			if math.IsNaN(loss) || math.IsInf(loss, 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
				return fmt.Errorf("bench train: step %d: loss %v, grad norm %v", step, loss, norm)
			}
			if err := opt.Step(params, grads, benchLR); err != nil {
				return fmt.Errorf("bench train: step %d: %w", step, err)
			}
			sec := time.Since(start).Seconds()
			res.StepSeconds = append(res.StepSeconds, sec)
			if step == 1 {
				res.LossFirst = loss
			}
			res.LossLast = loss
			if opts.Log != nil {
				fmt.Fprintf(opts.Log, "step %d/%d: %.3f s, %.0f tokens/s, loss %.4f\n", step, total, sec, float64(p.Batch*p.SeqLen)/sec, loss)
			}
			if opts.AfterStep != nil {
				mem, err := ReadMemory()
				if err != nil {
					return err
				}
				if err := opts.AfterStep(step, mem); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := steps(1, opts.Warmup); err != nil {
		return TrainResult{}, err
	}
	if err := profiled(opts.Profile, func() error { return steps(opts.Warmup+1, total) }); err != nil {
		return TrainResult{}, err
	}
	mem, err := ReadMemory()
	if err != nil {
		return TrainResult{}, err
	}
	res.PeakRSSMB = float64(mem.Peak) / (1 << 20)
	res.TokensPerSecond = float64(p.Batch*p.SeqLen) / Median(res.StepSeconds[opts.Warmup:])
	res.AchievedGFLOPS = res.FLOPPerToken * res.TokensPerSecond / 1e9
	res.PeakGFLOPS = opts.PeakGFLOPS
	if res.PeakGFLOPS <= 0 {
		pk, err := MeasurePeak(2048, 5)
		if err != nil {
			return TrainResult{}, err
		}
		res.PeakGFLOPS = pk.GFLOPS
	}
	res.PeakShare = res.AchievedGFLOPS / res.PeakGFLOPS
	return res, nil
}

// trainModel draws the preset's random base as opts.BaseDtype holds it and, with opts.LoRAR set,
// gives it a fresh adapter the way recipe.Base.Adapt does for use_peft: true.
func trainModel(p Preset, opts TrainOptions) (*checkpoint.Model, error) {
	q, err := BaseQuant(opts.BaseDtype)
	if err != nil {
		return nil, fmt.Errorf("bench train: %w", err)
	}
	w, err := InitBase(p.Config, opts.Seed, 0.02, q)
	if err != nil {
		return nil, fmt.Errorf("bench train: %w", err)
	}
	ck := &checkpoint.Model{Weights: w, Source: "random " + p.Name}
	if opts.LoRAR > 0 {
		r, alpha, dropout := opts.LoRAR, loraAlpha(opts.LoRAR), 0.0
		ad, err := lora.New(lora.Config{UsePEFT: true, LoraR: &r, LoraAlpha: &alpha, LoraDropout: &dropout, LoraTargetModules: lora.AllLinear}, w, opts.Seed)
		if err != nil {
			return nil, fmt.Errorf("bench train: %w", err)
		}
		ck.Adapter = ad
	}
	return ck, nil
}

// profiled runs f under a pprof CPU profile written to w, stopped when f returns; just f when w is nil.
func profiled(w io.Writer, f func() error) error {
	if w == nil {
		return f()
	}
	if err := pprof.StartCPUProfile(w); err != nil {
		return fmt.Errorf("bench train: cpu profile: %w", err)
	}
	defer pprof.StopCPUProfile()
	return f()
}

// MeanTokenLoss is SFT's objective: the mean negative log-likelihood over every counted target of
// the batch, so each row's d loss/d logprob is -1/(total targets).
func MeanTokenLoss(s model.Stats) (float64, []float64, []float64, error) {
	var lp, n float64
	for i := range s.LogProb {
		lp += s.LogProb[i]
		n += s.Tokens[i]
	}
	if n == 0 {
		return 0, nil, nil, fmt.Errorf("bench: batch has no trained tokens")
	}
	d := make([]float64, len(s.LogProb))
	for i := range d {
		d[i] = -1 / n
	}
	return -lp / n, d, nil, nil
}

// RandomBatch is rows × seqLen next-token examples cut from rows random sequences of seqLen+1
// tokens: inputs are the first seqLen, targets the last seqLen, so every position is trained.
func RandomBatch(vocab, rows, seqLen int, seed uint64) *data.Batch {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := rows * seqLen
	b := &data.Batch{B: rows, T: seqLen,
		Tokens: make([]int32, n), Targets: make([]int32, n), Weights: make([]float32, n),
		Positions: make([]int32, n), Segments: make([]int32, n), LastIndex: make([]int32, rows)}
	for r := range rows {
		seq := make([]int32, seqLen+1)
		for i := range seq {
			seq[i] = int32(rng.IntN(vocab))
		}
		copy(b.Tokens[r*seqLen:], seq[:seqLen])
		copy(b.Targets[r*seqLen:], seq[1:])
		for t := range seqLen {
			b.Weights[r*seqLen+t] = 1
			b.Positions[r*seqLen+t] = int32(t)
			b.Segments[r*seqLen+t] = 1
		}
		b.LastIndex[r] = int32(seqLen - 1)
		b.Rows = append(b.Rows, r)
	}
	return b
}

// zero clears the gradient buffers, one tensor per task over the cores, as the training loop does.
func zero(grads [][]float32) {
	var wg sync.WaitGroup
	work := make(chan []float32, len(grads))
	for _, g := range grads {
		work <- g
	}
	close(work)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for g := range work {
				clear(g)
			}
		})
	}
	wg.Wait()
}

// Median is the middle value of xs (the mean of the two middle ones for an even count).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
