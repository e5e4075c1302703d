// Package conformance checks that what `alignkit export` writes runs the same in an independent
// inference engine as in alignkit itself. It holds tests only.
//
// The tests drive the real command line (the alignkit binary, built once with the same build tags as
// the test) and llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build, through
// conformance/llamacpp/logprobs.mjs), and compare, position by position over the whole vocabulary,
// llama.cpp's next-token log-probabilities on the exported GGUF with `alignkit logits --json` on the
// source checkpoint:
//
//   - stories260K (../shared/models/stories260K): the exported tensors are byte-identical to llama.cpp's
//     own conversion, and log-probs agree within 1e-4 on 64 tokens of text;
//   - random models from `alignkit init`: multi-head attention with an untied head, GQA with 2 KV
//     heads, Mistral (inside its sliding window) and Mixtral (4 experts, top-2): log-probs within 1e-4
//     and identical greedy continuations (`alignkit generate --temperature 0`);
//   - stories260K after a short `alignkit sft` run, the same way;
//   - f16 and q8_0 exports: the most likely next token agrees at >= 99% of a few hundred positions,
//     and the largest log-prob difference is reported.
//
// The tests skip with a message when node or conformance/llamacpp/node_modules is missing (`make
// conformance` installs it; CI does too), and when ../shared is absent. ALIGNKIT_CLI names a prebuilt
// binary to use instead of building one (the Makefile's conformance target passes bin/alignkit).
package conformance
