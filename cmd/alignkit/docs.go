package main

import (
	"fmt"
	"io"
	"reflect"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/conf"
	"github.com/alignkit/alignkit/dpo"
	"github.com/alignkit/alignkit/gatt"
	"github.com/alignkit/alignkit/grpo"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/ppo"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/sft"
	"github.com/alignkit/alignkit/winrate"
)

// configJobs are the config-driven commands, in pipeline order, with the struct each one loads.
var configJobs = []struct {
	command string
	typ     reflect.Type
}{
	{"init", reflect.TypeFor[checkpoint.InitSpec]()},
	{"sft", reflect.TypeFor[sft.Config]()},
	{"reward train", reflect.TypeFor[reward.Config]()},
	{"rlhf sample", reflect.TypeFor[rlhf.SampleConfig]()},
	{"rlhf run", reflect.TypeFor[ppo.RLHFConfig]()},
	{"dpo", reflect.TypeFor[dpo.Config]()},
	{"grpo", reflect.TypeFor[grpo.Config]()},
	{"ppo", reflect.TypeFor[ppo.TrainConfig]()},
	{"gatt synth", reflect.TypeFor[gatt.SynthConfig]()},
	{"gatt eval", reflect.TypeFor[gatt.EvalConfig]()},
	{"eval winrate", reflect.TypeFor[winrate.Config]()},
}

func newDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "config-reference",
		Short:  "Print the config reference for every job (docs/CONFIG.md is this output)",
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return writeConfigReference(cmd.OutOrStdout())
		},
	}
}

func writeConfigReference(w io.Writer) error {
	fmt.Fprintln(w, "# alignkit config reference")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated from the config structs by `alignkit config-reference` (`make docs`); a test fails when")
	fmt.Fprintln(w, "this file and the code disagree. Every key can also be set with `--set key=value` or an")
	fmt.Fprintln(w, "`ALIGNKIT_<KEY>` environment variable (dots become underscores).")
	for _, j := range configJobs {
		fmt.Fprintf(w, "\n## alignkit %s\n\n%s", j.command, conf.Reference(j.typ))
	}
	return nil
}
