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
// It is StepFLOPsPerToken of full fine-tuning without checkpointing.
func FLOPsPerToken(c model.Config, seqLen int) float64 {
	return StepFLOPsPerToken(c, seqLen, Mode{})
}

// Mode is what a training step trains and recomputes, which sets its FLOP count.
type Mode struct {
	// LoRAR > 0: a rank-LoRAR adapter on every linear layer of the decoder over a frozen base
	// (all-linear); 0: full fine-tuning.
	LoRAR int
	// GradientCheckpointing recomputes each decoder layer's forward in the backward pass.
	GradientCheckpointing bool
}

// LoRAMatmulParams is P of the LoRA FLOP count: the adapter weights one token multiplies with a
// rank-r adapter on every linear layer of the decoder (PEFT's all-linear: q, k, v, o, gate, up,
// down; for a mixture of experts the router and the top-k experts a token is sent to, not the
// LM head). An adapted (in, out) weight holds A (r, in) and B (out, r): r·(in+out). For a dense
// model it equals the adapter's stored size.
func LoRAMatmulParams(c model.Config, r int) int64 {
	d, f, rr := int64(c.HiddenSize), int64(c.IntermediateSize), int64(r)
	hd := int64(headDim(c))
	q := int64(c.NumAttentionHeads) * hd
	kv := int64(kvHeads(c)) * hd
	attn := rr*(d+q) + 2*rr*(d+kv) + rr*(q+d)
	mlp := 3 * rr * (d + f)
	if c.IsMoE() {
		mlp = int64(c.NumExpertsPerTok)*3*rr*(d+f) + rr*(d+int64(c.NumLocalExperts))
	}
	return int64(c.NumHiddenLayers) * (attn + mlp)
}

// StepFLOPsPerToken is the work of one training step per token at sequence length seqLen, the
// numerator of peak_share. With N = MatmulParams, N_L its decoder-layer part (N less the head's
// V·D), P = LoRAMatmulParams and A = 4·L·T·H·hd the attention products' forward (QKᵀ and AV, 2·T·hd
// each per head and layer):
//
//	full fine-tuning   6·N + 3·A          forward 2·N + A; backward 4·N (input and weight gradients) + 2·A
//	LoRA               4·N + 6·P + 3·A    the frozen base's backward is the input gradient only (2·N);
//	                                      the adapter costs 2·P forward and 4·P backward
//	checkpointing      + 2·N_L + A        (+ 2·P with LoRA): every decoder layer's forward runs again
//	                                      in the backward pass; the embedding and head are not
//
// Sources: the 2·N forward / 4·N backward split is Kaplan et al. 2020 ("Scaling Laws for Neural
// Language Models", §2.1: C ≈ 6N, the backward pass being twice the forward because it computes
// both the input and the weight gradient of every matmul); a frozen weight needs only the input
// gradient, half of it, which is LoRA's saving (Hu et al. 2021, §4.2: no gradients or optimizer
// state for most parameters). Counting the recomputed forward is PaLM's hardware FLOPs
// utilisation (Chowdhery et al. 2022, appendix B: HFU includes rematerialisation, MFU does not),
// so a checkpointed run's peak share is the machine's, not the model's. The input gradient of the
// first layer (which only the frozen embedding would use) is counted; it is 1/L of the layers'.
func StepFLOPsPerToken(c model.Config, seqLen int, m Mode) float64 {
	n := float64(MatmulParams(c))
	nl := n - float64(c.VocabSize)*float64(c.HiddenSize)
	a := 4 * float64(c.NumHiddenLayers) * float64(seqLen) * float64(c.NumAttentionHeads*headDim(c))
	var p float64
	flops := 6*n + 3*a
	if m.LoRAR > 0 {
		p = float64(LoRAMatmulParams(c, m.LoRAR))
		flops = 4*n + 6*p + 3*a
	}
	if m.GradientCheckpointing {
		flops += 2*nl + 2*p + a
	}
	return flops
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
