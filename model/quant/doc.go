// Package quant holds frozen linear weights small, for LoRA and QLoRA: a base model's matrices are
// never trained, only multiplied (forward y = x·Wᵀ, backward dx += dy·W), so they can live in 16, 8 or 4
// bits and be decoded a tile at a time while the product runs. [Matrix] implements ops.Frozen, which
// model.Tensor.Frozen holds and which the training graph's frozen linear op and the inference engine call.
//
// # Formats
//
//	format  bits/value  layout (one row = ceil(in/block) blocks)                    |error| bound
//	F32     32          the float32 matrix itself                                   0
//	BF16    16          float32's top half, round to nearest even                   2^-8·|x|
//	F16     16          IEEE binary16, round to nearest even                        2^-11·|x| (normal range)
//	Q8_0    8.5         ggml: 32 int8 q and an fp16 d = amax/127; x = d·q           d/2 + 127·(fp16 rounding of d)
//	NF4     4.5         QLoRA: 64 4-bit codes and a float32 absmax; x = NF4[q]·absmax  0.1519·absmax
//	Q4_0    4.5         ggml, read from GGUF only: 32 values, fp16 d; x = d·(q-8)
//	Q4_K    4.5         ggml, read from GGUF only: 256 values, 8 sub-blocks of 32 with 6-bit scales and mins
//	Q6_K    6.5625      ggml, read from GGUF only: 256 values, 16 sub-blocks of 16 with int8 scales
//
// The ggml formats keep ggml's bytes exactly (ggml-common.h's block_q8_0, block_q4_0, block_q4_K,
// block_q6_K), so a GGUF's tensors are used as they are in the file, and decoding is bit-exact with
// ggml-quants.c's dequantize_row_* (tested against libggml-base.so itself). A quantised row whose length
// is not a multiple of the block ends in a zero-padded block (stories260K's 172-wide down projection).
//
// Why Q8_0 for 8 bits: it is what llama.cpp and ollama run and what `alignkit export --dtype q8_0` writes,
// so one codec serves both; its blocks of 32 with their own scale bound the error by half a step of the
// block's own range (outliers cost only their block), and its symmetric int8 decode is one multiply. LLM.int8()
// (bitsandbytes' load_in_8bit) instead keeps outlier columns in fp16 and quantises per row; its
// mixed-precision decomposition needs a per-batch outlier search that a frozen CPU product does not want.
//
// Why NF4 for 4 bits: `load_in_4bit` with `bnb_4bit_quant_type: nf4` is the QLoRA recipe (Dettmers et al.
// 2023, "QLoRA: Efficient Finetuning of Quantized LLMs"): its 16 levels are quantiles of N(0, 1), which is
// information-theoretically optimal for normally distributed weights, and the paper shows that NF4 with
// LoRA on every linear layer recovers 16-bit full fine-tuning quality. Its quantiser is a nearest-level
// search (no iterative fit like ggml's Q4_K make_qkx2_quants), so quantising at load is fast and
// deterministic. Blocks are 64 values with a float32 absmax, as bitsandbytes (without double
// quantisation, which would save a further 0.37 bits a value by storing the absmaxes in 8 bits; not
// done). Q4_K is supported too, but only as read from a GGUF, where ggml's quantiser made it.
//
// # Products
//
// MulT and MulAdd never build the float32 matrix. For batches of more than 4 rows, MulT decodes 64 rows
// of W at a time into a per-worker scratch buffer and multiplies with sgemm (OpenBLAS under the
// `openblas` tag, single-threaded per call while the workers run, as model/ops does), the workers taking
// tiles in turn; for one row (a decoding step) fused kernels read each row's blocks once and accumulate
// the dot product without storing decoded values, applying a block's scales once per block as ggml's
// vec_dot does; for 2 to 4 rows each row of W is decoded into an in-length buffer and dotted with the
// inputs. MulAdd splits the columns of dx (whole blocks) over the workers, each
// decoding its columns of 64 rows at a time and adding dy·tile with sgemm, so no element is written by
// two workers and every block is decoded once. Scratch buffers come from a pool: steady-state products
// allocate nothing of the matrix's size.
//
// # Quantize at load
//
// [Config] carries transformers' keys (torch_dtype, load_in_8bit, load_in_4bit, bnb_4bit_quant_type) and
// [Config.Apply] converts a loaded model's linear weights ([IsLinear]: every matrix but the token
// embedding and a reward score head) to the storage they name, freeing the float32; names LoRA trains in
// full (modules_to_save) are protected by a keep function. [Config.Hold] is the same rule for one tensor
// whose source already has a format: checkpoint.OpenFrozen applies it as each tensor is read, so a base
// is never whole in memory as float32 — an HF model's tensors are encoded right after reading, a GGUF's
// linear weights keep the file's own blocks unless a key asks for another format. A GGUF whose tensor is
// already block-quantized (Q8_0, Q4_0, Q4_K, Q6_K) is not re-quantized into another format (load_in_4bit
// on a Q4_K file, say): that rounds rounded weights a second time, onto a grid that shares neither
// blocks nor scales with the file's, for no gain in memory over the blocks the file already holds; the
// request is refused in one line saying so (torch_dtype float32, an exact decoding, is allowed).
package quant
