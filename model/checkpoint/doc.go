// Package checkpoint gets a model in and out of memory whatever its source: an HF directory
// (safetensors + config.json + tokenizer files) or a llama.cpp GGUF file, always together with its
// tokenizer. It also creates new randomly initialised models (`alignkit init`) and converts a
// tokenizer to what a GGUF embeds.
package checkpoint
