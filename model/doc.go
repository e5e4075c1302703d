// Package model is alignkit's Llama-family architecture: the HF configuration, the weights keyed by
// transformers' own tensor names, and the Gorgonia float32 training graph that mirrors the inference
// architecture exactly (RMSNorm, rotate-half RoPE, grouped-query attention with an optional sliding
// window, SwiGLU, and Mixtral's top-k mixture of experts with its load-balancing loss).
//
// Gorgonia is imported here and in model/ops only; every other package uses this package's API.
package model

// Importing assume-no-moving-gc keeps Gorgonia's unsafe tricks from panicking at start on Go 1.26:
// the package refuses to run on a Go release it has not been told is safe, unless this is linked.
import _ "go4.org/unsafe/assume-no-moving-gc"
