package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/serve"
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
			"interface, which needs --api-key (or ALIGNKIT_API_KEY) or an explicit --insecure-no-auth; with a\n" +
			"key every endpoint but /health wants \"Authorization: Bearer KEY\". Ctrl-C stops it gracefully.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Log = cmd.ErrOrStderr()
			// Explicit values are checked here, before serve.Config's zero-means-default applies.
			switch {
			case cfg.MaxBodyBytes < 1:
				return fmt.Errorf("--max-body-bytes: must be >= 1, got %d", cfg.MaxBodyBytes)
			case cfg.MaxConcurrent < 1:
				return fmt.Errorf("--max-concurrent: must be >= 1, got %d", cfg.MaxConcurrent)
			case cfg.MaxConnections < 1:
				return fmt.Errorf("--max-connections: must be >= 1, got %d", cfg.MaxConnections)
			case cfg.BodyTimeout <= 0:
				return fmt.Errorf("--body-timeout: must be > 0, got %s", cfg.BodyTimeout)
			case cfg.IdleTimeout <= 0:
				return fmt.Errorf("--idle-timeout: must be > 0, got %s", cfg.IdleTimeout)
			case cfg.MaxLoRAs < 1:
				return fmt.Errorf("--max-loras: must be >= 1, got %d", cfg.MaxLoRAs)
			}
			if !cmd.Flags().Changed("api-key") {
				cfg.APIKey = os.Getenv("ALIGNKIT_API_KEY")
			} else if cfg.APIKey == "" {
				return fmt.Errorf("--api-key: must not be empty (omit it to serve without a key on loopback)")
			}
			s, err := serve.New(cmd.Context(), cfg)
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
	f.IntVar(&cfg.MaxConnections, "max-connections", serve.DefaultMaxConnections, "connections served at once; more wait")
	f.DurationVar(&cfg.BodyTimeout, "body-timeout", serve.DefaultBodyTimeout, "time a client has to send its request body")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", serve.DefaultIdleTimeout, "idle keep-alive connections are closed after this")
	f.StringVar(&cfg.APIKey, "api-key", "", "require \"Authorization: Bearer KEY\" on every endpoint but /health (default $ALIGNKIT_API_KEY)")
	f.BoolVar(&cfg.InsecureNoAuth, "insecure-no-auth", false, "allow a non-loopback --addr without an API key")
	f.BoolVar(&cfg.AllowRuntimeLoRA, "allow-runtime-lora", false, "enable POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING): PEFT adapters over --model, requested by name (how ppo and grpo's backend: openai follow the policy)")
	f.IntVar(&cfg.MaxLoRAs, "max-loras", serve.DefaultMaxLoRAs, "most adapters loaded at runtime at once")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}
