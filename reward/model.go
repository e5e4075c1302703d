package reward

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
)

// FromCausalLM turns a causal LM checkpoint into a reward model in transformers'
// XForSequenceClassification layout: lm_head.weight is dropped, score.weight (1, D) is drawn from
// N(0, σ²) with σ = 1/√(D+1) (the reward-head init of Stiennon et al. / OpenAI's
// lm-human-preferences, also model.InitRandom's) from a generator seeded with seed, and the config
// becomes XForSequenceClassification with num_labels 1 and a pad_token_id (see lm.PadID), which
// transformers needs to find the last real token of a padded row.
//
// The result shares the backbone tensors with ck (no copy): training it updates ck's weights too.
func FromCausalLM(ck *checkpoint.Model, seed uint64) (*checkpoint.Model, error) {
	if ck == nil || ck.Weights == nil {
		return nil, fmt.Errorf("reward model from causal LM: no model")
	}
	src := ck.Weights.Config
	if src.IsRewardModel() {
		return nil, fmt.Errorf("%s: already a reward model (%s)", ck.Source, strings.Join(src.Architectures, ", "))
	}
	cfg := src
	cfg.Architectures = make([]string, len(src.Architectures))
	for i, a := range src.Architectures {
		base, ok := strings.CutSuffix(a, "ForCausalLM")
		if !ok {
			return nil, fmt.Errorf("%s: architecture %q is not a causal LM (want *ForCausalLM)", ck.Source, a)
		}
		cfg.Architectures[i] = base + "ForSequenceClassification"
	}
	cfg.NumLabels = 1
	// A pad_token_id equal to EOS (common for causal LMs) would make transformers read the token
	// before each row's final EOS; the reward is read at that EOS.
	if pad := int(lm.PadID(ck.Tok, src)); cfg.PadTokenID == nil || *cfg.PadTokenID != pad {
		cfg.PadTokenID = &pad
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: reward model config: %w", ck.Source, err)
	}

	w := &model.Weights{Config: cfg, Tensors: make(map[string]*model.Tensor, len(ck.Weights.Tensors))}
	for name, t := range ck.Weights.Tensors {
		if name != model.LMHeadKey {
			w.Tensors[name] = t
		}
	}
	d := cfg.HiddenSize
	score := model.NewTensor(1, d)
	std := 1 / math.Sqrt(float64(d)+1)
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	for i := range score.Data {
		score.Data[i] = float32(rng.NormFloat64() * std)
	}
	w.Tensors[model.ScoreKey] = score
	if err := w.Check(ck.Source); err != nil {
		return nil, err
	}
	return &checkpoint.Model{Weights: w, Tok: ck.Tok, Dir: ck.Dir, Source: ck.Source}, nil
}
