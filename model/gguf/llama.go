package gguf

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/model"
)

// WriteOptions control Write.
type WriteOptions struct {
	Name  string // general.name; empty uses the output file's name without its extension
	Dtype string // "f32" (the default when empty), "f16" or "q8_0"; see the package doc for per-tensor types
}

var validDtypes = map[string]uint32{"f32": fileTypeAllF32, "f16": fileTypeMostlyF16, "q8_0": fileTypeMostlyQ80}

// Write exports w as a llama.cpp `llama`-architecture GGUF v3 at path, with tok embedded as its tokenizer.
// A tokenizer with fewer tokens than the model's vocab_size is padded with "[PADn]" unused tokens.
func Write(path string, w *model.Weights, tok *TokenizerInfo, opts WriteOptions) error {
	if w == nil {
		return fmt.Errorf("writing %s: no weights", path)
	}
	if w.Config.IsRewardModel() {
		return fmt.Errorf("writing %s: reward models cannot be exported to GGUF: llama.cpp's llama architecture has no score head", path)
	}
	dtype := opts.Dtype
	if dtype == "" {
		dtype = "f32"
	}
	fileType, ok := validDtypes[dtype]
	if !ok {
		return fmt.Errorf("writing %s: unknown dtype %q (valid: f32, f16, q8_0)", path, opts.Dtype)
	}
	if tok == nil {
		return fmt.Errorf("writing %s: a tokenizer is required: llama.cpp cannot run a GGUF without one", path)
	}
	cfg := w.Config
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := w.Check("weights to export"); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := w.CheckFinite("weights to export"); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	name := opts.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	kvs := llamaKV(cfg, name, fileType)
	tkv, err := tokenizerKV(tok, cfg.VocabSize)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	kvs = append(kvs, tkv...)
	tensors := llamaTensors(w)
	for i := range tensors {
		tensors[i].typ = tensorType(dtype, tensors[i].name, tensors[i].dims)
	}
	return writeFile(path, kvs, tensors, defaultAlign)
}

// llamaKV is the model metadata, in the order convert_hf_to_gguf.py writes it.
func llamaKV(c model.Config, name string, fileType uint32) []kv {
	kvs := []kv{
		{"general.architecture", "llama"},
		{"general.name", name},
		{"general.alignment", uint32(defaultAlign)},
		{"llama.context_length", uint32(c.MaxPositionEmbeddings)},
		{"llama.embedding_length", uint32(c.HiddenSize)},
		{"llama.block_count", uint32(c.NumHiddenLayers)},
		{"llama.feed_forward_length", uint32(c.IntermediateSize)},
		{"llama.attention.head_count", uint32(c.NumAttentionHeads)},
		{"llama.attention.head_count_kv", uint32(c.NumKeyValueHeads)},
		{"llama.rope.dimension_count", uint32(c.HeadDim)},
		{"llama.rope.freq_base", float32(c.RopeTheta)},
		{"llama.attention.layer_norm_rms_epsilon", float32(c.RMSNormEps)},
	}
	if c.HeadDim*c.NumAttentionHeads != c.HiddenSize {
		// llama.cpp assumes head_dim = D/H unless told otherwise.
		kvs = append(kvs,
			kv{"llama.attention.key_length", uint32(c.HeadDim)},
			kv{"llama.attention.value_length", uint32(c.HeadDim)})
	}
	if c.IsMoE() {
		kvs = append(kvs,
			kv{"llama.expert_count", uint32(c.NumLocalExperts)},
			kv{"llama.expert_used_count", uint32(c.NumExpertsPerTok)})
	}
	if c.SlidingWindow > 0 {
		kvs = append(kvs, kv{"llama.attention.sliding_window", uint32(c.SlidingWindow)})
	}
	kvs = append(kvs,
		kv{"llama.vocab_size", uint32(c.VocabSize)},
		kv{"general.file_type", fileType})
	if fileType == fileTypeMostlyQ80 {
		kvs = append(kvs, kv{"general.quantization_version", uint32(2)}) // GGML_QNT_VERSION
	}
	return kvs
}

