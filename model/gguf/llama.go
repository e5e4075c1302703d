package gguf

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/internal/ctxerr"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/quant"
)

// WriteOptions control Write.
type WriteOptions struct {
	Name  string // general.name; empty uses the output file's name without its extension
	Dtype string // "f32" (the default when empty), "f16", "q8_0" or "q4_0"; see the package doc for per-tensor types
}

var validDtypes = map[string]uint32{"f32": fileTypeAllF32, "f16": fileTypeMostlyF16, "q8_0": fileTypeMostlyQ80, "q4_0": fileTypeMostlyQ40}

// Write exports w as a GGUF v3 at path under llama.cpp's architecture for its family (Config.GGUFArch:
// llama, qwen2, qwen3, qwen3moe), with tok embedded as its tokenizer. A tokenizer with fewer tokens than
// the model's vocab_size is padded with "[PADn]" unused tokens. A model llama.cpp's architecture cannot
// compute the same way (see exportable) is refused with the reason.
func Write(path string, w *model.Weights, tok *TokenizerInfo, opts WriteOptions) error {
	if w == nil {
		return fmt.Errorf("writing %s: no weights", path)
	}
	if w.Config.IsRewardModel() {
		return fmt.Errorf("writing %s: reward models cannot be exported to GGUF: llama.cpp's %s architecture has no score head", path, w.Config.GGUFArch())
	}
	dtype := opts.Dtype
	if dtype == "" {
		dtype = "f32"
	}
	fileType, ok := validDtypes[dtype]
	if !ok {
		return fmt.Errorf("writing %s: unknown dtype %q (valid: f32, f16, q8_0, q4_0)", path, opts.Dtype)
	}
	if tok == nil {
		return fmt.Errorf("writing %s: a tokenizer is required: llama.cpp cannot run a GGUF without one", path)
	}
	cfg := w.Config
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := exportable(cfg); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := w.Check("weights to export"); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	for _, n := range w.Names() {
		if w.Tensors[n].Frozen != nil {
			return fmt.Errorf("writing %s: tensor %q is a frozen base weight with no float32 values; convert the weights with quant.Dense first", path, n)
		}
	}
	if err := w.CheckFinite("weights to export"); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	name := opts.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	kvs := modelKV(cfg, name, fileType)
	tkv, err := tokenizerKV(tok, cfg.VocabSize)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	kvs = append(kvs, tkv...)
	tensors := modelTensors(w)
	for i := range tensors {
		tensors[i].typ = tensorType(dtype, tensors[i].name, tensors[i].dims)
	}
	return writeFile(path, kvs, tensors, defaultAlign)
}

// exportable refuses what llama.cpp's architecture for the family would compute differently from
// transformers (its graph code in src/models/*.cpp): Qwen2 sizes q by n_embd; Qwen3 has no o_proj bias;
// Qwen3-MoE always renormalises the top-k weights and makes every layer sparse.
func exportable(c model.Config) error {
	switch arch := c.GGUFArch(); arch {
	case "qwen2":
		if c.HeadDim*c.NumAttentionHeads != c.HiddenSize {
			return fmt.Errorf("llama.cpp's qwen2 architecture needs head_dim × num_attention_heads = hidden_size, got %d × %d ≠ %d", c.HeadDim, c.NumAttentionHeads, c.HiddenSize)
		}
	case "qwen3", "qwen3moe":
		if c.AttentionBias {
			return fmt.Errorf("llama.cpp's %s architecture has no attention biases (attention_bias true)", arch)
		}
		if arch == "qwen3moe" && !c.NormTopKProb {
			return fmt.Errorf("llama.cpp's qwen3moe architecture always renormalises the top-k routing weights (norm_topk_prob false)")
		}
		if arch == "qwen3moe" && (c.DecoderSparseStep != 1 || len(c.MLPOnlyLayers) > 0) {
			return fmt.Errorf("llama.cpp's qwen3moe architecture makes every layer sparse (decoder_sparse_step %d, mlp_only_layers %v)", c.DecoderSparseStep, c.MLPOnlyLayers)
		}
	}
	return nil
}

