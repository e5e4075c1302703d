package main

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/sft"
	"github.com/alignkit/alignkit/train"
)

func newSFTCmd() *cobra.Command {
	var flags jobFlags
	cmd := &cobra.Command{
		Use:   "sft --config configs/sft/stories260k.yaml [--set key=value ...]",
		Short: "Supervised fine-tuning (Llama 2-Chat stage 1): train on the answers of prompt/answer data",
		Long: "Supervised fine-tuning (Llama 2-Chat stage 1): train on the answers of prompt/answer data.\n\n" +
			"Config keys (TRL's names; ALIGNKIT_<KEY> and --set key=value override the file):\n" + keyList(reflect.TypeOf(sft.Config{})),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := sft.DefaultConfig()
			if err := flags.load(&cfg); err != nil {
				return err
			}
			_, err := sft.Run(cmd.Context(), cfg, train.WithLogWriter(cmd.ErrOrStderr()))
			return err
		},
	}
	flags.register(cmd, true)
	return cmd
}

// keyList formats a config struct's keys for --help, one per line.
func keyList(t reflect.Type) string {
	var sb strings.Builder
	for _, k := range conf.Keys(t) {
		fmt.Fprintf(&sb, "  %-30s %s", k.Name, k.Type)
		if k.Doc != "" {
			fmt.Fprintf(&sb, ": %s", k.Doc)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}
