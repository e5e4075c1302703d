package bench

import (
	"fmt"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/model"
)

// Preset is a benchmark shape: a model configuration and the batch it is trained or decoded with.
type Preset struct {
	Name   string
	Config model.Config
	// Batch and SeqLen are the training micro-batch (rows × tokens per row); for a decode preset,
	// SeqLen is the prompt length.
	Batch, SeqLen int
	About         string
}

func llama(vocab, d, layers, heads, kv, ffn int, tied bool) model.Config {
	return model.Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: vocab, HiddenSize: d, IntermediateSize: ffn, NumHiddenLayers: layers,
		NumAttentionHeads: heads, NumKeyValueHeads: kv, HeadDim: d / heads,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 2048,
		TieWordEmbeddings: tied, BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
}

// qwen3 is a Qwen3ForCausalLM configuration: per-head RMSNorm on q and k, head_dim independent of
// d/heads, rms_norm_eps 1e-6 and rope_theta 1e6 as Qwen3's config.json has them, no biases.
func qwen3(vocab, d, layers, heads, kv, hd, ffn int, tied bool) model.Config {
	return model.Config{
		Architectures: []string{"Qwen3ForCausalLM"}, ModelType: "qwen3",
		VocabSize: vocab, HiddenSize: d, IntermediateSize: ffn, NumHiddenLayers: layers,
		NumAttentionHeads: heads, NumKeyValueHeads: kv, HeadDim: hd,
		RMSNormEps: 1e-6, RopeTheta: 1e6, MaxPositionEmbeddings: 40960,
		TieWordEmbeddings: tied, BOSTokenID: 151643, EOSTokenIDs: []int{151645},
	}
}

// presets are the shapes the project's performance targets are stated for.
var presets = []Preset{
	{Name: "ref", Config: llama(4096, 256, 4, 8, 4, 688, true), Batch: 8, SeqLen: 256,
		About: "reference training shape: vocab 4096, d 256, 4 layers, 8 q / 4 KV heads, SwiGLU 688, tied; batch 8 × 256"},
	{Name: "smollm135m", Config: llama(49152, 576, 30, 9, 3, 1536, true), Batch: 4, SeqLen: 512,
		About: "SmolLM-135M shape: vocab 49152, d 576, 30 layers, 9 q / 3 KV heads, SwiGLU 1536, tied; batch 4 × 512"},
	{Name: "decode512", Config: llama(32000, 512, 8, 8, 4, 1376, false), Batch: 1, SeqLen: 128,
		About: "decode shape: vocab 32000, d 512, 8 layers, 8 q / 4 KV heads, SwiGLU 1376, untied; prompt 128"},
	{Name: "stories260k", Config: llama(512, 64, 5, 8, 4, 172, true), Batch: 8, SeqLen: 256,
		About: "stories260K's shape (random weights): vocab 512, d 64, 5 layers, 8 q / 4 KV heads, SwiGLU 172, tied; batch 8 × 256"},
	{Name: "tiny", Config: llama(512, 64, 2, 4, 2, 172, true), Batch: 4, SeqLen: 64,
		About: "tiny shape for tests and the memory-flat check: vocab 512, d 64, 2 layers; batch 4 × 64"},
	// Llama 3's shapes (RoPE theta and context do not change the cost): full-weight training of these
	// needs more memory than most CPUs have even with --gradient-checkpointing (AdamW alone keeps
	// 16 bytes per parameter); they size the memory that LoRA and checkpointing leave.
	{Name: "llama3-1b", Config: llama(128256, 2048, 16, 32, 8, 8192, true), Batch: 1, SeqLen: 1024,
		About: "Llama-3.2-1B shape: vocab 128256, d 2048, 16 layers, 32 q / 8 KV heads, SwiGLU 8192, tied; batch 1 × 1024"},
	{Name: "llama3-8b", Config: llama(128256, 4096, 32, 32, 8, 14336, false), Batch: 1, SeqLen: 1024,
		About: "Llama-3-8B shape: vocab 128256, d 4096, 32 layers, 32 q / 8 KV heads, SwiGLU 14336, untied; batch 1 × 1024"},
	// Qwen3-0.6B's config.json (huggingface.co/Qwen/Qwen3-0.6B): 596M parameters, 155.6M of them the
	// tied embedding. Full fine-tuning would hold about 9.5 GB of weights, gradients and AdamW
	// moments before any activation; the benchmark trains a rank-16 LoRA over its float32 base
	// (2.4 GB) at 1×512, which peaked at 8.1 GB in alignkit and 9.3 GB in PyTorch (2026-12-07).
	{Name: "qwen3-0.6b", Config: qwen3(151936, 1024, 28, 16, 8, 128, 3072, true), Batch: 1, SeqLen: 512,
		About: "Qwen3-0.6B shape: vocab 151936, d 1024, 28 layers, 16 q / 8 KV heads of head_dim 128, q/k RMSNorm, SwiGLU 3072, tied; batch 1 × 512"},
}

// PresetNames lists the preset names.
func PresetNames() []string {
	var out []string
	for _, p := range presets {
		out = append(out, p.Name)
	}
	return out
}

// LookupPreset returns the named preset.
func LookupPreset(name string) (Preset, error) {
	i := slices.IndexFunc(presets, func(p Preset) bool { return p.Name == name })
	if i < 0 {
		return Preset{}, fmt.Errorf("preset %q: want one of %s", name, strings.Join(PresetNames(), ", "))
	}
	p := presets[i]
	p.Config.Architectures = slices.Clone(p.Config.Architectures)
	p.Config.EOSTokenIDs = slices.Clone(p.Config.EOSTokenIDs)
	return p, nil
}