// Metadata keys alignkit adds for Llama 3's rope_scaling: llama.cpp reads the scaled frequencies from
// the rope_freqs.weight tensor and ignores these; LoadWeights reads them back into config.json's
// rope_scaling. (llama.cpp's own rope.scaling.factor key would make it scale linearly on top.)
const (
	keyRopeType     = "alignkit.rope_scaling.rope_type"
	keyRopeFactor   = "alignkit.rope_scaling.factor"
	keyRopeLow      = "alignkit.rope_scaling.low_freq_factor"
	keyRopeHigh     = "alignkit.rope_scaling.high_freq_factor"
	keyRopeOriginal = "alignkit.rope_scaling.original_max_position_embeddings"
	ropeFreqsName   = "rope_freqs.weight"
)

// modelKV is the model metadata, in the order convert_hf_to_gguf.py writes it.
func modelKV(c model.Config, name string, fileType uint32) []kv {
	a := c.GGUFArch()
	kvs := []kv{
		{"general.architecture", a},
		{"general.name", name},
		{"general.alignment", uint32(defaultAlign)},
		{a + ".context_length", uint32(c.MaxPositionEmbeddings)},
		{a + ".embedding_length", uint32(c.HiddenSize)},
		{a + ".block_count", uint32(c.NumHiddenLayers)},
		{a + ".feed_forward_length", uint32(c.IntermediateSize)},
		{a + ".attention.head_count", uint32(c.NumAttentionHeads)},
		{a + ".attention.head_count_kv", uint32(c.NumKeyValueHeads)},
		{a + ".rope.dimension_count", uint32(c.HeadDim)},
		{a + ".rope.freq_base", float32(c.RopeTheta)},
		{a + ".attention.layer_norm_rms_epsilon", float32(c.RMSNormEps)},
	}
	if c.HeadDim*c.NumAttentionHeads != c.HiddenSize {
		// llama.cpp assumes head_dim = D/H unless told otherwise.
		kvs = append(kvs,
			kv{a + ".attention.key_length", uint32(c.HeadDim)},
			kv{a + ".attention.value_length", uint32(c.HeadDim)})
	}
	if c.IsMoE() {
		kvs = append(kvs,
			kv{a + ".expert_count", uint32(c.NumLocalExperts)},
			kv{a + ".expert_used_count", uint32(c.NumExpertsPerTok)})
		if a == "qwen3moe" {
			kvs = append(kvs, kv{a + ".expert_feed_forward_length", uint32(c.MoEIntermediateSize)})
		}
	}
	if c.SlidingWindow > 0 {
		kvs = append(kvs, kv{a + ".attention.sliding_window", uint32(c.SlidingWindow)})
	}
	if rs := c.RopeScaling; rs != nil {
		kvs = append(kvs,
			kv{keyRopeType, rs.RopeType},
			kv{keyRopeFactor, float32(rs.Factor)},
			kv{keyRopeLow, float32(rs.LowFreqFactor)},
			kv{keyRopeHigh, float32(rs.HighFreqFactor)},
			kv{keyRopeOriginal, uint32(rs.OriginalMaxPositionEmbeddings)})
	}
	kvs = append(kvs,
		kv{a + ".vocab_size", uint32(c.VocabSize)},
		kv{"general.file_type", fileType})
	if fileType == fileTypeMostlyQ80 || fileType == fileTypeMostlyQ40 {
		kvs = append(kvs, kv{"general.quantization_version", uint32(2)}) // GGML_QNT_VERSION
	}
	return kvs
}

// tensorType picks a tensor's ggml type for the requested dtype, as convert_hf_to_gguf.py does: 1-D
// tensors (norm gains) and the MoE router stay F32 because they are tiny and precision-critical, and a
// Q8_0 or Q4_0 matrix whose rows do not split into 32-value blocks falls back to F16.
func tensorType(dtype, name string, dims []uint64) GGMLType {
	switch {
	case dtype == "f32" || len(dims) == 1 || strings.HasSuffix(name, ".ffn_gate_inp.weight"):
		return TypeF32
	case dtype == "q8_0" && dims[0]%q8Block == 0:
		return TypeQ8_0
	case dtype == "q4_0" && dims[0]%q4Block == 0:
		return TypeQ4_0
	}
	return TypeF16
}

