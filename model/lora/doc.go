// Package lora is LoRA as PEFT defines it, for alignkit's models: the config keys TRL's
// ModelConfig and PEFT's LoraConfig name (use_peft, lora_r, lora_alpha, lora_dropout,
// lora_target_modules, lora_modules_to_save, use_rslora), the resolution of target modules to a
// model's linear weights, PEFT's initialisation (A Kaiming-uniform, B zero), the adapter directory
// PEFT writes (adapter_config.json and adapter_model.safetensors, read by PEFT and vLLM), and the
// merge W' = W + scale·B·A.
//
// The adapter itself is a *model.Adapter, which the training graph (model.GraphSpec.Adapter) and the
// inference engine run without merging.
package lora
