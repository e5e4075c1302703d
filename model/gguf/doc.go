// Package gguf reads and writes GGUF, the single-file model format of llama.cpp, so that alignkit's
// checkpoints run in llama.cpp (and ollama, LM Studio, ...) and llama.cpp's files can be fine-tuned.
//
// # File layout (GGUF v3, little-endian)
//
//	magic "GGUF" | version u32 | tensor count u64 | metadata count u64
//	metadata: key (u64 length + UTF-8) | value type u32 | value      (arrays: elem type u32, count u64, elems)
//	tensor infos: name | n_dims u32 | dims u64[n_dims] | ggml type u32 | offset u64 (relative to the data section)
//	padding to general.alignment (32 unless the key says otherwise) | tensor data, each tensor aligned
//
// ggml lists dimensions fastest-first, the reverse of torch: a torch [out, in] weight is ggml [in, out]. The
// bytes are the same row-major array either way, so a tensor is written by reversing its shape only.
//
// # Writing
//
// [Write] exports a checkpoint under llama.cpp's architecture for its family, as llama.cpp's
// convert_hf_to_gguf.py does: Llama 2/3, Mistral and Mixtral as `llama`, Qwen2/2.5 as `qwen2`, Qwen3 as
// `qwen3`, Qwen3-MoE as `qwen3moe`. It writes the architecture's metadata keys ({arch}.block_count, ...),
// its tensor names from model.Config.LayerTensors (token_embd, blk.N.attn_q, blk.N.attn_q.bias,
// blk.N.attn_q_norm, ..., the router blk.N.ffn_gate_inp and experts stacked into 3-D
// blk.N.ffn_{gate,up,down}_exps), and, for the `llama` architecture only, Q/K rows (and biases) permuted
// from HF's rotate-half RoPE layout back to the interleaved pairs that its RoPE rotates (the Qwen
// architectures use NEOX RoPE, which is rotate-half). Llama 3's rope_scaling becomes rope_freqs.weight,
// the per-pair frequency divisors that convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors writes,
// with the parameters kept in alignkit.rope_scaling.* keys that llama.cpp ignores. Settings that
// llama.cpp's graph would compute differently are refused: Qwen3 attention biases, Qwen3-MoE without
// norm_topk_prob or with dense layers, Qwen2 with head_dim × heads ≠ hidden_size.
// Tensor types follow convert_hf_to_gguf.py for each --outtype:
//
//   - f32: every tensor F32.
//   - f16: matrices F16; 1-D tensors (the RMSNorm gains) and the MoE router stay F32.
//   - q8_0: matrices Q8_0 (blocks of 32: one fp16 scale d = max|x|/127, 32 int8 q = round(x/d)); 1-D tensors
//     and the router stay F32; a matrix whose row length is not a multiple of 32 cannot be cut into blocks
//     and falls back to F16, as gguf-py does.
//   - q4_0: as q8_0 with Q4_0 blocks (32 values, fp16 d = max/-8 where max is the value of largest
//     magnitude, q = min(15, trunc(x/d + 8.5)) in nibbles), byte for byte llama.cpp's
//     quantize_row_q4_0_ref (what llama-quantize writes for Q4_0, except that it makes token_embd and
//     output Q4_0 too rather than its Q6_K output); convert_hf_to_gguf.py has no such --outtype.
//
// Mistral's sliding window has no place in llama.cpp's `llama` architecture, which attends to the whole
// context; the window is kept in the key llama.attention.sliding_window so that [LoadWeights] restores it, and
// llama.cpp's results match alignkit's only while a sequence fits in the window.
//
// Reward models (a score head instead of lm_head) are refused: the `llama` architecture has no such head.
//
// # Reading
//
// [Open] parses and validates any GGUF v2 or v3 file (all metadata types, nested arrays included; counts,
// lengths, offsets and tensor sizes are checked against the file length before anything is allocated), and
// [File.ReadTensor] dequantises F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K tensors to float32 in torch's
// dimension order, bit-exactly as ggml's dequantize_row_* (model/quant's decoders).
// [LoadWeights] turns a llama, qwen2, qwen3 or qwen3moe GGUF back into alignkit's HF-named
// [model.Weights] and the embedded tokenizer, undoing the Q/K permutation, so a GGUF can be used wherever
// an HF directory can. A rope_freqs.weight becomes rope_scaling llama3, from alignkit's keys or, in
// llama.cpp's own conversions, from the converter's defaults (low 1, high 4, original 8192) and the
// largest factor; the tensor must then hold exactly what those parameters give.
// [LoadWeightsWith] with Frozen keeps every linear weight in the file's own blocks as a frozen
// quant.Matrix (no float32 copy; Q/K rows un-permuted as whole rows of blocks, stacked experts split by
// rows), the base for LoRA/QLoRA on the very file llama.cpp and ollama run; its Hold may instead ask,
// tensor by tensor, for float32 values or another format (decoded and re-encoded one tensor at a time).
// Any other tensor type is refused in one line naming the tensor, its type and the readable types.
//
// Files are written atomically: a temporary file in the destination directory is renamed over the target.
package gguf
