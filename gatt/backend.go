package gatt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/tokenizer"
	"github.com/alignkit/alignkit/rlhf"
)

// Backend keys choose where replies are sampled. They are named, documented and defaulted as in
// rlhf's sample config, so one served model is configured the same way for both.
type Backend struct {
	Backend         string         `mapstructure:"backend" doc:"where replies are sampled: local (alignkit's engine on model_name_or_path) or openai (an OpenAI-compatible server at base_url)"`
	BaseURL         string         `mapstructure:"base_url" doc:"openai backend: the server's OpenAI root, e.g. http://127.0.0.1:8080/v1"`
	ServedModelName string         `mapstructure:"served_model_name" doc:"openai backend: the model name to request (empty: the first model the server lists)"`
	APIKey          string         `mapstructure:"api_key" json:"-" doc:"openai backend and judge: API key (else ALIGNKIT_API_KEY or OPENAI_API_KEY); never logged or saved"`
	Concurrency     int            `mapstructure:"concurrency" doc:"dialogues sampled at once (for openai also the requests in flight); default 1 local, 4 openai"`
	RequestTimeout  time.Duration  `mapstructure:"request_timeout" doc:"openai backend: timeout of each request attempt, e.g. 60s (default 2m)"`
	MaxRetries      *int           `mapstructure:"max_retries" doc:"openai backend: retries after a 408, 429, 5xx, connection error or timeout, with exponential backoff (default 3)"`
	NSupported      *bool          `mapstructure:"n_supported" doc:"openai backend: whether the server takes n > 1 (unset: detect; false: always K single requests, as llama-server needs)"`
	ExtraBody       map[string]any `mapstructure:"extra_body" doc:"openai backend: extra request fields sent as is (min_p, repeat_penalty, ...)"`
}

// Backend names.
const (
	BackendLocal  = "local"
	BackendOpenAI = "openai"
)

// apiKey is api_key, else ALIGNKIT_API_KEY, else OPENAI_API_KEY, as rlhf resolves it. Keys are never
// written into output files.
func (b Backend) apiKey() string {
	for _, k := range []string{b.APIKey, os.Getenv("ALIGNKIT_API_KEY"), os.Getenv("OPENAI_API_KEY")} {
		if k != "" {
			return k
		}
	}
	return ""
}

// openAI is the rlhf OpenAI backend configured by these keys for a served model name.
func (b Backend) openAI(ctx context.Context, baseURL, model string) (*rlhf.OpenAI, error) {
	retries := 3
	if b.MaxRetries != nil {
		retries = *b.MaxRetries
	}
	return rlhf.NewOpenAI(ctx, rlhf.OpenAIConfig{BaseURL: baseURL, Model: model, APIKey: b.apiKey(), Concurrency: b.Concurrency,
		MaxRetries: retries, RequestTimeout: b.RequestTimeout, NSupported: b.NSupported, ExtraBody: b.ExtraBody})
}

func (b Backend) defaults() Backend {
	if b.Backend == "" {
		b.Backend = BackendLocal
	}
	if b.Concurrency == 0 {
		b.Concurrency = 1
		if b.Backend == BackendOpenAI {
			b.Concurrency = 4
		}
	}
	return b
}

func (b Backend) validate(model string) error {
	switch b.Backend {
	case BackendLocal:
		if model == "" {
			return errors.New("model_name_or_path: must be set for backend local (an HF model directory or a .gguf file)")
		}
	case BackendOpenAI:
		if b.BaseURL == "" {
			return errors.New("base_url: must be set for backend openai (the server's OpenAI root, e.g. http://127.0.0.1:8080/v1)")
		}
	default:
		return fmt.Errorf("backend %q: want local or openai", b.Backend)
	}
	if b.Concurrency < 1 {
		return fmt.Errorf("concurrency: must be >= 1, got %d", b.Concurrency)
	}
	if b.MaxRetries != nil && *b.MaxRetries < 0 {
		return fmt.Errorf("max_retries: must be >= 0, got %d", *b.MaxRetries)
	}
	if b.RequestTimeout < 0 {
		return fmt.Errorf("request_timeout: must be >= 0, got %s", b.RequestTimeout)
	}
	return nil
}

