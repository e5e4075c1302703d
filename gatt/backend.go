package gatt

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/tokenizer"
	"github.com/alignkit/alignkit/rlhf"
)

// Backend is rlhf.BackendConfig: the keys that choose where replies are sampled, named, documented
// and resolved (OPENAI_BASE_URL, ALIGNKIT_API_KEY, OPENAI_API_KEY, max_retries default 3) as in
// rlhf's sample config, so one served model is configured the same way for both. gatt defaults
// and checks them itself (withDefaults, validateBackend): its concurrency also counts the dialogues
// sampled at once on the local engine.
type Backend = rlhf.BackendConfig

// Backend names.
const (
	BackendLocal  = rlhf.BackendLocal
	BackendOpenAI = rlhf.BackendOpenAI
)

// openAI is the rlhf OpenAI backend configured by b for a server and served model name (the judge
// has its own).
func openAI(ctx context.Context, b Backend, baseURL, model string) (*rlhf.OpenAI, error) {
	b.BaseURL, b.ServedModelName = baseURL, model
	return b.NewOpenAI(ctx, nil)
}

// withDefaults fills backend (local) and concurrency (1 local, 4 openai).
func withDefaults(b Backend) Backend {
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

func validateBackend(b Backend, model string) error {
	switch b.Backend {
	case BackendLocal:
		if model == "" {
			return errors.New("model_name_or_path: must be set for backend local (an HF model directory or a .gguf file)")
		}
	case BackendOpenAI:
		if b.ResolvedBaseURL() == "" {
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
			if ck, err = checkpoint.OpenInference(ctx, modelPath, ""); err != nil {
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
				return len(data.EncodeRendered(enc, segs)), nil
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
		o, err := openAI(ctx, b, b.ResolvedBaseURL(), b.ServedModelName)
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
