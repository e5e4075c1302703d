package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/gatt"
)

func newGattCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gatt",
		Short: "Ghost Attention (Llama 2 §3.3): synthesise multi-turn instruction dialogues, measure consistency over turns",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newGattSynthCmd(), newGattEvalCmd(), newGattListsCmd())
	return cmd
}

func newGattSynthCmd() *cobra.Command {
	var flags jobFlags
	cmd := &cobra.Command{
		Use:   "synth --config configs/gatt/synth-stories260k.yaml [--set key=value ...]",
		Short: "Synthesise GAtt training dialogues into output_dir/gatt.parquet (resumable)",
		Long: "Synthesise GAtt training dialogues: for each source conversation, draw an instruction of 1-3\n" +
			"constraints (hobby, language, public figure; terse half the time), sample every reply turn by turn\n" +
			"with the instruction appended to every user message, then keep the instruction in the first turn\n" +
			"only. output_dir/gatt.parquet (messages, instruction, constraints, terse, trained_turn, source_row)\n" +
			"feeds `alignkit sft` unchanged. A killed run continues from output_dir/gatt.journal.jsonl.\n\n" +
			"Config keys (ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(gatt.SynthConfig{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := gatt.DefaultSynthConfig()
			if err := flags.load(&cfg); err != nil {
				return err
			}
			cfg.Progress = cmd.ErrOrStderr()
			sum, err := gatt.Synthesize(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gatt synth: %d dialogues, %d samples (%d terse) from %d source rows (%d resumed); skipped: %s; instruction in the %s message; wrote %s\n",
				sum.Dialogues, sum.Rows, sum.TerseRows, sum.SourceRows, sum.Resumed, skipLine(sum.Skipped), sum.Placement,
				cfg.OutputDir+string(os.PathSeparator)+gatt.ParquetFile)
			return nil
		},
	}
	flags.register(cmd, true)
	return cmd
}

func skipLine(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range []string{gatt.SkipFewTurns, gatt.SkipTooLong} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
		}
	}
	return strings.Join(parts, ", ")
}

func newGattEvalCmd() *cobra.Command {
	var flags jobFlags
	cmd := &cobra.Command{
		Use:   "eval --config configs/gatt/eval-stories260k.yaml [--set key=value ...]",
		Short: "Measure, turn by turn, how often replies keep the instruction set in the first turn",
		Long: "Measure multi-turn consistency (Llama 2 Table 30): the instruction is set in the first turn, the\n" +
			"following questions refer back to it, and each reply is checked (keyword, language, judge, reward).\n" +
			"Writes gatt_eval.json, gatt_eval.md (turn x model, % adherent), gatt_eval.png and the transcripts.\n\n" +
			"Config keys (ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(gatt.EvalConfig{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := gatt.DefaultEvalConfig()
			if err := flags.load(&cfg); err != nil {
				return err
			}
			cfg.Progress = cmd.ErrOrStderr()
			res, err := gatt.Evaluate(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), res.Markdown())
			return nil
		},
	}
	flags.register(cmd, true)
	return cmd
}

func newGattListsCmd() *cobra.Command {
	var (
		generate       bool
		modelPath, out string
		template       string
		b              gatt.Backend
		lc             gatt.ListGenConfig
	)
	cmd := &cobra.Command{
		Use:   "lists [--generate --model DIR] [--out FILE]",
		Short: "Write constraint lists as a config fragment: the defaults, or lists the model proposes",
		Long: "Write the hobbies, languages and public figures GAtt draws from as a YAML `constraints:` fragment.\n" +
			"Without --generate these are alignkit's defaults. With --generate the model is asked for each list,\n" +
			"as Llama 2 asked Llama 2-Chat, and the items are parsed out of its replies.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l := gatt.DefaultLists()
			if generate {
				if modelPath == "" && b.Backend != gatt.BackendOpenAI {
					return errors.New("--generate needs --model DIR (or --backend openai --base-url URL)")
				}
				var err error
				if l, err = gatt.GenerateListsFrom(cmd.Context(), b, modelPath, template, lc); err != nil {
					return err
				}
				if u := gatt.UncheckableLanguages(l); len(u) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "gatt lists: the language checker cannot identify %s: use the judge checker for them, or drop them\n", strings.Join(u, ", "))
				}
			}
			if out == "" {
				y, err := gatt.ListsYAML(l)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(y)
				return err
			}
			return gatt.WriteListsYAML(out, l)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&generate, "generate", false, "ask the model for the lists instead of writing the defaults")
	f.StringVar(&modelPath, "model", "", "model directory or .gguf file that proposes the lists")
	f.StringVar(&template, "chat-template", "", "chat template (built-in name, file or Jinja source; default: the model's own)")
	f.StringVar(&out, "out", "", "YAML file to write (default: stdout)")
	f.IntVar(&lc.N, "n", 20, "items asked for per list")
	f.IntVar(&lc.MaxNewTokens, "max-new-tokens", 256, "reply length")
	f.Float64Var(&lc.Temperature, "temperature", 0, "sampling temperature (0: greedy)")
	f.Uint64Var(&lc.Seed, "seed", 0, "sampling seed")
	f.StringVar(&b.Backend, "backend", "local", "local or openai")
	f.StringVar(&b.BaseURL, "base-url", "", "openai backend: the server's OpenAI root")
	f.StringVar(&b.ServedModelName, "served-model-name", "", "openai backend: the served model name")
	return cmd
}
