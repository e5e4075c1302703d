package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alignkit/alignkit/internal/atomicfile"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/demo/world"
	"github.com/alignkit/alignkit/model/ops"
)

// DefaultConfigDir is where the stage configs live, relative to the repository root.
const DefaultConfigDir = "configs/demo"

// MarkerFile is written into the output directory before anything else: --force only ever deletes a
// directory that holds it, so a mistyped --out cannot wipe an unrelated directory.
const MarkerFile = "demo.json"

// Output file names in the output directory.
const (
	ResultsFile     = "RESULTS.md"
	ResultsJSONFile = "results.json"
	TimingsFile     = "timings.json"
)

// Options configure one demo run.
type Options struct {
	// Out is the output directory (default runs/demo).
	Out string
	// ConfigDir holds the stage configs (default configs/demo, relative to the working directory).
	ConfigDir string
	// Quick runs QuickWorld and the shortened schedules of QuickSets, for CI.
	Quick bool
	// Force replaces a previous demo's output directory.
	Force bool
	// Seed drives the world, every training run and every sample (the command's default is 1).
	Seed uint64
	// World, when set, replaces world.Default() / QuickWorld() (tests use a micro world).
	World *world.Config
	// Sets are extra per-stage overrides (stage name -> "key=value"), applied after the quick ones,
	// as --set flags are applied after the file.
	Sets map[string][]string
	// Eval sizes the correctness evaluation; the zero value means DefaultEvalSize (QuickEvalSize with
	// Quick).
	Eval EvalSize
	// LlamaCppDir holds node-llama-cpp (default conformance/llamacpp); the llama.cpp chat sample is
	// skipped, and the table says so, when node or the package is missing.
	LlamaCppDir string
	// Log receives the stage headers and the trainers' progress (default os.Stderr).
	Log io.Writer
	// Table receives the final results table (default Log).
	Table io.Writer
	// Progress forces progress bars on or off; nil shows them when Log is a terminal.
	Progress *bool
}

// Stage names, in order. They key Options.Sets and QuickSets, and name the timings.
const (
	StageWorld     = "world"
	StageInit      = "init"
	StageSFT       = "sft"
	StageReward    = "reward"
	StageSafetyRM  = "reward-safety"
	StageSample    = "rlhf-sample"
	StageRS        = "rs-sft"
	StagePPO       = "ppo"
	StageDPO       = "dpo"
	StageGRPO      = "grpo"
	StageGAttSynth = "gatt-synth"
	StageGAttSFT   = "gatt-sft"
	StageGAttEval  = "gatt-eval"
	StageRMEval    = "rm-eval"
	StageExport    = "export"
)

// QuickSets shorten the schedules for --quick, applied over each stage's config file; with
// QuickWorld every stage still runs its real job and the model still learns a little.
var QuickSets = map[string][]string{
	StageSFT:    {"num_train_epochs=6"},
	StageReward: {"num_train_epochs=4"},
	StagePPO:    {"max_steps=16"}, // 4 updates of 16 responses
	StageGRPO:   {"max_steps=12"},
}

// QuickWorld is --quick's world: world.Quick's evaluation sizes, with half the SFT dialogues of the
// full demo (a model that learns nothing would make every later stage meaningless) and fewer
// pairs and GAtt dialogues.
func QuickWorld() world.Config {
	c := world.Quick()
	c.NumSFT, c.NumPrefs, c.NumGAtt = 2000, 800, 200
	c.NumSafetyPairs = 400
	return c
}

// Timing is one stage's wall-clock and CPU time.
type Timing struct {
	Stage   string  `json:"stage"`
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_seconds"`
}

// runner carries one run's state through the stages.
type runner struct {
	opts    Options
	out     string // output directory
	world   *world.World
	res     *Results
	timings []Timing
	log     io.Writer
	// greedy holds each evaluated stage's greedy answers to the held-out prompts, by stage name,
	// for the reward models' scores of stage rm-eval.
	greedy map[string][]string
}

// paths of the stage outputs inside the output directory.
func (r *runner) path(parts ...string) string {
	return filepath.Join(append([]string{r.out}, parts...)...)
}

