// Package hf reads and writes Hugging Face model directories: config.json, generation_config.json and
// safetensors weights (one model.safetensors, or model-0000N-of-0000M.safetensors shards with
// model.safetensors.index.json), with tensor names exactly as transformers names them.
//
// The safetensors reader and writer are this package's own (the format is an 8-byte little-endian
// header length, a JSON header mapping each tensor name to its dtype, shape and [begin, end) byte range
// in the data section, then the data section). Every header is validated before anything is allocated
// for tensor data, so a corrupt or hostile file costs at most its header's size (bounded) in memory.
// F32, F16 and BF16 tensors are read into float32; weights are written as F32, BF16 or F16 with
// round-to-nearest-even, as torch's .to(dtype) does. Every file is written atomically (a temp file in the
// same directory, fsync, rename), so a crash never leaves a half-written checkpoint file under its
// final name.
package hf
