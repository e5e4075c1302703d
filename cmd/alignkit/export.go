package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/model/hf"
)

func newExportCmd() *cobra.Command {
	var modelPath, adapter, format, out, dtype, shard, name string
	var merge bool
	cmd := &cobra.Command{
		Use:   "export --model DIR [--adapter DIR [--merge]] --format gguf|hf --out PATH [--dtype f32|f16|q8_0|bf16] [--max-shard-size 2GB]",
		Short: "Write the model for an inference engine: GGUF for llama.cpp/ollama, HF safetensors for transformers/vLLM",
		Long: "Write the model for an inference engine: GGUF for llama.cpp/ollama, HF safetensors for\n" +
			"transformers/vLLM. With --adapter (a PEFT LoRA directory over --model), --format gguf writes a\n" +
			"GGUF LoRA adapter for llama.cpp's --lora and --format hf the PEFT adapter directory; with --merge\n" +
			"too, the model with the adapter folded in (W + scale·B·A), in either format.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if merge && adapter == "" {
				return fmt.Errorf("--merge needs --adapter DIR (the LoRA adapter to fold into --model)")
			}
			valid := map[string][]string{"gguf": {"f32", "f16", "q8_0"}, "hf": {"f32", "bf16", "f16"}}
			dtypes, ok := valid[format]
			if !ok {
				return fmt.Errorf("--format %q: want gguf or hf", format)
			}
			if dtype == "" {
				dtype = "f32"
			}
			if !contains(dtypes, dtype) {
				return fmt.Errorf("--dtype %q is not valid for --format %s: want one of %s", dtype, format, strings.Join(dtypes, ", "))
			}
			if parent := filepath.Dir(filepath.Clean(out)); parent != "" {
				if st, err := os.Stat(parent); err != nil || !st.IsDir() {
					return fmt.Errorf("--out %s: directory %s does not exist", out, parent)
				}
			}
			m, err := openWithAdapter(cmd.Context(), modelPath, adapter)
			if err != nil {
				return err
			}
			if adapter != "" && !merge {
				return exportAdapter(cmd, m, format, dtype, out, name)
			}
			if m, err = checkpoint.Merged(m); err != nil {
				return err
			}
			switch format {
			case "gguf":
				// gguf.Write refuses a score head too; saying so here adds what to do instead.
				if _, ok := m.Weights.Tensors["score.weight"]; ok {
					return fmt.Errorf("--format gguf: %s is a reward model (%s: a score head instead of lm_head), which llama.cpp's llama architecture cannot run; export it with --format hf",
						modelPath, strings.Join(m.Weights.Config.Architectures, ","))
				}
				if err := gguf.Write(out, m.Weights, checkpoint.GGUFTokenizer(m.Tok), gguf.WriteOptions{Name: name, Dtype: dtype}); err != nil {
					return err
				}
			case "hf":
				opts := hf.SaveOptions{Dtype: dtype}
				if shard != "" {
					if opts.MaxShardSize, err = hf.ParseSize(shard); err != nil {
						return fmt.Errorf("--max-shard-size: %w", err)
					}
				}
				if err := checkpoint.Save(out, m, opts); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s, %s)\n", out, format, dtype)
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model directory or .gguf file")
	cmd.Flags().StringVar(&adapter, "adapter", "", "PEFT LoRA adapter directory over --model: exported as an adapter, or merged with --merge")
	cmd.Flags().BoolVar(&merge, "merge", false, "with --adapter: write the merged model instead of the adapter")
	cmd.Flags().StringVar(&format, "format", "gguf", "gguf or hf")
	cmd.Flags().StringVar(&out, "out", "", "output file (gguf) or directory (hf)")
	cmd.Flags().StringVar(&dtype, "dtype", "", "gguf: f32, f16 or q8_0; hf: f32, bf16 or f16 (default f32)")
	cmd.Flags().StringVar(&shard, "max-shard-size", "", "hf: shard the safetensors above this size, e.g. 2GB")
	cmd.Flags().StringVar(&name, "name", "", "gguf: general.name (default: the output file name)")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// exportAdapter writes m's adapter alone: a GGUF LoRA adapter, or the PEFT adapter directory.
func exportAdapter(cmd *cobra.Command, m *checkpoint.Model, format, dtype, out, name string) error {
	if dtype != "f32" {
		return fmt.Errorf("--dtype %s: a LoRA adapter is exported in f32 (add --merge to export the merged model in %s)", dtype, dtype)
	}
	switch format {
	case "gguf":
		if err := gguf.WriteLoRA(out, m.Weights.Config, m.Adapter, name); err != nil {
			return err
		}
	case "hf":
		if err := checkpoint.SaveAdapter(out, m); err != nil {
			return err
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s LoRA adapter, r %d, %d weights)\n", out, format, m.Adapter.R, len(m.Adapter.Layers))
	return nil
}

// openWithAdapter opens --model, with the PEFT LoRA adapter directory --adapter over it when given.
func openWithAdapter(ctx context.Context, modelPath, adapter string) (*checkpoint.Model, error) {
	if adapter == "" {
		return checkpoint.OpenContext(ctx, modelPath)
	}
	return checkpoint.OpenAdapter(ctx, modelPath, adapter)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
