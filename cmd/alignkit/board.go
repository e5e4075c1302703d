package main

import (
	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/board"
)

func newBoardCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "board DIR [--addr 127.0.0.1:6006]",
		Short: "Serve a dashboard of the runs under DIR: live metric curves, evals and configs, runs overlaid",
		Long: "Serve a web page on loopback that lists every run under DIR (a directory holding metrics.jsonl,\n" +
			"at most 4 levels down) and draws its metrics.jsonl curves, polling every 2 s so running jobs\n" +
			"grow live; pick runs with the checkboxes to overlay them, one chart per metric. It also shows\n" +
			"each run's run_config.json side by side and its eval results (gatt_eval.json adherence by turn,\n" +
			"reward_vs_k.json, summary and win-rate JSON). It serves files, so --addr must be loopback.\n" +
			"Ctrl-C stops it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := board.CheckAddr(addr); err != nil {
				return err
			}
			s, err := board.New(args[0])
			if err != nil {
				return err
			}
			return s.ListenAndServe(cmd.Context(), addr, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&addr, "addr", board.DefaultAddr, "listen address (loopback only)")
	return cmd
}
