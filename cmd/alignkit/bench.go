package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/bench"
	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/model/tokenizer"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench train|generate|sft|allreduce|peak|init|report",
		Short: "Measure training and generation speed on this machine (see bench/run.sh for the comparison with PyTorch and llama.cpp)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchTrainCmd(), newBenchGenerateCmd(), newBenchSFTCmd(), newBenchAllreduceCmd(), newBenchPeakCmd(), newBenchInitCmd(), newBenchReportCmd())
	return cmd
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	return enc.Encode(v)
}

func newBenchTrainCmd() *cobra.Command {
	var preset string
	var opts bench.TrainOptions
	var asJSON, quiet bool
	var profile string
	var batch, seqLen int
	cmd := &cobra.Command{
		Use: "train --preset " + strings.Join(bench.PresetNames(), "|") + " [--lora-r N] [--base-dtype " + strings.Join(bench.BaseDtypeNames(), "|") +
			"] [--batch B] [--seq-len T] [--steps N] [--warmup W] [--gradient-checkpointing] [--peak-gflops G] [--json]",
		Short: "Time full optimizer steps (forward, backward, clipping, AdamW) on a random model, in full or with LoRA; report tokens/s, peak RSS, GFLOP/s",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := bench.LookupPreset(preset)
			if err != nil {
				return fmt.Errorf("--preset: %w", err)
			}
			if cmd.Flags().Changed("batch") {
				if batch < 1 {
					return fmt.Errorf("--batch %d: must be >= 1", batch)
				}
				p.Batch = batch
			}
			if cmd.Flags().Changed("seq-len") {
				if seqLen < 2 {
					return fmt.Errorf("--seq-len %d: must be >= 2 (inputs and next-token targets)", seqLen)
				}
				p.SeqLen = seqLen
			}
			opts.Preset = p
			if !quiet {
				opts.Log = cmd.ErrOrStderr()
			}
			res, err := benchTrain(cmd.Context(), opts, profile)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d×%d, %s, %d trainable (%s, %d threads): %.0f tokens/s, peak RSS %.0f MB, %.1f GFLOP/s = %.1f%% of %.0f GFLOP/s peak, loss %.4f -> %.4f\n",
				res.Preset, res.Batch, res.SeqLen, res.Describe(), res.TrainableParams, res.BLAS, res.Threads, res.TokensPerSecond, res.PeakRSSMB,
				res.AchievedGFLOPS, 100*res.PeakShare, res.PeakGFLOPS, res.LossFirst, res.LossLast)
			return nil
		},
	}
	cmd.Flags().StringVar(&preset, "preset", "ref", "shape: "+strings.Join(bench.PresetNames(), ", "))
	cmd.Flags().IntVar(&opts.Steps, "steps", 5, "timed optimizer steps (the median is reported)")
	cmd.Flags().IntVar(&opts.Warmup, "warmup", 1, "untimed steps first (graph building, first-touch allocations)")
	cmd.Flags().Float64Var(&opts.PeakGFLOPS, "peak-gflops", 0, "the machine's fp32 peak in GFLOP/s; 0 measures it with a large sgemm after training")
	cmd.Flags().Uint64Var(&opts.Seed, "seed", 1, "seed for the weights and the tokens")
	cmd.Flags().BoolVar(&opts.GradientCheckpointing, "gradient-checkpointing", false, "recompute each layer's activations in the backward pass (gradient_checkpointing: true)")
	cmd.Flags().IntVar(&opts.LoRAR, "lora-r", 0, "0 trains every weight; N > 0 trains a rank-N LoRA adapter on every linear layer of the decoder "+
		"(all-linear: q, k, v, o, gate, up, down; not the LM head) with lora_alpha 2·N and no dropout, over a frozen base")
	cmd.Flags().StringVar(&opts.BaseDtype, "base-dtype", "float32", "how the base is held: float32; bfloat16 or float16 (torch_dtype); int8 (load_in_8bit, Q8_0) "+
		"or nf4 (load_in_4bit, QLoRA), both with lm_head float32. Anything but float32 is frozen and needs --lora-r")
	cmd.Flags().IntVar(&batch, "batch", 0, "rows per step (default: the preset's)")
	cmd.Flags().IntVar(&seqLen, "seq-len", 0, "tokens per row (default: the preset's)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no per-step lines on stderr")
	cmd.Flags().StringVar(&profile, "cpuprofile", "", "write a pprof CPU profile of the timed steps to this file (go tool pprof bin/alignkit FILE)")
	return cmd
}