// Run runs the whole pipeline and writes RESULTS.md, results.json and timings.json into the output
// directory, and prints the results table to Options.Table. Nothing in the output directory says
// the run finished until RESULTS.md appears, last.
func Run(ctx context.Context, opts Options) (*Results, error) {
	// One OpenBLAS thread per caller for the whole run: the trainers, the inference engine and gatt's
	// concurrent samplers spread their work over the cores themselves, and OpenBLAS's own pool would
	// spin against them (GAtt synthesis burnt more than twice the CPU time with OPENBLAS_NUM_THREADS=2).
	defer ops.SerialBLAS()()
	opts = opts.withDefaults()
	if err := checkConfigDir(opts.ConfigDir); err != nil {
		return nil, err
	}
	if err := prepareOut(opts.Out, opts.Force); err != nil {
		return nil, err
	}
	wc := world.Default()
	if opts.Quick {
		wc = QuickWorld()
	}
	if opts.World != nil {
		wc = *opts.World
	}
	wc.Seed = opts.Seed
	w, err := world.New(wc)
	if err != nil {
		return nil, err
	}
	r := &runner{opts: opts, out: opts.Out, world: w, log: opts.Log, greedy: map[string][]string{},
		res: &Results{Seed: opts.Seed, Quick: opts.Quick, World: wc}}
	if err := atomicfile.WriteJSON(r.path(MarkerFile), map[string]any{"seed": opts.Seed, "quick": opts.Quick, "world": wc}); err != nil {
		return nil, err
	}
	start, cpuStart := time.Now(), cpuSeconds()
	stages := r.stages()
	for i, s := range stages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fmt.Fprintf(r.log, "\n== [%d/%d] %s: %s\n", i+1, len(stages), s.name, s.title)
		t0, c0 := time.Now(), cpuSeconds()
		if err := s.run(r, ctx); err != nil {
			return nil, fmt.Errorf("demo stage %s: %w", s.name, err)
		}
		t := Timing{Stage: s.name, Seconds: time.Since(t0).Seconds(), CPU: cpuSeconds() - c0}
		r.timings = append(r.timings, t)
		fmt.Fprintf(r.log, "== %s done in %s (%.0f s CPU)\n", s.name, time.Duration(t.Seconds*float64(time.Second)).Round(time.Second), t.CPU)
	}
	total := Timing{Stage: "total", Seconds: time.Since(start).Seconds(), CPU: cpuSeconds() - cpuStart}
	r.timings = append(r.timings, total)
	r.res.Evaluate()
	if err := r.writeResults(); err != nil { // RESULTS.md last
		return nil, err
	}
	fmt.Fprintf(r.opts.Table, "\n%s\n", r.res.Table())
	fmt.Fprintf(r.log, "results: %s; %s wall, %.0f s CPU (%s)\n", r.path(ResultsFile),
		time.Duration(total.Seconds*float64(time.Second)).Round(time.Second), total.CPU, timingLine(r.timings))
	return r.res, nil
}

func (o Options) withDefaults() Options {
	if o.Out == "" {
		o.Out = filepath.Join("runs", "demo")
	}
	if o.ConfigDir == "" {
		o.ConfigDir = DefaultConfigDir
	}
	if o.LlamaCppDir == "" {
		o.LlamaCppDir = filepath.Join("conformance", "llamacpp")
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Table == nil {
		o.Table = o.Log
	}
	if o.Eval == (EvalSize{}) {
		o.Eval = DefaultEvalSize
		if o.Quick {
			o.Eval = QuickEvalSize
		}
	}
	return o
}

func checkConfigDir(dir string) error {
	st, err := os.Stat(filepath.Join(dir, "sft.yaml"))
	if err != nil || st.IsDir() {
		return fmt.Errorf("--configs %s: no sft.yaml there: run from the repository root, or point --configs at configs/demo", dir)
	}
	return nil
}

// prepareOut checks the output directory and, with force, empties a previous demo's one.
func prepareOut(out string, force bool) error {
	clean := filepath.Clean(out)
	st, err := os.Stat(clean)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.MkdirAll(clean, 0o755)
	case err != nil:
		return fmt.Errorf("--out %s: %w", out, err)
	case !st.IsDir():
		return fmt.Errorf("--out %s: is a file, not a directory", out)
	}
	entries, err := os.ReadDir(clean)
	if err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	if len(entries) == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("--out %s: directory is not empty: pass --force to replace a previous demo's output, or choose another --out", out)
	}
	if _, err := os.Stat(filepath.Join(clean, MarkerFile)); err != nil {
		return fmt.Errorf("--out %s: --force only replaces a previous demo's output, and this directory has no %s: remove it yourself or choose another --out", out, MarkerFile)
	}
	if err := os.RemoveAll(clean); err != nil {
		return fmt.Errorf("--out %s: removing the previous demo: %w", out, err)
	}
	return os.MkdirAll(clean, 0o755)
}

// load reads a stage's config file into cfg exactly as the stage's command does (conf.Load: the
// file, ALIGNKIT_* variables, then the --set overrides), with the run's paths, the quick schedule and
// the caller's overrides as sets. It prints the equivalent command line.
func (r *runner) load(stage, file, command string, sets []string, cfg any) error {
	path := filepath.Join(r.opts.ConfigDir, file)
	all := append([]string(nil), sets...)
	if r.opts.Quick {
		all = append(all, QuickSets[stage]...)
	}
	all = append(all, r.opts.Sets[stage]...)
	var sb strings.Builder
	fmt.Fprintf(&sb, "$ alignkit %s --config %s", command, path)
	for _, s := range all {
		fmt.Fprintf(&sb, " --set %s", shellQuote(s))
	}
	fmt.Fprintln(r.log, sb.String())
	return conf.Load(path, all, cfg)
}

// set formats one --set override; values that YAML would not read back as the same plain string
// are double-quoted.
func set(key, value string) string {
	plain := value != ""
	for _, c := range value {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_./-+", c)) {
			plain = false
			break
		}
	}
	if plain {
		return key + "=" + value
	}
	b, _ := json.Marshal(value)
	return key + "=" + string(b)
}

func shellQuote(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_./-+=,:", c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

func timingLine(ts []Timing) string {
	var parts []string
	for _, t := range ts {
		if t.Stage != "total" {
			parts = append(parts, fmt.Sprintf("%s %.0fs", t.Stage, t.Seconds))
		}
	}
	return strings.Join(parts, ", ")
}
