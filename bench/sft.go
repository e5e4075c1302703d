package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/sft"
	"github.com/alignkit/alignkit/train"
)

// SFTOptions configure SFT.
type SFTOptions struct {
	Name    string // what the report calls the run (e.g. "stories260k", "ref")
	Model   string // model_name_or_path
	Dataset string // dataset_name
	// ChatTemplate is used when the model has none (default llama-2).
	ChatTemplate string
	// Batch × MaxLength is the packed micro-batch; Steps are timed after Warmup untimed ones.
	Batch, MaxLength, Steps, Warmup int
	// Log gets the trainer's own lines; nil discards them.
	Log io.Writer
}

// SFTResult is what `alignkit bench sft --json` prints.
type SFTResult struct {
	Kind            string    `json:"kind"` // "sft"
	Engine          string    `json:"engine"`
	Preset          string    `json:"preset"`
	Model           string    `json:"model"`
	Dataset         string    `json:"dataset"`
	Batch           int       `json:"batch"`
	SeqLen          int       `json:"seq_len"`
	Steps           int       `json:"steps"`
	Warmup          int       `json:"warmup"`
	Ranks           int       `json:"ranks,omitempty"` // processes of an mpirun job (data-parallel); 0 or 1: one
	StepTokensPerS  []float64 `json:"step_tokens_per_s"`
	TokensPerSecond float64   `json:"tokens_per_s"`
	PeakRSSMB       float64   `json:"peak_rss_mb"`
	LossFirst       float64   `json:"loss_first"`
	LossLast        float64   `json:"loss_last"`
}

// SFT times `alignkit sft` itself (sft.Run: data loading, chat template, packing, the shared
// training loop with its logging) on real data: Warmup+Steps optimizer steps of Batch packed rows of
// MaxLength tokens, a metrics line per step, no evaluation and no checkpoint until the end, into a
// temporary output_dir that is removed afterwards. Tokens/s is the median of the loop's own
// tokens_per_second over the steps after warm-up (the loop counts the non-padding positions).
// Under mpirun the run is data-parallel (global batch Batch × ranks; tokens/s counts every rank's)
// and rank 0 alone reads the metrics and returns the result; the other ranks return a zero result.
func SFT(ctx context.Context, o SFTOptions) (SFTResult, error) {
	if o.Steps < 1 || o.Warmup < 0 || o.Batch < 1 || o.MaxLength < 2 {
		return SFTResult{}, fmt.Errorf("bench sft: steps %d, warmup %d, batch %d, max length %d out of range", o.Steps, o.Warmup, o.Batch, o.MaxLength)
	}
	if o.ChatTemplate == "" {
		o.ChatTemplate = "llama-2"
	}
	out, err := os.MkdirTemp("", "alignkit-bench-sft-")
	if err != nil {
		return SFTResult{}, fmt.Errorf("bench sft: %w", err)
	}
	defer os.RemoveAll(out)
	cfg := sft.DefaultConfig()
	cfg.ModelNameOrPath = o.Model
	cfg.Data.DatasetName = o.Dataset
	cfg.Data.ChatTemplate = o.ChatTemplate
	cfg.Data.MaxLength = o.MaxLength
	cfg.Data.Packing = true
	cfg.OutputDir = filepath.Join(out, "run")
	cfg.MaxSteps = o.Warmup + o.Steps
	cfg.PerDeviceTrainBatchSize = o.Batch
	cfg.LearningRate = benchLR
	cfg.WeightDecay = benchWeightDecay
	cfg.LRSchedulerType = "constant"
	cfg.LoggingSteps = 1
	cfg.SaveSteps = 1 << 30
	noPlots := false
	cfg.ReportPlots = &noPlots
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	comm, err := dist.World()
	if err != nil {
		return SFTResult{}, err
	}
	if _, err := sft.Run(ctx, cfg, train.WithLogWriter(log), train.WithProgressBar(false), train.WithComm(comm)); err != nil {
		return SFTResult{}, fmt.Errorf("bench sft %s: %w", o.Name, err)
	}
	if comm.Rank() != 0 {
		return SFTResult{}, nil // rank 0's output_dir holds the metrics
	}
	mem, err := ReadMemory()
	if err != nil {
		return SFTResult{}, err
	}
	path := filepath.Join(cfg.OutputDir, "metrics.jsonl")
	raw, err := os.ReadFile(path)
	if err != nil {
		return SFTResult{}, fmt.Errorf("bench sft: reading %s: %w", path, err)
	}
	res := SFTResult{Kind: "sft", Engine: "alignkit sft", Preset: o.Name, Model: o.Model, Dataset: o.Dataset, Batch: o.Batch,
		SeqLen: o.MaxLength, Steps: o.Steps, Warmup: o.Warmup, Ranks: comm.Size(), PeakRSSMB: float64(mem.Peak) / (1 << 20)}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var m struct {
			Step int      `json:"step"`
			TPS  *float64 `json:"tokens_per_second"`
			Loss *float64 `json:"loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return SFTResult{}, fmt.Errorf("bench sft: %s line %d: %w", path, line, err)
		}
		if m.TPS == nil || m.Loss == nil {
			continue
		}
		if m.Step == 1 {
			res.LossFirst = *m.Loss
		}
		res.LossLast = *m.Loss
		if m.Step > o.Warmup {
			res.StepTokensPerS = append(res.StepTokensPerS, *m.TPS)
		}
	}
	if len(res.StepTokensPerS) != o.Steps {
		return SFTResult{}, fmt.Errorf("bench sft: %s has %d timed steps, want %d", path, len(res.StepTokensPerS), o.Steps)
	}
	res.TokensPerSecond = Median(res.StepTokensPerS)
	return res, nil
}
