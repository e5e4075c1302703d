package winrate

import (
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
)

// Output file names in output_dir.
const (
	JudgementsFile = "winrate_judgements.parquet"
	SummaryFile    = "winrate.json"
	PlotFile       = "winrate.png"
)

// Config is `alignkit eval winrate`'s YAML.
type Config struct {
	ModelA   string `mapstructure:"model_a_name_or_path" doc:"model A, the one evaluated: an HF directory, a .gguf file or a PEFT adapter directory, answering with alignkit's engine (or answers_a)"`
	ModelB   string `mapstructure:"model_b_name_or_path" doc:"model B, the one compared against (or answers_b)"`
	AnswersA string `mapstructure:"answers_a" doc:"precomputed answers of model A instead of model_a_name_or_path: a .jsonl or .parquet file whose row r holds, in a completion column, the answer to row r of dataset_name (a prompt column, if present, must match)"`
	AnswersB string `mapstructure:"answers_b" doc:"precomputed answers of model B instead of model_b_name_or_path"`
	LabelA   string `mapstructure:"label_a" doc:"model A's name in the summary and plot (default: its path)"`
	LabelB   string `mapstructure:"label_b" doc:"model B's name in the summary and plot (default: its path)"`

	// Data holds dataset_name (the prompts; the held-out ones with eval_dataset_name or eval_split),
	// columns, chat_template and max_train_samples / max_eval_samples, as rlhf sample reads them.
	Data data.Args `mapstructure:",squash"`

	OutputDir string `mapstructure:"output_dir" doc:"receives winrate_judgements.parquet, winrate.json and winrate.png"`
	Seed      int64  `mapstructure:"seed" doc:"draws the answer order of each judgement and seeds sampling: model A's answer to prompt i with seed + i, model B's with seed + n + i (n prompts); default 42"`

	Temperature  float64 `mapstructure:"temperature" doc:"answer sampling temperature; 0 is greedy (default)"`
	TopP         float64 `mapstructure:"top_p" doc:"answer nucleus sampling mass (default 1: off)"`
	TopK         int     `mapstructure:"top_k" doc:"answer top-k sampling (0: off)"`
	MaxNewTokens int     `mapstructure:"max_new_tokens" doc:"longest answer in tokens (default 256)"`

	RewardModelNameOrPath string             `mapstructure:"reward_model_name_or_path" doc:"reward-model judge: the answer with the higher reward wins"`
	RewardModels          []reward.ModelSpec `mapstructure:"reward_models" doc:"reward-model judge with Llama 2's helpfulness and safety models combined: a list of {path, role}; one model is used as is"`
	SafetyColumn          string             `mapstructure:"safety_column" doc:"reward_models with two models: the prompt column that marks safety prompts (default is_safety)"`
	RewardTieMargin       float64            `mapstructure:"reward_tie_margin" doc:"reward-model judge: rewards at most this far apart tie (default 0: only equal rewards)"`

	JudgeBaseURL      string        `mapstructure:"judge_base_url" doc:"LLM judge: the OpenAI-compatible server's root, e.g. http://127.0.0.1:8080/v1"`
	JudgeModel        string        `mapstructure:"judge_model" doc:"LLM judge: served model name (empty: the first the server lists)"`
	JudgeMaxNewTokens int           `mapstructure:"judge_max_new_tokens" doc:"LLM judge: longest reply; the reply must be exactly A, B or tie (default 16)"`
	APIKey            string        `mapstructure:"api_key" json:"-" doc:"LLM judge: API key (else ALIGNKIT_API_KEY or OPENAI_API_KEY); never logged or saved"`
	Concurrency       int           `mapstructure:"concurrency" doc:"LLM judge: requests in flight (default 4)"`
	RequestTimeout    time.Duration `mapstructure:"request_timeout" doc:"LLM judge: timeout of each request attempt (default 2m)"`
	MaxRetries        *int          `mapstructure:"max_retries" doc:"LLM judge: retries after a 408, 429, 5xx, connection error or timeout (default 3)"`

	Progress io.Writer `mapstructure:"-"`
}