// ggmlDims reverses a torch shape into ggml's fastest-first order.
func ggmlDims(shape []int) []uint64 {
	d := make([]uint64, len(shape))
	for i, s := range shape {
		d[len(shape)-1-i] = uint64(s)
	}
	return d
}

// ropeFreqs is what convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors stores for Llama 3's
// rope_scaling: the factor dividing each frequency, (hd/2), F32.
func ropeFreqs(c model.Config) []float32 {
	f := c.RopeFactors()
	out := make([]float32, len(f))
	for i, v := range f {
		out[i] = float32(v)
	}
	return out
}

// modelTensors lays out w's tensors under llama.cpp's names (model.Config.LayerTensors, the
// architecture table), Q and K permuted where the architecture wants it, experts stacked. Types are
// filled in by the caller.
func modelTensors(w *model.Weights) []outTensor {
	c := w.Config
	add := func(out []outTensor, gg string, t *model.Tensor) []outTensor {
		return append(out, outTensor{name: gg, dims: ggmlDims(t.Shape), data: t.Data})
	}
	var out []outTensor
	if c.RopeScaling != nil {
		f := ropeFreqs(c)
		out = add(out, ropeFreqsName, &model.Tensor{Shape: []int{len(f)}, Data: f})
	}
	out = add(out, "token_embd.weight", w.Tensors[model.EmbedKey])
	for l := 0; l < c.NumHiddenLayers; l++ {
		lts := c.LayerTensors(l)
		for i := 0; i < len(lts); i++ {
			lt := lts[i]
			t := w.Tensors[lt.HF]
			if lt.Expert < 0 {
				if lt.RoPEHeads > 0 {
					t = &model.Tensor{Shape: t.Shape, Data: permuteRoPE(t.Data, t.Shape, lt.RoPEHeads, true)}
				}
				out = add(out, lt.GGUF, t)
				continue
			}
			// The table lists a role's experts consecutively: stack them into (E, out, in).
			stacked := &model.Tensor{Shape: append([]int{c.NumLocalExperts}, lt.Shape...), Data: make([]float32, 0, len(t.Data)*c.NumLocalExperts)}
			for e := 0; e < c.NumLocalExperts; e++ {
				stacked.Data = append(stacked.Data, w.Tensors[lts[i+e].HF].Data...)
			}
			out = add(out, lt.GGUF, stacked)
			i += c.NumLocalExperts - 1
		}
	}
	out = add(out, "output_norm.weight", w.Tensors[model.FinalNormKey])
	if t, ok := w.Tensors[model.LMHeadKey]; ok {
		out = add(out, "output.weight", t)
	}
	return out
}

// permuteRoPE moves the rows of a Q or K projection (heads*hd, in), or of its bias (heads*hd), between
// HF's rotate-half layout, where RoPE pairs row i with row i+hd/2 of each head, and llama.cpp's
// interleaved layout, where it pairs rows 2i and 2i+1. HF row h*hd + half*hd/2 + i is llama.cpp row
// h*hd + 2i + half. This undoes the permute() in transformers' convert_llama_weights_to_hf.py (toGGUF)
// or redoes it (!toGGUF).
func permuteRoPE(src []float32, shape []int, heads int, toGGUF bool) []float32 {
	rows, cols := shape[0], 1
	if len(shape) == 2 {
		cols = shape[1]
	}
	return permuteRows(src, rows, cols, heads, toGGUF)
}

// permuteRows is permuteRoPE over rows of rowLen elements of any type: float32 values, or the bytes of a
// row of quantised blocks (the permutation is over output rows, so a row's blocks move together).
func permuteRows[T any](src []T, rows, rowLen, heads int, toGGUF bool) []T {
	hd := rows / heads
	dst := make([]T, len(src))
	for h := 0; h < heads; h++ {
		for half := 0; half < 2; half++ {
			for i := 0; i < hd/2; i++ {
				hf := h*hd + half*hd/2 + i
				gg := h*hd + 2*i + half
				from, to := hf, gg
				if !toGGUF {
					from, to = gg, hf
				}
				copy(dst[to*rowLen:(to+1)*rowLen], src[from*rowLen:(from+1)*rowLen])
			}
		}
	}
	return dst
}