// benchTrain is bench.Train with its CPU profile written to path when one is given (withProfile).
func benchTrain(ctx context.Context, opts bench.TrainOptions, path string) (bench.TrainResult, error) {
	return withProfile(path, func(w io.Writer) (bench.TrainResult, error) {
		opts.Profile = w
		return bench.Train(ctx, opts)
	})
}

// withProfile runs run with a CPU profile written atomically to path, or with none when path is
// "": a path that cannot be written fails before the run starts, and the file appears only when
// the run succeeds.
func withProfile[R any](path string, run func(profile io.Writer) (R, error)) (R, error) {
	if path == "" {
		return run(nil)
	}
	var res R
	var runErr error
	err := atomicfile.Write(path, func(w io.Writer) error {
		res, runErr = run(w)
		return runErr
	})
	if runErr != nil {
		return res, runErr
	}
	if err != nil {
		return res, fmt.Errorf("--cpuprofile: %w", err)
	}
	return res, nil
}

func newBenchGenerateCmd() *cobra.Command {
	var modelPath, name, preset, shared, profile string
	var opts bench.GenerateOptions
	var asJSON, quiet bool
	cmd := &cobra.Command{
		Use:   "generate [--model DIR|GGUF] [--preset decode512] [--prompt-len P] [--new-tokens N] [--runs R] [--cpuprofile FILE] [--json]",
		Short: "Time prefill and greedy decode with the inference engine (a random preset model, and stories260K when ../shared has it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if profile != "" && modelPath == "" {
				return fmt.Errorf("--cpuprofile %s: needs --model (one model to profile)", profile)
			}
			targets, skipped, err := bench.GenerateTargets(modelPath, preset, shared, opts.Seed)
			if err != nil {
				return err
			}
			if name != "" && modelPath != "" {
				targets[0].Name = name
			}
			if skipped != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), skipped)
			}
			if !quiet {
				opts.Log = cmd.ErrOrStderr()
			}
			var results []bench.GenerateResult
			for _, t := range targets {
				o := opts
				o.Model, o.Weights = t.Name, t.Weights
				res, err := benchGenerate(cmd.Context(), o, profile)
				if err != nil {
					return err
				}
				results = append(results, res)
				if !asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "%s (%s, %d threads): prefill %.0f tokens/s, decode %.1f tokens/s, peak RSS %.0f MB\n",
						res.Model, res.BLAS, res.Threads, res.PrefillTokensPerSecond, res.DecodeTokensPerSecond, res.PeakRSSMB)
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), results)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model directory or .gguf file (default: --preset's random model, and stories260K from --shared)")
	cmd.Flags().StringVar(&name, "name", "", "what the report calls --model (default: its path)")
	cmd.Flags().StringVar(&preset, "preset", "decode512", "random model shape when no --model is given")
	cmd.Flags().StringVar(&shared, "shared", "../shared", "shared reference folder holding models/stories260K")
	cmd.Flags().IntVar(&opts.PromptLen, "prompt-len", 128, "random prompt tokens to prefill")
	cmd.Flags().IntVar(&opts.NewTokens, "new-tokens", 128, "tokens to decode greedily")
	cmd.Flags().IntVar(&opts.Runs, "runs", 3, "timed runs (after one warm-up when more than 1); medians are reported")
	cmd.Flags().Uint64Var(&opts.Seed, "seed", 1, "seed for the random model and prompt")
	cmd.Flags().StringVar(&profile, "cpuprofile", "", "write a pprof CPU profile of the timed runs of --model to this file (go tool pprof bin/alignkit FILE)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per model")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no per-run lines on stderr")
	return cmd
}

