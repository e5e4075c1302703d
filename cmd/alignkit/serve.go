package main

import (
	"github.com/alignkit/alignkit/serve"
	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	var cfg serve.Config
	cmd := &cobra.Command{
		Use:   "serve --model DIR [--adapter DIR] [--reward-model DIR] [--addr 127.0.0.1:8080] [--chat-template T]",
		Short: "Serve a model over the OpenAI API (/v1/completions, /v1/chat/completions, /v1/score)",
		Long: "Serve a model over OpenAI-compatible endpoints: /v1/completions and /v1/chat/completions (n,\n" +
			"temperature, top_p, top_k, max_tokens, seed, stop, streaming), /v1/models, /health, and /v1/score\n" +
			"({\"prompt\", \"response\"} or {\"messages\"} -> {\"reward\"}) when --reward-model is given. Choice j of\n" +
			"a request with seed S is drawn with seed S+j. Listens on loopback unless --addr names another\n" +
			"interface; Ctrl-C stops it gracefully.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Log = cmd.ErrOrStderr()
			s, err := serve.New(cfg)
			if err != nil {
				return err
			}
			return s.ListenAndServe(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Model, "model", "", "policy: an HF model directory or a .gguf file")
	f.StringVar(&cfg.Adapter, "adapter", "", "PEFT LoRA adapter directory over --model")
	f.StringVar(&cfg.RewardModel, "reward-model", "", "reward model for /v1/score (HF directory or .gguf with a score head)")
	f.StringVar(&cfg.Addr, "addr", serve.DefaultAddr, "listen address (loopback by default)")
	f.StringVar(&cfg.ChatTemplate, "chat-template", "", "chat template: a built-in name (chatml, llama-2, ...), a file, or Jinja source; default the model's own")
	f.StringVar(&cfg.Name, "name", "", "model id at /v1/models (default: the model directory's name)")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", serve.DefaultMaxBodyBytes, "largest request body accepted")
	f.IntVar(&cfg.MaxConcurrent, "max-concurrent", serve.DefaultMaxConcurrent, "generations running at once; others wait")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}