// LoadWeights reads a GGUF of one of llama.cpp's llama, qwen2, qwen3 or qwen3moe architectures (F32, F16,
// BF16, Q8_0, Q4_0, Q4_K or Q6_K tensors) as float32 alignkit weights with HF names and Q/K back in
// rotate-half layout, plus its embedded tokenizer (nil when it has none). Mixtral files with stacked or
// per-expert tensors both load, and Llama 3's rope_freqs.weight becomes config.json's rope_scaling. The
// configuration comes from the architecture's metadata keys.
func LoadWeights(path string) (*model.Weights, *TokenizerInfo, error) {
	return LoadWeightsWith(path, LoadOptions{})
}

// LoadOptions control LoadWeightsWith.
type LoadOptions struct {
	// Frozen keeps every linear weight (quant.IsLinear: all matrices but the token embedding) in the
	// file's own encoding as a frozen quant.Matrix, with no float32 copy: the base of LoRA / QLoRA, or
	// inference at the file's size. The embedding and the norms are decoded to float32 as usual.
	Frozen bool
	// Hold, with Frozen, picks how each linear weight is held from its HF name and the file's format
	// (quant.Config.Hold is one): the file's own format keeps its blocks as they are; F32 decodes them
	// to float32 values in Tensor.Data (what a weight trained in full, such as LoRA's modules_to_save,
	// needs); another format re-encodes the decoded values with quant.New, one tensor at a time. Its
	// error refuses the file, wrapped with the path and the tensor's GGUF name. nil keeps every linear
	// weight in the file's format, F32 ones included (as a quant.Matrix).
	Hold func(name string, file quant.Format) (quant.Format, error)
}

// LoadWeightsWith is LoadWeights with options.
func LoadWeightsWith(path string, opts LoadOptions) (*model.Weights, *TokenizerInfo, error) {
	return LoadWeightsContext(context.Background(), path, opts)
}

