package infer

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model"
)

// Weights whose output head holds +Inf (loaded weights are checked; weights built in memory, as
// training produces them, are not) make generation, Forward and scoring stop with an error naming
// the non-finite value instead of sampling token 0 or returning NaN.
func TestNonFiniteLogitsStop(t *testing.T) {
	cfg, err := model.ParseConfig([]byte(`{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 16,
		"hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
		"max_position_embeddings": 32, "rms_norm_eps": 1e-5, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}`), "config.json")
	if err != nil {
		t.Fatal(err)
	}
	w := model.InitRandom(cfg, 1, 0.02)
	head := w.Tensors[model.LMHeadKey]
	for d := range cfg.HiddenSize {
		head.Data[5*cfg.HiddenSize+d] = float32(math.Inf(1)) // token 5's row
	}
	e, err := New(w)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Generate(context.Background(), [][]int32{{1, 3, 4}}, Sampling{MaxNewTokens: 4})
	if err == nil || !strings.HasPrefix(err.Error(), "sequence 0: token 0: the model produced a non-finite logit (") || !strings.Contains(err.Error(), "for token 5)") {
		t.Errorf("Generate: %v", err)
	}
	_, err = e.Forward([]int32{1, 3}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "position 0: the model produced a non-finite logit (") {
		t.Errorf("Forward: %v", err)
	}

	// A reward model whose score head overflows.
	rcfg := cfg
	rcfg.Architectures, rcfg.NumLabels = []string{"LlamaForSequenceClassification"}, 1
	rw := model.InitRandom(rcfg, 1, 0.02)
	for d := range rw.Tensors[model.ScoreKey].Data {
		rw.Tensors[model.ScoreKey].Data[d] = math.MaxFloat32
	}
	re, err := New(rw)
	if err != nil {
		t.Fatal(err)
	}
	_, err = re.ScoreBatch([][]int32{{1, 3}, {1, 4, 5}})
	if err == nil || !strings.HasPrefix(err.Error(), "sequence 0: the reward model's score is ") {
		t.Errorf("ScoreBatch: %v", err)
	}
}