// DefaultConfig is what a YAML file that sets nothing means.
func DefaultConfig() Config {
	return Config{Seed: 42, TopP: 1, MaxNewTokens: 256, SafetyColumn: "is_safety", JudgeMaxNewTokens: 16,
		Concurrency: 4, RequestTimeout: 2 * time.Minute, Data: data.Args{}.Defaults()}
}

// Validate checks the keys and returns one error line naming the first bad one.
func (c Config) Validate() error {
	rewardJudge := c.RewardModelNameOrPath != "" || len(c.RewardModels) > 0
	switch {
	case c.ModelA == "" && c.AnswersA == "":
		return errors.New("model_a_name_or_path: must be set (or answers_a, a file of model A's answers)")
	case c.ModelA != "" && c.AnswersA != "":
		return errors.New("answers_a: set it or model_a_name_or_path, not both")
	case c.ModelB == "" && c.AnswersB == "":
		return errors.New("model_b_name_or_path: must be set (or answers_b, a file of model B's answers)")
	case c.ModelB != "" && c.AnswersB != "":
		return errors.New("answers_b: set it or model_b_name_or_path, not both")
	case c.Data.DatasetName == "":
		return errors.New("dataset_name: must be set (the prompts)")
	case c.OutputDir == "":
		return errors.New("output_dir: must be set")
	case !rewardJudge && c.JudgeBaseURL == "":
		return errors.New("judge: none configured: set reward_model_name_or_path (or reward_models) for a reward-model judge, or judge_base_url for an LLM judge")
	case rewardJudge && c.JudgeBaseURL != "":
		return errors.New("judge: both a reward model and judge_base_url are set: choose one judge")
	case c.RewardModelNameOrPath != "" && len(c.RewardModels) > 0:
		return errors.New("reward_models: set it or reward_model_name_or_path, not both")
	case len(c.RewardModels) > 2:
		return fmt.Errorf("reward_models: %d models: want one or two (helpfulness and safety)", len(c.RewardModels))
	case len(c.RewardModels) == 2 && c.SafetyColumn == "":
		return errors.New("safety_column: must be set with two reward_models (the column that marks safety prompts)")
	case math.IsNaN(c.RewardTieMargin) || math.IsInf(c.RewardTieMargin, 0) || c.RewardTieMargin < 0:
		return fmt.Errorf("reward_tie_margin: must be a finite number >= 0, got %v", c.RewardTieMargin)
	case c.JudgeMaxNewTokens < 1:
		return fmt.Errorf("judge_max_new_tokens: must be >= 1, got %d", c.JudgeMaxNewTokens)
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency: must be >= 1, got %d", c.Concurrency)
	case c.MaxRetries != nil && *c.MaxRetries < 0:
		return fmt.Errorf("max_retries: must be >= 0, got %d", *c.MaxRetries)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("request_timeout: must be a positive duration such as 60s, got %s", c.RequestTimeout)
	case c.Seed < 0:
		return fmt.Errorf("seed: must be >= 0, got %d", c.Seed)
	}
	if err := reward.ValidateSpecs(c.RewardModels); err != nil {
		return err
	}
	if err := c.sampling(0).Validate(); err != nil {
		return err
	}
	return c.Data.Defaults().Validate()
}

// sampling is the answer sampling with base seed offset.
func (c Config) sampling(offset uint64) rlhf.Sampling {
	return rlhf.Sampling{Temperature: c.Temperature, TopP: c.TopP, TopK: c.TopK, MaxNewTokens: c.MaxNewTokens, Seed: uint64(c.Seed) + offset}
}

// judgeBackend is the LLM judge's OpenAI client configuration.
func (c Config) judgeBackend() rlhf.BackendConfig {
	return rlhf.BackendConfig{Backend: rlhf.BackendOpenAI, BaseURL: c.JudgeBaseURL, ServedModelName: c.JudgeModel, APIKey: c.APIKey,
		Concurrency: c.Concurrency, RequestTimeout: c.RequestTimeout, MaxRetries: c.MaxRetries}
}

func (c Config) labels() (a, b string) {
	a, b = c.LabelA, c.LabelB
	if a == "" {
		a = c.ModelA + c.AnswersA
	}
	if b == "" {
		b = c.ModelB + c.AnswersB
	}
	return a, b
}