// LoadWeightsContext is LoadWeightsWith, stopping between tensors when ctx ends; the error wraps
// ctx.Err() and names the file and the tensors done.
func LoadWeightsContext(ctx context.Context, path string, opts LoadOptions) (*model.Weights, *TokenizerInfo, error) {
	f, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	tok, err := f.tokenizerFromKV()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := f.modelConfig(tok)
	if err != nil {
		return nil, nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("loading GGUF: %w", err)
	}
	defer fh.Close()
	if cfg.RopeScaling != nil {
		if err := f.checkRopeFreqs(fh, cfg); err != nil {
			return nil, nil, err
		}
	}
	w, err := f.modelWeights(ctx, fh, cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	return w, tok, nil
}

// architectures maps llama.cpp's architecture and model_type to the transformers class.
var architectures = map[string]string{"llama": "LlamaForCausalLM", "mixtral": "MixtralForCausalLM", "mistral": "MistralForCausalLM",
	"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}

// modelConfig builds the HF configuration from the architecture's metadata.
func (f *File) modelConfig(tok *TokenizerInfo) (model.Config, error) {
	arch, _, err := f.String("general.architecture")
	if err != nil {
		return model.Config{}, err
	}
	if !slices.Contains(model.GGUFArchs(), arch) {
		return model.Config{}, fmt.Errorf("%s: architecture %q is not supported (alignkit loads %s GGUFs)", f.Path, arch, strings.Join(model.GGUFArchs(), ", "))
	}
	if st, ok, _ := f.String(arch + ".rope.scaling.type"); ok && st != "none" {
		return model.Config{}, fmt.Errorf("%s: %s.rope.scaling.type %q is not supported by alignkit's model (supported: none, or Llama 3's rope_freqs.weight)", f.Path, arch, st)
	}
	var firstErr error
	get := func(key string, required bool, def int) int {
		n, ok, err := f.Uint(key)
		switch {
		case firstErr != nil:
		case err != nil:
			firstErr = err
		case !ok && required:
			firstErr = fmt.Errorf("%s: metadata key %s is missing", f.Path, key)
		case !ok:
			return def
		case n > 1<<31:
			firstErr = fmt.Errorf("%s: %s = %d is out of range", f.Path, key, n)
		}
		return int(n)
	}
	a := arch + "."
	c := model.Config{
		HiddenSize:            get(a+"embedding_length", true, 0),
		NumHiddenLayers:       get(a+"block_count", true, 0),
		IntermediateSize:      get(a+"feed_forward_length", true, 0),
		NumAttentionHeads:     get(a+"attention.head_count", true, 0),
		MaxPositionEmbeddings: get(a+"context_length", true, 0),
		NumLocalExperts:       get(a+"expert_count", false, 0),
		NumExpertsPerTok:      get(a+"expert_used_count", false, 0),
	}
	if arch == "llama" {
		c.SlidingWindow = get(a+"attention.sliding_window", false, 0)
	}
	c.NumKeyValueHeads = get(a+"attention.head_count_kv", false, c.NumAttentionHeads)
	if firstErr != nil {
		return model.Config{}, firstErr
	}
	if c.NumAttentionHeads == 0 {
		return model.Config{}, fmt.Errorf("%s: %sattention.head_count is 0", f.Path, a)
	}
	c.HeadDim = get(a+"attention.key_length", false, c.HiddenSize/c.NumAttentionHeads)
	valueLen := get(a+"attention.value_length", false, c.HeadDim)
	ropeDim := get(a+"rope.dimension_count", false, c.HeadDim)
	if firstErr != nil {
		return model.Config{}, firstErr
	}
	if valueLen != c.HeadDim {
		return model.Config{}, fmt.Errorf("%s: value_length %d differs from key_length %d, which alignkit's attention does not support", f.Path, valueLen, c.HeadDim)
	}
	if ropeDim != c.HeadDim {
		return model.Config{}, fmt.Errorf("%s: %srope.dimension_count %d rotates part of the %d-wide heads, which alignkit's RoPE does not support", f.Path, a, ropeDim, c.HeadDim)
	}
	var ok bool
	if c.RMSNormEps, ok, err = f.Float(a + "attention.layer_norm_rms_epsilon"); err != nil {
		return model.Config{}, err
	} else if !ok {
		return model.Config{}, fmt.Errorf("%s: metadata key %sattention.layer_norm_rms_epsilon is missing", f.Path, a)
	}
	if c.RopeTheta, ok, err = f.Float(a + "rope.freq_base"); err != nil {
		return model.Config{}, err
	} else if !ok {
		c.RopeTheta = 10000 // llama.cpp's default
	}
	embd, ok := f.Tensor("token_embd.weight")
	if !ok {
		return model.Config{}, fmt.Errorf("%s: tensor token_embd.weight is missing", f.Path)
	}
	if len(embd.Dims) != 2 {
		return model.Config{}, fmt.Errorf("%s: token_embd.weight has dims %v, want 2", f.Path, embd.Dims)
	}
	c.VocabSize = get(a+"vocab_size", false, int(embd.Dims[1]))
	if firstErr != nil {
		return model.Config{}, firstErr
	}
	_, hasOutput := f.Tensor("output.weight")
	c.TieWordEmbeddings = !hasOutput
	mt, _ := model.ModelTypeForGGUF(arch, c.IsMoE())
	if mt == "llama" && c.SlidingWindow > 0 {
		mt = "mistral"
	}
	c.ModelType, c.Architectures = mt, []string{architectures[mt]}
	switch mt {
	case "mixtral", "qwen3_moe":
		// The load-balancing loss weight is a training setting that GGUF does not carry; use
		// transformers' default (MixtralConfig, Qwen3MoeConfig).
		c.RouterAuxLossCoef = 0.001
	case "llama":
		// Llama's attention_bias: llama.cpp loads q/k/v/o biases when present.
		_, c.AttentionBias = f.Tensor("blk.0.attn_q.bias")
		if c.RopeScaling, err = f.ropeScaling(); err != nil {
			return model.Config{}, err
		}
	}
	if mt == "qwen3_moe" {
		// llama.cpp's qwen3moe: every layer sparse, the top-k weights renormalised.
		c.MoEIntermediateSize = get(a+"expert_feed_forward_length", true, 0)
		c.NormTopKProb, c.DecoderSparseStep = true, 1
		if firstErr != nil {
			return model.Config{}, firstErr
		}
	}
	// Special ids come from the tokenizer; without one, llama.cpp's SentencePiece defaults (BOS 1, EOS 2).
	c.BOSTokenID, c.EOSTokenIDs = 1, []int{2}
	if tok != nil {
		c.BOSTokenID, c.EOSTokenIDs = max(0, int(tok.BOS)), nil
		if tok.EOS >= 0 {
			c.EOSTokenIDs = []int{int(tok.EOS)}
		}
		if tok.PAD >= 0 {
			pad := int(tok.PAD)
			c.PadTokenID = &pad
		}
	}
	if c.BOSTokenID >= c.VocabSize {
		c.BOSTokenID = 0
	}
	if err := c.Validate(); err != nil {
		return model.Config{}, fmt.Errorf("%s: %w", f.Path, err)
	}
	return c, nil
}

// ropeScaling reads Llama 3's rope_scaling: nil without a rope_freqs.weight tensor; the parameters from
// alignkit's keys when present, else convert_hf_to_gguf.py's defaults (low_freq_factor 1,
// high_freq_factor 4, original_max_position_embeddings 8192) with the factor of the lowest frequency.
// checkRopeFreqs then requires the tensor to be exactly what these parameters give.
func (f *File) ropeScaling() (*model.RopeScaling, error) {
	ti, ok := f.Tensor(ropeFreqsName)
	if !ok {
		return nil, nil
	}
	rs := &model.RopeScaling{RopeType: "llama3", LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	if typ, ok, err := f.String(keyRopeType); err != nil {
		return nil, err
	} else if ok && typ != "llama3" {
		return nil, fmt.Errorf("%s: %s %q is not supported (supported: llama3)", f.Path, keyRopeType, typ)
	}
	floats := []struct {
		key string
		dst *float64
	}{{keyRopeFactor, &rs.Factor}, {keyRopeLow, &rs.LowFreqFactor}, {keyRopeHigh, &rs.HighFreqFactor}}
	for _, fl := range floats {
		if v, ok, err := f.Float(fl.key); err != nil {
			return nil, err
		} else if ok {
			*fl.dst = v
		}
	}
	if n, ok, err := f.Uint(keyRopeOriginal); err != nil {
		return nil, err
	} else if ok {
		if n > 1<<31 {
			return nil, fmt.Errorf("%s: %s = %d is out of range", f.Path, keyRopeOriginal, n)
		}
		rs.OriginalMaxPositionEmbeddings = int(n)
	}
	if rs.Factor == 0 {
		// The last pair has the lowest frequency: its factor is rope_scaling.factor itself.
		data, err := f.ReadTensor(ropeFreqsName)
		if err != nil {
			return nil, err
		}
		if len(data.Data) == 0 || len(ti.Dims) != 1 {
			return nil, fmt.Errorf("%s: tensor %s has dims %v, want (head_dim/2)", f.Path, ropeFreqsName, ti.Dims)
		}
		rs.Factor = float64(data.Data[len(data.Data)-1])
	}
	return rs, nil
}

// checkRopeFreqs requires rope_freqs.weight to hold the factors that c's rope_scaling gives, within
// float32 rounding: alignkit computes RoPE from the parameters, so a file whose factors follow another
// rule is refused rather than run differently from llama.cpp.
func (f *File) checkRopeFreqs(r io.ReaderAt, c model.Config) error {
	ti, _ := f.Tensor(ropeFreqsName)
	if got := ti.Shape(); !slices.Equal(got, []int{c.HeadDim / 2}) {
		return fmt.Errorf("%s: tensor %s has shape %v, want [%d] (head_dim/2)", f.Path, ropeFreqsName, got, c.HeadDim/2)
	}
	t, err := f.readTensor(r, ropeFreqsName)
	if err != nil {
		return err
	}
	for i, want := range c.RopeFactors() {
		if got := float64(t.Data[i]); !(math.Abs(got-want) <= 1e-6*want) {
			rs := c.RopeScaling
			return fmt.Errorf("%s: %s[%d] = %g, but llama3 rope scaling with factor %g, low_freq_factor %g, high_freq_factor %g, original_max_position_embeddings %d gives %g",
				f.Path, ropeFreqsName, i, got, rs.Factor, rs.LowFreqFactor, rs.HighFreqFactor, rs.OriginalMaxPositionEmbeddings, want)
		}
	}
	return nil
}

// tensorLoad is one GGUF tensor to read: its expected torch-order shape, and how it becomes HF tensors.
type tensorLoad struct {
	gg    string
	shape []int
	store func(t *model.Tensor)
	// frozen, when set and a frozen base is asked for, stores the tensor's encoded rows instead: rowBytes
	// is the size of one row of its innermost dimension.
	frozen func(f quant.Format, raw []byte, rowBytes int) error
}

// frozenTensor holds the encoded rows of the (out, in) weight name as hold says (nil: the file's own
// blocks, wrapped without copying; see LoadOptions.Hold).
func frozenTensor(name string, f quant.Format, shape []int, raw []byte, hold func(string, quant.Format) (quant.Format, error)) (*model.Tensor, error) {
	shape = append([]int(nil), shape...)
	want := f
	if hold != nil {
		var err error
		if want, err = hold(name, f); err != nil {
			return nil, err
		}
	}
	if want == f && (hold == nil || f != quant.F32) {
		m, err := quant.FromBlocks(f, shape[0], shape[1], raw)
		if err != nil {
			return nil, err
		}
		return &model.Tensor{Shape: shape, Frozen: m}, nil
	}
	// Another format: decode this one tensor (its rows are whole blocks) and encode it.
	data := make([]float32, shape[0]*shape[1])
	if err := f.Decode(data, raw); err != nil {
		return nil, err
	}
	if want == quant.F32 {
		return &model.Tensor{Shape: shape, Data: data}, nil
	}
	m, err := quant.New(want, shape[0], shape[1], data)
	if err != nil {
		return nil, fmt.Errorf("converting %s to %s: %w", f, want, err)
	}
	return &model.Tensor{Shape: shape, Frozen: m}, nil
}

// modelWeights reads every tensor the configuration implies (model.Config.LayerTensors, the architecture
// table), renames it to HF, undoes the Q/K permutation and splits stacked experts. Names, shapes and
// types are all checked before any data is read, and a tensor the plan does not use is an error rather
// than something silently dropped. With frozen, linear weights keep their encoding (permuted and split
// as whole rows of blocks).
func (f *File) modelWeights(ctx context.Context, r io.ReaderAt, c model.Config, opts LoadOptions) (*model.Weights, error) {
	frozen, hold := opts.Frozen, opts.Hold
	// The metadata's sizes (block_count, expert_count, widths) must fit the tensors the file holds
	// before the expected tensor list is built from them.
	var elements int64
	for _, ti := range f.Tensors {
		elements += int64(ti.Numel())
	}
	if err := c.CheckAgainst(len(f.Tensors), elements); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	shapes := model.ExpectedShapes(c)
	w := &model.Weights{Config: c, Tensors: make(map[string]*model.Tensor, len(shapes))}
	var plan []tensorLoad
	direct := func(hf, gg string) {
		shape := shapes[hf]
		load := tensorLoad{gg: gg, shape: shape, store: func(t *model.Tensor) { w.Tensors[hf] = t }}
		if quant.IsLinear(hf, shape) {
			load.frozen = func(qf quant.Format, raw []byte, _ int) error {
				t, err := frozenTensor(hf, qf, shape, raw, hold)
				if err == nil {
					w.Tensors[hf] = t
				}
				return err
			}
		}
		plan = append(plan, load)
	}
	direct(model.EmbedKey, "token_embd.weight")
	for l := 0; l < c.NumHiddenLayers; l++ {
		lts := c.LayerTensors(l)
		for i := 0; i < len(lts); i++ {
			lt := lts[i]
			switch {
			case lt.Expert < 0 && lt.RoPEHeads == 0:
				direct(lt.HF, lt.GGUF)
			case lt.Expert < 0:
				hf, heads, shape := lt.HF, lt.RoPEHeads, lt.Shape
				load := tensorLoad{gg: lt.GGUF, shape: shape, store: func(t *model.Tensor) {
					t.Data = permuteRoPE(t.Data, t.Shape, heads, false)
					w.Tensors[hf] = t
				}}
				if quant.IsLinear(hf, shape) {
					load.frozen = func(qf quant.Format, raw []byte, rowBytes int) error {
						t, err := frozenTensor(hf, qf, shape, permuteRows(raw, shape[0], rowBytes, heads, false), hold)
						if err == nil {
							w.Tensors[hf] = t
						}
						return err
					}
				}
				plan = append(plan, load)
			default:
				experts := lts[i : i+c.NumLocalExperts]
				i += c.NumLocalExperts - 1
				if _, stacked := f.Tensor(lt.GGUF); !stacked && lt.Legacy != "" {
					for _, e := range experts {
						direct(e.HF, e.Legacy)
					}
					continue
				}
				per := lt.Shape                                     // (out, in)
				stacked := append([]int{c.NumLocalExperts}, per...) // (E, out, in)
				plan = append(plan, tensorLoad{lt.GGUF, stacked, func(t *model.Tensor) {
					size := per[0] * per[1]
					for e, x := range experts {
						w.Tensors[x.HF] = &model.Tensor{Shape: append([]int(nil), per...), Data: t.Data[e*size : (e+1)*size : (e+1)*size]}
					}
				}, func(qf quant.Format, raw []byte, rowBytes int) error {
					size := per[0] * rowBytes
					for e, x := range experts {
						t, err := frozenTensor(x.HF, qf, per, raw[e*size:(e+1)*size:(e+1)*size], hold)
						if err != nil {
							return err
						}
						w.Tensors[x.HF] = t
					}
					return nil
				}})
			}
		}
	}
	direct(model.FinalNormKey, "output_norm.weight")
	if !c.TieWordEmbeddings {
		direct(model.LMHeadKey, "output.weight")
	}

	planned := make(map[string]bool, len(plan))
	if c.RopeScaling != nil {
		planned[ropeFreqsName] = true // checked by checkRopeFreqs
	}
	for _, p := range plan {
		planned[p.gg] = true
		ti, ok := f.Tensor(p.gg)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s is missing", f.Path, p.gg)
		}
		if got := ti.Shape(); !slices.Equal(got, p.shape) {
			return nil, fmt.Errorf("%s: tensor %s has shape %v, the metadata implies %v", f.Path, p.gg, got, p.shape)
		}
		if _, err := quantFormat(ti.Type); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", f.Path, p.gg, err)
		}
	}
	for _, ti := range f.Tensors {
		if !planned[ti.Name] {
			return nil, fmt.Errorf("%s: tensor %s is not part of a %s model alignkit can load", f.Path, ti.Name, c.GGUFArch())
		}
	}
	for i, p := range plan {
		if err := ctxerr.Err(ctx); err != nil {
			return nil, fmt.Errorf("loading %s: %w after %d of %d tensors", f.Path, err, i, len(plan))
		}
		if frozen && p.frozen != nil {
			ti, raw, err := f.readRaw(r, p.gg)
			if err != nil {
				return nil, err
			}
			qf, _ := quantFormat(ti.Type) // checked above
			if err := p.frozen(qf, raw, qf.RowBytes(int(ti.Dims[0]))); err != nil {
				return nil, fmt.Errorf("%s: tensor %q: %w", f.Path, p.gg, err)
			}
			continue
		}
		t, err := f.readTensor(r, p.gg)
		if err != nil {
			return nil, err
		}
		p.store(t)
	}
	if err := w.Check(f.Path); err != nil {
		return nil, err
	}
	if err := w.CheckFinite(f.Path); err != nil {
		return nil, err
	}
	return w, nil
}
