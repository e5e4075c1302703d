package hf

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/model"
)

// familyWeights is a random model of one of the newer families with every optional tensor: Llama 3
// (rope_scaling, q/k/v/o biases), Qwen2 (q/k/v biases), Qwen3 (q/k norms, head_dim ≠ D/H) and
// Qwen3-MoE (top-3 of 6 experts, a dense layer), with biases and gains drawn at random.
func familyWeights(t *testing.T, family string) *model.Weights {
	t.Helper()
	c := model.Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 40, HiddenSize: 16, IntermediateSize: 24, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8,
		RMSNormEps: 1e-6, RopeTheta: 1e6, MaxPositionEmbeddings: 64, BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
	switch family {
	case "llama3":
		c.AttentionBias, c.TieWordEmbeddings = true, true
		c.RopeScaling = &model.RopeScaling{RopeType: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	case "qwen2":
		c.Architectures, c.ModelType, c.HeadDim = []string{"Qwen2ForCausalLM"}, "qwen2", 4
	case "qwen3":
		c.Architectures, c.ModelType = []string{"Qwen3ForCausalLM"}, "qwen3"
	case "qwen3moe":
		c.Architectures, c.ModelType = []string{"Qwen3MoeForCausalLM"}, "qwen3_moe"
		c.NumLocalExperts, c.NumExpertsPerTok, c.MoEIntermediateSize, c.RouterAuxLossCoef = 6, 3, 12, 0.001
		c.DecoderSparseStep, c.MLPOnlyLayers = 1, []int{0}
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w := model.InitRandom(c, 3, 0.3)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range w.Names() {
		if tt := w.Tensors[name]; len(tt.Shape) == 1 {
			for i := range tt.Data {
				tt.Data[i] += float32(0.3 * rng.NormFloat64())
			}
		}
	}
	return w
}

// TestSaveLoadFamilies: each family saves to safetensors and loads back bit for bit with the same
// config, in one file and sharded; BF16 and F16 saves round-trip the rounded values exactly; and
// config.json carries the family's own keys (biases and norms by their transformers names).
func TestSaveLoadFamilies(t *testing.T) {
	for _, family := range []string{"llama3", "qwen2", "qwen3", "qwen3moe"} {
		t.Run(family, func(t *testing.T) {
			w := familyWeights(t, family)
			dir := t.TempDir()
			saveLoadIdentical(t, filepath.Join(dir, "one"), w, SaveOptions{})
			saveLoadIdentical(t, filepath.Join(dir, "sharded"), w, SaveOptions{MaxShardSize: 4000})
			if n := len(listDir(t, filepath.Join(dir, "sharded"))); n < 5 {
				t.Errorf("sharded save wrote %d files, want several shards", n)
			}
			for _, dt := range []string{"bf16", "f16"} {
				if err := Save(filepath.Join(dir, dt), w, SaveOptions{Dtype: dt}); err != nil {
					t.Fatal(err)
				}
				narrow, err := Load(filepath.Join(dir, dt))
				if err != nil {
					t.Fatal(err)
				}
				saveLoadIdentical(t, filepath.Join(dir, dt+"-again"), narrow, SaveOptions{Dtype: dt})
			}
			raw, err := os.ReadFile(filepath.Join(dir, "one", ConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			want := map[string]map[string]any{
				"llama3":   {"attention_bias": true, "rope_scaling": map[string]any{"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192.0}},
				"qwen2":    {"model_type": "qwen2", "use_sliding_window": false, "sliding_window": nil},
				"qwen3":    {"attention_bias": false, "head_dim": 8.0, "use_sliding_window": false},
				"qwen3moe": {"num_experts": 6.0, "norm_topk_prob": false, "mlp_only_layers": []any{0.0}, "moe_intermediate_size": 12.0, "decoder_sparse_step": 1.0},
			}[family]
			for k, v := range want {
				if got, ok := m[k]; !ok || !jsonEqual(got, v) {
					t.Errorf("config.json %s = %v (present %v), want %v", k, got, ok, v)
				}
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
