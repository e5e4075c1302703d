package main

import (
	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/conf"
)

// jobFlags are the flags every config-driven job shares: --config FILE and repeated --set key=value.
type jobFlags struct {
	config string
	sets   []string
}

func (f *jobFlags) register(cmd *cobra.Command, required bool) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "YAML config file (keys as TRL names them)")
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "override a config key: --set learning_rate=1e-5 (repeatable)")
	if required {
		_ = cmd.MarkFlagRequired("config")
	}
}

// load fills out from the config file, ALIGNKIT_* variables and --set overrides.
func (f *jobFlags) load(out any) error { return conf.Load(f.config, f.sets, out) }
