package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/blas"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/infer"
)

// GenerateOptions configure Generate.
type GenerateOptions struct {
	Weights *model.Weights
	Model   string // what the report calls the model
	// PromptLen random tokens are prefilled, then NewTokens are decoded greedily, Runs times over.
	PromptLen, NewTokens, Runs int
	Seed                       uint64
	Log                        io.Writer
	// Profile, when non-nil, gets a pprof CPU profile of the timed runs (not the warm-up).
	Profile io.Writer
}

// GenerateResult is what `alignkit bench generate --json` prints per model; bench/llamacpp_decode.mjs
// prints the same fields.
type GenerateResult struct {
	Kind                   string    `json:"kind"` // "generate"
	Engine                 string    `json:"engine"`
	Model                  string    `json:"model"`
	Params                 int64     `json:"params"`
	PromptLen              int       `json:"prompt_len"`
	NewTokens              int       `json:"new_tokens"`
	Runs                   int       `json:"runs"`
	PrefillSeconds         []float64 `json:"prefill_s"`
	DecodeSeconds          []float64 `json:"decode_s"`
	PrefillTokensPerSecond float64   `json:"prefill_tokens_per_s"`
	DecodeTokensPerSecond  float64   `json:"decode_tokens_per_s"`
	PeakRSSMB              float64   `json:"peak_rss_mb"`
	BLAS                   string    `json:"blas"`
	Threads                int       `json:"threads"`
	OpenBLASThreads        string    `json:"openblas_threads"`
	OpenBLASCore           string    `json:"openblas_coretype"`
}

// Generate times the infer engine: per run, a fresh Session prefills PromptLen random tokens (the
// time to the first next-token logits) and then decodes NewTokens tokens one Step at a time, each fed
// the argmax of the previous logits (greedy decoding). The first run is a warm-up and is not
// reported when Runs > 1; the rates are PromptLen and NewTokens over the median times.
func Generate(ctx context.Context, opts GenerateOptions) (GenerateResult, error) {
	if opts.PromptLen < 1 || opts.NewTokens < 1 || opts.Runs < 1 {
		return GenerateResult{}, fmt.Errorf("bench generate: prompt length %d, new tokens %d and runs %d must be positive", opts.PromptLen, opts.NewTokens, opts.Runs)
	}
	c := opts.Weights.Config
	if need := opts.PromptLen + opts.NewTokens; need > c.MaxPositionEmbeddings {
		return GenerateResult{}, fmt.Errorf("bench generate: %s: prompt %d + new tokens %d exceed max_position_embeddings %d", opts.Model, opts.PromptLen, opts.NewTokens, c.MaxPositionEmbeddings)
	}
	eng, err := infer.New(opts.Weights)
	if err != nil {
		return GenerateResult{}, fmt.Errorf("bench generate: %s: %w", opts.Model, err)
	}
	res := GenerateResult{Kind: "generate", Engine: "alignkit", Model: opts.Model, Params: opts.Weights.NumParams(), PromptLen: opts.PromptLen,
		NewTokens: opts.NewTokens, Runs: opts.Runs, BLAS: blas.Name(), Threads: runtime.GOMAXPROCS(0),
		OpenBLASThreads: os.Getenv("OPENBLAS_NUM_THREADS"), OpenBLASCore: os.Getenv("OPENBLAS_CORETYPE")}
	rng := rand.New(rand.NewPCG(opts.Seed, 0xdec0de))
	prompt := make([]int32, opts.PromptLen)
	for i := range prompt {
		prompt[i] = int32(rng.IntN(c.VocabSize))
	}
	total := opts.Runs
	if opts.Runs > 1 {
		total++ // one warm-up run
	}
	for run := range total {
		if err := ctx.Err(); err != nil {
			return GenerateResult{}, err
		}
		if opts.Profile != nil && run == total-opts.Runs {
			if err := pprof.StartCPUProfile(opts.Profile); err != nil {
				return GenerateResult{}, fmt.Errorf("bench generate: cpu profile: %w", err)
			}
			defer pprof.StopCPUProfile()
		}
		s := eng.NewSession(opts.PromptLen + opts.NewTokens)
		start := time.Now()
		logits, err := s.Prefill(prompt, 0)
		if err != nil {
			return GenerateResult{}, fmt.Errorf("bench generate: %s: %w", opts.Model, err)
		}
		prefill := time.Since(start).Seconds()
		start = time.Now()
		for range opts.NewTokens {
			if logits, err = s.Step(argmax(logits)); err != nil {
				return GenerateResult{}, fmt.Errorf("bench generate: %s: %w", opts.Model, err)
			}
		}
		decode := time.Since(start).Seconds()
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "%s run %d/%d: prefill %.0f tokens/s, decode %.1f tokens/s\n", opts.Model, run+1, total,
				float64(opts.PromptLen)/prefill, float64(opts.NewTokens)/decode)
		}
		if total > opts.Runs && run == 0 {
			continue
		}
		res.PrefillSeconds = append(res.PrefillSeconds, prefill)
		res.DecodeSeconds = append(res.DecodeSeconds, decode)
	}
	mem, err := ReadMemory()
	if err != nil {
		return GenerateResult{}, err
	}
	res.PeakRSSMB = float64(mem.Peak) / (1 << 20)
	res.PrefillTokensPerSecond = float64(opts.PromptLen) / Median(res.PrefillSeconds)
	res.DecodeTokensPerSecond = float64(opts.NewTokens) / Median(res.DecodeSeconds)
	return res, nil
}

// argmax is the greedy pick, the lowest id on ties.
func argmax(logits []float32) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return int32(best)
}

// Target is a model to time generation on.
type Target struct {
	Name    string
	Weights *model.Weights
}

// GenerateTargets resolves what `alignkit bench generate` times: the model at modelPath when one is
// given, else a random model of the named preset plus, when sharedDir/models/stories260K exists, that
// real model (its absence is reported on skipped, not an error).
func GenerateTargets(modelPath, preset, sharedDir string, seed uint64) (targets []Target, skipped string, err error) {
	if modelPath != "" {
		m, err := checkpoint.Open(modelPath)
		if err != nil {
			return nil, "", err
		}
		return []Target{{Name: modelPath, Weights: m.Weights}}, "", nil
	}
	p, err := LookupPreset(preset)
	if err != nil {
		return nil, "", err
	}
	targets = append(targets, Target{Name: p.Name, Weights: model.InitRandom(p.Config, seed, 0.02)})
	dir := filepath.Join(sharedDir, "models", "stories260K")
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		return targets, fmt.Sprintf("%s not found: stories260K not timed", dir), nil
	}
	m, err := checkpoint.Open(dir)
	if err != nil {
		return nil, "", err
	}
	return append(targets, Target{Name: "stories260K", Weights: m.Weights}), "", nil
}