// benchGenerate is bench.Generate with its CPU profile written to path when one is given
// (withProfile).
func benchGenerate(ctx context.Context, opts bench.GenerateOptions, path string) (bench.GenerateResult, error) {
	return withProfile(path, func(w io.Writer) (bench.GenerateResult, error) {
		opts.Profile = w
		return bench.Generate(ctx, opts)
	})
}

func newBenchPeakCmd() *cobra.Command {
	var n, reps int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peak [--n 2048] [--reps 5] [--json]",
		Short: "Measure the machine's fp32 peak with a large square sgemm through the BLAS in use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pk, err := bench.MeasurePeak(n, reps)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), pk)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fp32 sgemm %d³ (%s): %.0f GFLOP/s (best of %d)\n", pk.N, pk.BLAS, pk.GFLOPS, pk.Reps)
			return nil
		},
	}
	cmd.Flags().IntVar(&n, "n", 2048, "matrix size")
	cmd.Flags().IntVar(&reps, "reps", 5, "timed repetitions (the best is reported)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newBenchAllreduceCmd() *cobra.Command {
	var preset string
	var loraRank, reps, warm int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "allreduce --preset NAME [--lora-r R] [--reps N] [--json]",
		Short: "Time one training step's gradient all-reduce over the ranks of an mpirun job (alignkit built with MPI)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := bench.LookupPreset(preset)
			if err != nil {
				return fmt.Errorf("--preset: %w", err)
			}
			c, err := dist.World()
			if err != nil {
				return err
			}
			if c.Size() < 2 {
				return fmt.Errorf("bench allreduce: one process: run it under mpirun -np 2 or more, with alignkit built with MPI (make build MPI=1)")
			}
			res, err := bench.Allreduce(c, p, loraRank, warm, reps)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "allreduce %s LoRA r%d (0: full): %d values, %.1f MB per step on %d ranks: %.1f ms; modelled 1/10/100 Gbit/s: %.3g / %.3g / %.3g s\n",
				preset, loraRank, res.Params, float64(res.Bytes)/1e6, res.Ranks, 1000*res.Median,
				res.LinkSeconds["1gbit"], res.LinkSeconds["10gbit"], res.LinkSeconds["100gbit"])
			return nil
		},
	}
	cmd.Flags().StringVar(&preset, "preset", "ref", "shape: "+strings.Join(bench.PresetNames(), ", "))
	cmd.Flags().IntVar(&loraRank, "lora-r", 0, "LoRA rank on every linear layer (0: full fine-tuning, every weight's gradient)")
	cmd.Flags().IntVar(&reps, "reps", 5, "timed all-reduces (the median is reported)")
	cmd.Flags().IntVar(&warm, "warmup", 2, "untimed all-reduces first")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newBenchInitCmd() *cobra.Command {
	var preset, out, tokPath string
	var seed uint64
	cmd := &cobra.Command{
		Use:   "init --preset NAME --out DIR [--tokenizer FILE]",
		Short: "Write a random model of a benchmark preset as an HF directory (to export to GGUF for llama.cpp, or fine-tune)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := bench.LookupPreset(preset)
			if err != nil {
				return fmt.Errorf("--preset: %w", err)
			}
			var tok *tokenizer.Tokenizer
			if tokPath != "" {
				if tok, err = tokenizer.LoadFile(tokPath); err != nil {
					return err
				}
			}
			if _, err := bench.WriteModel(p, seed, tok, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %.2fM parameters\n", out, p.About, float64(bench.ParamCount(p.Config))/1e6)
			return nil
		},
	}
	cmd.Flags().StringVar(&preset, "preset", "decode512", "shape: "+strings.Join(bench.PresetNames(), ", "))
	cmd.Flags().StringVar(&out, "out", "", "output model directory")
	cmd.Flags().StringVar(&tokPath, "tokenizer", "", "tokenizer.model or tokenizer.json to copy in (default: a byte-level tokenizer)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed for the weights")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func newBenchSFTCmd() *cobra.Command {
	var opts bench.SFTOptions
	var asJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "sft --model DIR --dataset FILE [--name NAME] [--steps N] [--warmup W] [--json]",
		Short: "Time `alignkit sft` itself (real data, chat template, packing, the training loop) and report its tokens/s",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Name == "" {
				opts.Name = opts.Model
			}
			if verbose {
				opts.Log = cmd.ErrOrStderr()
			}
			res, err := bench.SFT(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sft %s (%d×%d packed): %.0f tokens/s, peak RSS %.0f MB, loss %.4f -> %.4f\n",
				res.Preset, res.Batch, res.SeqLen, res.TokensPerSecond, res.PeakRSSMB, res.LossFirst, res.LossLast)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Model, "model", "", "model directory or .gguf file to fine-tune")
	cmd.Flags().StringVar(&opts.Dataset, "dataset", "", "training data file (TRL format)")
	cmd.Flags().StringVar(&opts.Name, "name", "", "what the report calls this run (default: --model)")
	cmd.Flags().StringVar(&opts.ChatTemplate, "chat-template", "llama-2", "chat template for a model without one")
	cmd.Flags().IntVar(&opts.Batch, "batch", 8, "rows per micro-batch")
	cmd.Flags().IntVar(&opts.MaxLength, "max-length", 256, "tokens per packed row")
	cmd.Flags().IntVar(&opts.Steps, "steps", 5, "timed optimizer steps (the median is reported)")
	cmd.Flags().IntVar(&opts.Warmup, "warmup", 1, "untimed steps first")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the trainer's own log lines on stderr")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("dataset")
	return cmd
}

