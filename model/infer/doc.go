// Package infer is alignkit's pure-Go float32 inference engine for Llama, Mistral and Mixtral models held
// as *model.Weights. It computes what transformers' LlamaForCausalLM, MistralForCausalLM and
// MixtralForCausalLM (and their *ForSequenceClassification reward variants) compute: RMSNorm, rotate-half
// RoPE, grouped-query attention with Mistral's optional sliding window, SwiGLU or Mixtral's top-k mixture
// of experts, and the tied or untied output head.
//
// Matrix products go through model/blas (gonum or OpenBLAS), or, for a linear weight held frozen in 16,
// 8 or 4 bits (model.Tensor.Frozen, see model/quant), through the weight's own MulT, which decodes tiles
// on the fly; the embedding and norms are always float32. Attention, norms and activations fan out
// over heads and rows with goroutines. An Engine never writes to its weights, so any number of
// goroutines may use one Engine at once; a Session (a KV cache) belongs to one goroutine at a time.
package infer
