// Package bench measures alignkit where it runs: on CPUs. It times the real training path (the
// lm package's forward/backward, the train package's gradient clipping and AdamW) on synthetic
// tokens, and the infer engine's prefill and decode, and reports numbers that compare directly with
// the PyTorch script beside it (bench/torch_train.py) and llama.cpp (bench/llamacpp_decode.mjs).
// bench/run.sh runs them all, alternating engines, and prints one table of ratios.
//
// What is counted, identically for every engine:
//
//   - tokens/s: batch·seq_len tokens per optimizer step (each row is seq_len+1 random tokens, the
//     first seq_len are the input and the last seq_len the next-token targets, so every position is
//     trained), divided by the step's wall time; the reported value is the median over the steps
//     after warm-up. A step is: zero the gradients, forward, backward, clip to global norm 1.0 and
//     AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.01; RMSNorm gains not decayed).
//   - peak RSS: the process's high-water resident set (VmHWM in /proc/self/status; Python's
//     resource.getrusage ru_maxrss is the same kernel counter), read after the last step.
//   - FLOPs per trained token (FLOPsPerToken): 6·N + 12·L·T·H·hd, where N counts the weights that
//     multiply activations: per layer q, k, v, o and the SwiGLU gate, up and down projections, plus
//     the LM head (V·D, counted even when tied to the embedding because the head is a matmul; the
//     embedding lookup and the RMSNorm gains are not). 6·N is forward (2·N) plus backward (4·N);
//     12·L·T·H·hd is the attention score and value products QKᵀ and AV over the full T×T window
//     (forward 4·L·T·H·hd, backward twice that), as PaLM's model-FLOPs utilisation counts them,
//     i.e. not halved for the causal mask. Achieved GFLOP/s is FLOPsPerToken·tokens/s.
//     With LoRA (--lora-r) or gradient checkpointing the count is StepFLOPsPerToken's: a frozen
//     weight's backward is its input gradient only (4·N in place of 6·N), the adapter adds 6·P, and
//     checkpointing adds each decoder layer's recomputed forward (see StepFLOPsPerToken).
//   - peak share: achieved GFLOP/s over the machine's fp32 peak, measured once with a large square
//     sgemm through the BLAS in use (MeasurePeak, `alignkit bench peak`) or given by a flag, so all
//     engines are divided by the same number.
//
// Baselines are taken at their best: PyTorch and llama.cpp each run with 1 thread and with all
// cores, and the report compares against the faster setting, because on a loaded machine their
// spin-waiting workers (OpenMP, ggml) can make 2 threads several times slower than 1.
//
// LoRA and QLoRA runs (--lora-r, --base-dtype) draw the random base tensor by tensor (InitBase),
// converting each weight to bfloat16, Q8_0 or NF4 right after it is drawn, so a model whose float32
// copy would not fit (llama3-8b: 32 GB) is never held in float32; only the adapter's A and B have
// gradients and AdamW state.
//
// Memory flatness (TestTrainMemoryFlat) is checked on VmRSS after a forced collection and
// debug.FreeOSMemory at steps 20 and 200, so that what is compared is memory the process still holds
// rather than where the garbage collector's cycle happens to be.
package bench
