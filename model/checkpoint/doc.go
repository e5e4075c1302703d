// Package checkpoint gets a model in and out of memory whatever its source: an HF directory
// (safetensors + config.json + tokenizer files) or a llama.cpp GGUF file, always together with its
// tokenizer. [Open] reads every weight as float32 (what full fine-tuning trains); [OpenFrozen] reads
// the frozen base of a LoRA / QLoRA run, its linear weights kept in the GGUF's own blocks or converted
// to what torch_dtype / load_in_8bit / load_in_4bit name as each tensor is read, so the base is never
// whole in memory as float32. It also creates new randomly initialised models (`alignkit init`) and
// converts a tokenizer to what a GGUF embeds.
package checkpoint
