// Package model is alignkit's Llama-family architecture: the HF configuration, the weights keyed by
// transformers' own tensor names, and the Gorgonia float32 training graph that mirrors the inference
// architecture exactly (RMSNorm, rotate-half RoPE, grouped-query attention with an optional sliding
// window, SwiGLU, and Mixtral's top-k mixture of experts with its load-balancing loss).
//
// The families are transformers' LlamaForCausalLM (Llama 2 and 3.x: rope_scaling rope_type llama3,
// attention_bias, explicit head_dim, tied embeddings), MistralForCausalLM, MixtralForCausalLM,
// Qwen2ForCausalLM (Qwen2/2.5: q/k/v biases), Qwen3ForCausalLM (per-head q/k RMSNorm before RoPE) and
// Qwen3MoeForCausalLM (top-k of many experts, norm_topk_prob, decoder_sparse_step, mlp_only_layers),
// and their *ForSequenceClassification reward heads. arch.go holds the one table of tensor names per
// family, transformers' and llama.cpp's; the graph, model/infer, model/hf and model/gguf all ask it
// by Role (Config.LayerTensors, Config.TensorKey).
//
// Gorgonia is imported here and in model/ops only; every other package uses this package's API.
package model

// Importing assume-no-moving-gc keeps Gorgonia's unsafe tricks from panicking at start on Go 1.26:
// the package refuses to run on a Go release it has not been told is safe, unless this is linked.
import _ "go4.org/unsafe/assume-no-moving-gc"