func newBenchReportCmd() *cobra.Command {
	var in, out string
	var settings bool
	var info bench.ReportInfo
	cmd := &cobra.Command{
		Use:   "report --in RESULTS.jsonl [--settings] [--out FILE.md] [--date D] [--machine M] [--blas B] [--env E] [--note TEXT ...]",
		Short: "Turn collected benchmark JSON lines into the markdown table of ratios against the targets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(in)
			if err != nil {
				return fmt.Errorf("--in: %w", err)
			}
			defer f.Close()
			res, err := bench.ReadResults(f, in)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			write := bench.WriteReport
			if settings {
				write = bench.WriteSettingsReport
			}
			if err := write(&buf, res, info); err != nil {
				return err
			}
			if out != "" {
				if err := atomicfile.WriteFile(out, buf.Bytes()); err != nil {
					return err
				}
			}
			_, err = cmd.OutOrStdout().Write(buf.Bytes())
			return err
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "JSON lines from bench train/generate/sft/peak, torch_train.py and llamacpp_decode.mjs")
	cmd.Flags().StringVar(&out, "out", "", "also write the report here (atomically)")
	cmd.Flags().StringVar(&info.Date, "date", "", "date line")
	cmd.Flags().StringVar(&info.Machine, "machine", "", "machine line (CPU model, cores)")
	cmd.Flags().StringVar(&info.BLAS, "blas", "", "BLAS line")
	cmd.Flags().StringVar(&info.Env, "env", "", "environment line (thread settings)")
	cmd.Flags().StringVar(&info.Version, "version", "", "the alignkit binary measured (the first line of alignkit version)")
	cmd.Flags().StringArrayVar(&info.Notes, "note", nil, "a note under the table (repeatable)")
	cmd.Flags().BoolVar(&settings, "settings", false, "compare thread and OpenBLAS kernel settings instead of engines")
	_ = cmd.MarkFlagRequired("in")
	return cmd
}