// sampler is a generator and, when a tokenizer is known, a way to count prompt tokens.
type sampler struct {
	gen rlhf.Generator
	// tmpl renders conversations as the trained model sees them; nil when neither the model nor
	// chat_template gives one (openai without a local model).
	tmpl *chat.Template
	// count returns the prompt's tokens with the generation prompt, nil without a local tokenizer.
	count func(msgs []chat.Message) (int, error)
	// maxPos is the local model's context, 0 when unknown.
	maxPos int
}

// newSampler opens the model (when given) and the backend. For backend openai the local model, if
// set, is only used for its tokenizer and chat template (to place the instruction and to keep
// prompts within max_length).
func newSampler(ctx context.Context, b Backend, modelPath, chatTemplate string) (*sampler, error) {
	s := &sampler{}
	if modelPath != "" {
		var ck *checkpoint.Model
		var tok *tokenizer.Tokenizer
		var err error
		if b.Backend == BackendLocal || checkpoint.IsGGUF(modelPath) {
			if ck, err = checkpoint.Open(modelPath); err != nil {
				return nil, err
			}
			tok = ck.Tok
			s.maxPos = ck.Weights.Config.MaxPositionEmbeddings
		} else if tok, err = tokenizer.Load(modelPath); err != nil {
			return nil, fmt.Errorf("model_name_or_path: %w", err)
		}
		if dt, err := lm.ChatTokenizer(tok, chatTemplate); err == nil {
			s.tmpl = dt.Template()
			enc := lm.Encoder(tok)
			s.count = func(msgs []chat.Message) (int, error) {
				segs, err := s.tmpl.RenderSegments(msgs, true)
				if err != nil {
					return 0, err
				}
				spans := make([]data.Span, len(segs))
				for i, sg := range segs {
					spans[i] = data.Span{Text: sg.Text, Special: sg.Message < 0}
				}
				return len(enc.EncodeChat(spans, false)), nil
			}
		} else if chatTemplate != "" {
			return nil, fmt.Errorf("chat_template: %w", err)
		}
		if b.Backend == BackendLocal {
			l, err := rlhf.NewLocal(ck, chatTemplate)
			if err != nil {
				return nil, err
			}
			s.gen = l
		}
	} else if chatTemplate != "" {
		t, err := chat.Resolve(chatTemplate, "", "", "")
		if err != nil {
			return nil, fmt.Errorf("chat_template: %w", err)
		}
		s.tmpl = t
	}
	if b.Backend == BackendOpenAI {
		o, err := b.openAI(ctx, b.BaseURL, b.ServedModelName)
		if err != nil {
			return nil, err
		}
		s.gen = o
	}
	return s, nil
}

// GenJudge is a Judge that asks any generator (an OpenAI-compatible judge model, or a local one)
// and reads yes or no from the first word of its greedy reply.
type GenJudge struct {
	Gen          rlhf.Generator
	MaxNewTokens int // default 8
}

// Ask implements Judge. A reply that starts with neither yes nor no is an error quoting it.
func (j GenJudge) Ask(ctx context.Context, question string) (bool, error) {
	n := j.MaxNewTokens
	if n <= 0 {
		n = 8
	}
	out, err := j.Gen.Generate(ctx, []rlhf.Prompt{{Messages: []chat.Message{{Role: "user", Content: question}}, Source: "judge"}}, 1,
		rlhf.Sampling{Temperature: 0, MaxNewTokens: n})
	if err != nil {
		return false, err
	}
	return ParseYesNo(out[0][0])
}

// ParseYesNo reads a judge's verdict from the first word of its reply, case-insensitively and
// ignoring punctuation around it.
func ParseYesNo(reply string) (bool, error) {
	f := strings.FieldsFunc(strings.ToLower(reply), func(r rune) bool {
		return !(r >= 'a' && r <= 'z')
	})
	if len(f) > 0 {
		switch f[0] {
		case "yes":
			return true, nil
		case "no":
			return false, nil
		}
	}
	return false, fmt.Errorf("judge reply %q: want yes or no", oneLine(reply, 80))
}

// oneLine shortens s to n runes on one line, for error messages.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
