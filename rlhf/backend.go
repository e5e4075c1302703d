package rlhf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Backends.
const (
	BackendLocal  = "local"
	BackendOpenAI = "openai"
)

// defaultMaxRetries is max_retries when it is unset.
const defaultMaxRetries = 3

// BackendConfig holds the keys that choose where completions are sampled: alignkit's own engine or
// an OpenAI-compatible server. rlhf's SampleConfig, gatt's configs and ppo's and grpo's (for
// their rollouts, RolloutDefaults and ValidateRollouts) embed it (squashed), so one served model is
// configured with the same keys everywhere. Defaults and checks stay with each config (rlhf
// samples with 4 requests in flight; gatt with 1 dialogue at a time on the local engine), since
// what the keys drive differs.
type BackendConfig struct {
	Backend         string         `mapstructure:"backend" doc:"where completions are sampled: local (alignkit's engine on model_name_or_path) or openai (an OpenAI-compatible server at base_url; for ppo and grpo rollouts a LoRA policy and a server on the same base that loads adapters at runtime: vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, alignkit serve --allow-runtime-lora)"`
	BaseURL         string         `mapstructure:"base_url" doc:"openai backend: the server's OpenAI root, e.g. http://127.0.0.1:8080/v1 (else OPENAI_BASE_URL)"`
	ServedModelName string         `mapstructure:"served_model_name" doc:"openai backend: the model name to request (empty: the first model the server lists)"`
	APIKey          string         `mapstructure:"api_key" json:"-" doc:"openai backend (and gatt's judge): API key (else ALIGNKIT_API_KEY or OPENAI_API_KEY); never logged or saved"`
	Concurrency     int            `mapstructure:"concurrency" doc:"openai backend: requests in flight (default 4); gatt also samples this many dialogues at once (default 1 with backend local)"`
	RequestTimeout  time.Duration  `mapstructure:"request_timeout" doc:"openai backend: timeout of each request attempt, e.g. 60s (default 2m)"`
	MaxRetries      *int           `mapstructure:"max_retries" doc:"openai backend: retries after a 408, 429, 5xx, connection error or timeout, with exponential backoff (default 3)"`
	NSupported      *bool          `mapstructure:"n_supported" doc:"openai backend: whether the server takes n > 1 (unset: detect; false: always K single requests, as llama-server needs)"`
	ExtraBody       map[string]any `mapstructure:"extra_body" doc:"openai backend: extra request fields sent as is (min_p, repeat_penalty, ...)"`
}

// ResolvedBaseURL is base_url (ALIGNKIT_BASE_URL through conf), else OPENAI_BASE_URL.
func (b BackendConfig) ResolvedBaseURL() string {
	if b.BaseURL != "" {
		return b.BaseURL
	}
	return os.Getenv("OPENAI_BASE_URL")
}

// ResolvedAPIKey is api_key, else ALIGNKIT_API_KEY (conf maps it onto api_key too), else
// OPENAI_API_KEY. Keys are never written into output files.
func (b BackendConfig) ResolvedAPIKey() string {
	for _, k := range []string{b.APIKey, os.Getenv("ALIGNKIT_API_KEY"), os.Getenv("OPENAI_API_KEY")} {
		if k != "" {
			return k
		}
	}
	return ""
}

// Retries is max_retries, or 3 when unset.
func (b BackendConfig) Retries() int {
	if b.MaxRetries != nil {
		return *b.MaxRetries
	}
	return defaultMaxRetries
}

// NewOpenAI is the OpenAI backend these keys configure (base_url or OPENAI_BASE_URL,
// served_model_name, the resolved API key, ...); log receives its fallback notices (nil: none).
func (b BackendConfig) NewOpenAI(ctx context.Context, log io.Writer) (*OpenAI, error) {
	return NewOpenAI(ctx, OpenAIConfig{
		BaseURL: b.ResolvedBaseURL(), Model: b.ServedModelName, APIKey: b.ResolvedAPIKey(), Concurrency: b.Concurrency,
		MaxRetries: b.Retries(), RequestTimeout: b.RequestTimeout, NSupported: b.NSupported,
		ExtraBody: b.ExtraBody, Log: log,
	})
}

// RolloutDefaults fills an on-policy trainer's rollout backend keys: backend local, concurrency 4.
func (b BackendConfig) RolloutDefaults() BackendConfig {
	if b.Backend == "" {
		b.Backend = BackendLocal
	}
	if b.Concurrency == 0 {
		b.Concurrency = 4
	}
	return b
}

// ValidateRollouts checks an on-policy trainer's (PPO's, GRPO's) rollout backend after
// RolloutDefaults; peft says whether the policy trains a LoRA adapter (use_peft or
// adapter_name_or_path). It reads no files.
func (b BackendConfig) ValidateRollouts(peft bool) error {
	switch {
	case b.Backend != BackendLocal && b.Backend != BackendOpenAI:
		return fmt.Errorf("backend %q: want local or openai", b.Backend)
	case b.Backend == BackendLocal && b.BaseURL != "":
		return fmt.Errorf("base_url %q: set, but backend is local (set backend: openai to sample the rollouts from that server)", b.BaseURL)
	case b.Backend == BackendOpenAI && !peft:
		return errors.New("backend openai: the policy must train a LoRA adapter (use_peft: true or adapter_name_or_path): the server follows the policy by loading its adapter after each update, and the OpenAI API cannot replace a full fine-tune's weights")
	case b.Backend == BackendOpenAI && b.ResolvedBaseURL() == "":
		return errors.New("base_url: must be set for backend openai (or OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1")
	case b.Concurrency < 1:
		return fmt.Errorf("concurrency %d: want at least 1", b.Concurrency)
	case b.Retries() < 0:
		return fmt.Errorf("max_retries %d: want >= 0", b.Retries())
	case b.RequestTimeout < 0:
		return fmt.Errorf("request_timeout %s: want a positive duration such as 60s (0: 2m)", b.RequestTimeout)
	}
	return nil
}
