package model_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/infer"
)

// The training graph and the inference engine (model/infer, written independently) agree on
// random models with every feature: GQA, a sliding window shorter than the sequence, Mixtral
// routing, an untied head, and a reward model's score head.
func TestGraphMatchesInferenceEngine(t *testing.T) {
	base := model.Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 53, HiddenSize: 24, IntermediateSize: 40, NumHiddenLayers: 3,
		NumAttentionHeads: 6, NumKeyValueHeads: 2, HeadDim: 8,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 128,
		TieWordEmbeddings: true, BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
	mistral := base
	mistral.Architectures, mistral.ModelType, mistral.SlidingWindow, mistral.TieWordEmbeddings = []string{"MistralForCausalLM"}, "mistral", 5, false
	mixtral := base
	mixtral.Architectures, mixtral.ModelType = []string{"MixtralForCausalLM"}, "mixtral"
	mixtral.NumLocalExperts, mixtral.NumExpertsPerTok, mixtral.RouterAuxLossCoef, mixtral.SlidingWindow = 4, 2, 0.02, 7
	reward := base
	reward.Architectures, reward.NumLabels = []string{"LlamaForSequenceClassification"}, 1
	llama3 := base
	llama3.AttentionBias = true
	llama3.RopeScaling = &model.RopeScaling{RopeType: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 256}
	qwen2 := base
	qwen2.Architectures, qwen2.ModelType, qwen2.HeadDim, qwen2.TieWordEmbeddings = []string{"Qwen2ForCausalLM"}, "qwen2", 4, false
	qwen3 := base
	qwen3.Architectures, qwen3.ModelType = []string{"Qwen3ForCausalLM"}, "qwen3"
	qwen3moe := qwen3
	qwen3moe.Architectures, qwen3moe.ModelType = []string{"Qwen3MoeForCausalLM"}, "qwen3_moe"
	qwen3moe.NumLocalExperts, qwen3moe.NumExpertsPerTok, qwen3moe.MoEIntermediateSize, qwen3moe.RouterAuxLossCoef = 8, 3, 12, 0.001
	qwen3moe.DecoderSparseStep, qwen3moe.MLPOnlyLayers = 1, []int{2}
	qwen3reward := qwen3
	qwen3reward.Architectures, qwen3reward.NumLabels = []string{"Qwen3ForSequenceClassification"}, 1
	for _, tc := range []struct {
		name string
		cfg  model.Config
	}{{"llama gqa", base}, {"mistral window untied", mistral}, {"mixtral window", mixtral}, {"llama reward", reward},
		{"llama3 rope scaling biases", llama3}, {"qwen2 biases untied", qwen2}, {"qwen3 qk norm", qwen3},
		{"qwen3moe top-3 of 8", qwen3moe}, {"qwen3 reward", qwen3reward}} {
		t.Run(tc.name, func(t *testing.T) {
			w := model.InitRandom(tc.cfg, 11, 0.2)
			// Non-trivial norm gains and biases (InitRandom makes them 1 and 0).
			for i, name := range w.Names() {
				if tt := w.Tensors[name]; len(tt.Shape) == 1 {
					for j := range tt.Data {
						tt.Data[j] += float32(0.2 * math.Sin(float64(7*j+i)))
					}
				}
			}
			eng, err := infer.New(w)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 3))
			tokens := make([]int32, 19)
			for i := range tokens {
				tokens[i] = int32(rng.IntN(tc.cfg.VocabSize))
			}
			if tc.cfg.IsRewardModel() {
				want, err := eng.Score(tokens)
				if err != nil {
					t.Fatal(err)
				}
				gr, err := model.NewGraph(w, model.GraphSpec{Batch: 1, SeqLen: len(tokens), Head: model.ScoreHead})
				if err != nil {
					t.Fatal(err)
				}
				_, s, err := gr.Run(model.Inputs{Tokens: tokens, LastIndex: []int32{int32(len(tokens) - 1)}}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(s.Reward[0]-float64(want)) > 1e-4*(1+math.Abs(float64(want))) {
					t.Fatalf("graph reward %g, engine %g", s.Reward[0], want)
				}
				return
			}
			want, err := eng.Forward(tokens, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := model.Forward(w, tokens)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for p := range want {
				for v := range want[p] {
					d := math.Abs(float64(got[p][v] - want[p][v]))
					worst = math.Max(worst, d)
					if d > 1e-4 {
						t.Fatalf("position %d token %d: graph logit %g, engine %g", p, v, got[p][v], want[p][v])
					}
				}
			}
			t.Logf("worst |Δ logit| %.2g", worst)
		})
	}
}