// tensorType picks a tensor's ggml type for the requested dtype, as convert_hf_to_gguf.py does: 1-D
// tensors (norm gains) and the MoE router stay F32 because they are tiny and precision-critical, and a
// Q8_0 matrix whose rows do not split into 32-value blocks falls back to F16.
func tensorType(dtype, name string, dims []uint64) GGMLType {
	switch {
	case dtype == "f32" || len(dims) == 1 || strings.HasSuffix(name, ".ffn_gate_inp.weight"):
		return TypeF32
	case dtype == "q8_0" && dims[0]%q8Block == 0:
		return TypeQ8_0
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

// layerNames maps alignkit's per-layer HF suffixes to llama.cpp's, in convert order; heads says which
// rows get the RoPE permutation (0: none).
type layerName struct {
	hf, gg string
	heads  func(model.Config) int
}

var attnNames = []layerName{
	{"input_layernorm.weight", "attn_norm.weight", nil},
	{"self_attn.q_proj.weight", "attn_q.weight", func(c model.Config) int { return c.NumAttentionHeads }},
	{"self_attn.k_proj.weight", "attn_k.weight", func(c model.Config) int { return c.NumKeyValueHeads }},
	{"self_attn.v_proj.weight", "attn_v.weight", nil},
	{"self_attn.o_proj.weight", "attn_output.weight", nil},
	{"post_attention_layernorm.weight", "ffn_norm.weight", nil},
}

var denseNames = []layerName{
	{"mlp.gate_proj.weight", "ffn_gate.weight", nil},
	{"mlp.down_proj.weight", "ffn_down.weight", nil},
	{"mlp.up_proj.weight", "ffn_up.weight", nil},
}

// expertNames maps Mixtral's per-expert matrices (w1 gate, w2 down, w3 up) to llama.cpp's stacked 3-D
// tensors and to the older one-tensor-per-expert names.
var expertNames = []struct{ w, stacked, single string }{
	{"w1", "ffn_gate_exps.weight", "ffn_gate"},
	{"w2", "ffn_down_exps.weight", "ffn_down"},
	{"w3", "ffn_up_exps.weight", "ffn_up"},
}

const routerHF, routerGG = "block_sparse_moe.gate.weight", "ffn_gate_inp.weight"

func blk(l int, name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

// llamaTensors lays out w's tensors under llama.cpp's names, Q and K permuted, experts stacked. Types
// are filled in by the caller.
func llamaTensors(w *model.Weights) []outTensor {
	c := w.Config
	add := func(out []outTensor, gg string, t *model.Tensor) []outTensor {
		return append(out, outTensor{name: gg, dims: ggmlDims(t.Shape), data: t.Data})
	}
	out := add(nil, "token_embd.weight", w.Tensors[model.EmbedKey])
	for l := 0; l < c.NumHiddenLayers; l++ {
		for _, n := range attnNames {
			t := w.Tensors[model.LayerKey(l, n.hf)]
			if n.heads != nil {
				t = &model.Tensor{Shape: t.Shape, Data: permuteRoPE(t.Data, t.Shape, n.heads(c), true)}
			}
			out = add(out, blk(l, n.gg), t)
		}
		if !c.IsMoE() {
			for _, n := range denseNames {
				out = add(out, blk(l, n.gg), w.Tensors[model.LayerKey(l, n.hf)])
			}
			continue
		}
		out = add(out, blk(l, routerGG), w.Tensors[model.LayerKey(l, routerHF)])
		for _, n := range expertNames {
			first := w.Tensors[model.ExpertKey(l, 0, n.w)]
			per := len(first.Data)
			stacked := &model.Tensor{Shape: append([]int{c.NumLocalExperts}, first.Shape...), Data: make([]float32, 0, per*c.NumLocalExperts)} // (E, out, in)
			for e := 0; e < c.NumLocalExperts; e++ {
				stacked.Data = append(stacked.Data, w.Tensors[model.ExpertKey(l, e, n.w)].Data...)
			}
			out = add(out, blk(l, n.stacked), stacked)
		}
	}
	out = add(out, "output_norm.weight", w.Tensors[model.FinalNormKey])
	if t, ok := w.Tensors[model.LMHeadKey]; ok {
		out = add(out, "output.weight", t)
	}
	return out
}

// permuteRoPE moves the rows of a Q or K projection (heads*hd, in) between HF's rotate-half layout, where
// RoPE pairs row i with row i+hd/2 of each head, and llama.cpp's interleaved layout, where it pairs rows
// 2i and 2i+1. HF row h*hd + half*hd/2 + i is llama.cpp row h*hd + 2i + half. This undoes the permute()
// in transformers' convert_llama_weights_to_hf.py (toGGUF) or redoes it (!toGGUF).
func permuteRoPE(src []float32, shape []int, heads int, toGGUF bool) []float32 {
	rows, cols := shape[0], shape[1]
	hd := rows / heads
	dst := make([]float32, len(src))
	for h := 0; h < heads; h++ {
		for half := 0; half < 2; half++ {
			for i := 0; i < hd/2; i++ {
				hf := h*hd + half*hd/2 + i
				gg := h*hd + 2*i + half
				from, to := hf, gg
				if !toGGUF {
					from, to = gg, hf
				}
				copy(dst[to*cols:(to+1)*cols], src[from*cols:(from+1)*cols])
			}
		}
	}
	return dst
}

// LoadWeights reads a `llama`-architecture GGUF (F32, F16, BF16 or Q8_0 tensors) as alignkit weights with
// HF names and Q/K back in rotate-half layout, plus its embedded tokenizer (nil when it has none). Mixtral
// files with stacked or per-expert tensors both load. The configuration comes from the llama.* keys.
func LoadWeights(path string) (*model.Weights, *TokenizerInfo, error) {
	f, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	tok, err := f.tokenizerFromKV()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := f.llamaConfig(tok)
	if err != nil {
		return nil, nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("loading GGUF: %w", err)
	}
	defer fh.Close()
	w, err := f.llamaWeights(fh, cfg)
	if err != nil {
		return nil, nil, err
	}
	return w, tok, nil
}

// llamaConfig builds the HF configuration from the llama.* metadata.
func (f *File) llamaConfig(tok *TokenizerInfo) (model.Config, error) {
	arch, _, err := f.String("general.architecture")
	if err != nil {
		return model.Config{}, err
	}
	if arch != "llama" {
		return model.Config{}, fmt.Errorf("%s: architecture %q is not supported (alignkit loads \"llama\" GGUFs)", f.Path, arch)
	}
	if st, ok, _ := f.String("llama.rope.scaling.type"); ok && st != "none" {
		return model.Config{}, fmt.Errorf("%s: llama.rope.scaling.type %q is not supported by alignkit's model", f.Path, st)
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
	c := model.Config{
		HiddenSize:            get("llama.embedding_length", true, 0),
		NumHiddenLayers:       get("llama.block_count", true, 0),
		IntermediateSize:      get("llama.feed_forward_length", true, 0),
		NumAttentionHeads:     get("llama.attention.head_count", true, 0),
		MaxPositionEmbeddings: get("llama.context_length", true, 0),
		NumLocalExperts:       get("llama.expert_count", false, 0),
		NumExpertsPerTok:      get("llama.expert_used_count", false, 0),
		SlidingWindow:         get("llama.attention.sliding_window", false, 0),
	}
	c.NumKeyValueHeads = get("llama.attention.head_count_kv", false, c.NumAttentionHeads)
	if firstErr != nil {
		return model.Config{}, firstErr
	}
	if c.NumAttentionHeads == 0 {
		return model.Config{}, fmt.Errorf("%s: llama.attention.head_count is 0", f.Path)
	}
	c.HeadDim = get("llama.attention.key_length", false, c.HiddenSize/c.NumAttentionHeads)
	valueLen := get("llama.attention.value_length", false, c.HeadDim)
	ropeDim := get("llama.rope.dimension_count", false, c.HeadDim)
	if firstErr != nil {
		return model.Config{}, firstErr
	}
	if valueLen != c.HeadDim {
		return model.Config{}, fmt.Errorf("%s: value_length %d differs from key_length %d, which alignkit's attention does not support", f.Path, valueLen, c.HeadDim)
	}
	if ropeDim != c.HeadDim {
		return model.Config{}, fmt.Errorf("%s: llama.rope.dimension_count %d rotates part of the %d-wide heads, which alignkit's RoPE does not support", f.Path, ropeDim, c.HeadDim)
	}
	var ok bool
	if c.RMSNormEps, ok, err = f.Float("llama.attention.layer_norm_rms_epsilon"); err != nil {
		return model.Config{}, err
	} else if !ok {
		return model.Config{}, fmt.Errorf("%s: metadata key llama.attention.layer_norm_rms_epsilon is missing", f.Path)
	}
	if c.RopeTheta, ok, err = f.Float("llama.rope.freq_base"); err != nil {
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
	c.VocabSize = get("llama.vocab_size", false, int(embd.Dims[1]))
	if firstErr != nil {
		return model.Config{}, firstErr
	}
	_, hasOutput := f.Tensor("output.weight")
	c.TieWordEmbeddings = !hasOutput
	switch {
	case c.NumLocalExperts > 0:
		c.Architectures, c.ModelType = []string{"MixtralForCausalLM"}, "mixtral"
		// The load-balancing loss weight is a training setting that GGUF does not carry; use
		// transformers' MixtralConfig default.
		c.RouterAuxLossCoef = 0.001
	case c.SlidingWindow > 0:
		c.Architectures, c.ModelType = []string{"MistralForCausalLM"}, "mistral"
	default:
		c.Architectures, c.ModelType = []string{"LlamaForCausalLM"}, "llama"
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

// tensorLoad is one GGUF tensor to read: its expected torch-order shape, and how it becomes HF tensors.
type tensorLoad struct {
	gg    string
	shape []int
	store func(t *model.Tensor)
}

// llamaWeights reads every tensor the configuration implies, renames it to HF, undoes the Q/K
// permutation and splits stacked experts. Names and shapes are all checked before any data is read, and
// a tensor the plan does not use is an error rather than something silently dropped.
func (f *File) llamaWeights(r io.ReaderAt, c model.Config) (*model.Weights, error) {
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
		plan = append(plan, tensorLoad{gg, shapes[hf], func(t *model.Tensor) { w.Tensors[hf] = t }})
	}
	direct(model.EmbedKey, "token_embd.weight")
	for l := 0; l < c.NumHiddenLayers; l++ {
		for _, n := range attnNames {
			hf := model.LayerKey(l, n.hf)
			if n.heads == nil {
				direct(hf, blk(l, n.gg))
				continue
			}
			heads := n.heads(c)
			plan = append(plan, tensorLoad{blk(l, n.gg), shapes[hf], func(t *model.Tensor) {
				t.Data = permuteRoPE(t.Data, t.Shape, heads, false)
				w.Tensors[hf] = t
			}})
		}
		if !c.IsMoE() {
			for _, n := range denseNames {
				direct(model.LayerKey(l, n.hf), blk(l, n.gg))
			}
			continue
		}
		direct(model.LayerKey(l, routerHF), blk(l, routerGG))
		for _, n := range expertNames {
			if _, stacked := f.Tensor(blk(l, n.stacked)); !stacked {
				for e := 0; e < c.NumLocalExperts; e++ {
					direct(model.ExpertKey(l, e, n.w), blk(l, fmt.Sprintf("%s.%d.weight", n.single, e)))
				}
				continue
			}
			per := shapes[model.ExpertKey(l, 0, n.w)] // (out, in)
			layer, w1 := l, n.w
			plan = append(plan, tensorLoad{blk(l, n.stacked), append([]int{c.NumLocalExperts}, per...), func(t *model.Tensor) { // (E, out, in)
				size := per[0] * per[1]
				for e := 0; e < c.NumLocalExperts; e++ {
					w.Tensors[model.ExpertKey(layer, e, w1)] = &model.Tensor{Shape: append([]int(nil), per...), Data: t.Data[e*size : (e+1)*size : (e+1)*size]}
				}
			}})
		}
	}
	direct(model.FinalNormKey, "output_norm.weight")
	if !c.TieWordEmbeddings {
		direct(model.LMHeadKey, "output.weight")
	}

	planned := make(map[string]bool, len(plan))
	for _, p := range plan {
		planned[p.gg] = true
		ti, ok := f.Tensor(p.gg)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s is missing", f.Path, p.gg)
		}
		if got := ti.Shape(); !slices.Equal(got, p.shape) {
			return nil, fmt.Errorf("%s: tensor %s has shape %v, the metadata implies %v", f.Path, p.gg, got, p.shape)
		}
	}
	for _, ti := range f.Tensors {
		if !planned[ti.Name] {
			return nil, fmt.Errorf("%s: tensor %s is not part of a llama model alignkit can load", f.Path, ti.Name)
		}
	}
	for _, p := range plan {
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
