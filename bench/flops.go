package bench

import "github.com/alignkit/alignkit/model"

// MatmulParams is N of the FLOP count: the weights that multiply activations for one token. Per layer
// these are q, k, v, o and the SwiGLU gate, up and down projections (for a mixture of experts, the
// router and the top-k experts a token is sent to), plus the LM head's V·D, counted even when it is
// tied to the embedding because the head is a matmul while the embedding is a lookup. RMSNorm gains
// are left out.
func MatmulParams(c model.Config) int64 {
	d, f := int64(c.HiddenSize), int64(c.IntermediateSize)
	hd := int64(headDim(c))
	q := int64(c.NumAttentionHeads) * hd
	kv := int64(kvHeads(c)) * hd
	attn := d*q + 2*d*kv + q*d
	mlp := 3 * d * f
	if c.IsMoE() {
		mlp = int64(c.NumExpertsPerTok)*3*d*f + d*int64(c.NumLocalExperts)
	}
	return int64(c.NumHiddenLayers)*(attn+mlp) + int64(c.VocabSize)*d
}

// FLOPsPerToken is the training cost of one token at sequence length seqLen: 6·N (forward 2·N,
// backward 4·N) plus 12·L·T·H·hd for the attention products QKᵀ and AV over the full T×T window
// (forward 4·L·T·H·hd, backward 8·L·T·H·hd; not halved for the causal mask, as PaLM's MFU counts).
func FLOPsPerToken(c model.Config, seqLen int) float64 {
	attn := 12 * float64(c.NumHiddenLayers) * float64(seqLen) * float64(c.NumAttentionHeads*headDim(c))
	return 6*float64(MatmulParams(c)) + attn
}

// ParamCount is the number of stored parameters (the tied embedding counted once).
func ParamCount(c model.Config) int64 {
	var n int64
	for _, shape := range model.ExpectedShapes(c) {
		p := int64(1)
		for _, s := range shape {
			p *= int64(s)
		}
		n += p
	}
	return n
}

func headDim(c model.Config) int {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	return c.HiddenSize / c.NumAttentionHeads
}

func kvHeads(c model.Config) int {
	if c.NumKeyValueHeads > 0 {
		return c.NumKeyValueHeads
	}
	return c.NumAttentionHeads
}
