// Package serve is `alignkit serve`: an OpenAI-compatible HTTP server (net/http) over alignkit's own
// engine, so that anything that speaks the OpenAI API — the rejection-sampling job's openai backend,
// the openai SDKs, curl — can sample from a model being aligned, and score with its reward model.
//
// # Endpoints
//
//   - GET /health: {"status": "ok", "running": generations in progress, "waiting": requests queued}.
//   - GET /v1/models: the served model (its id is --name, default the model directory's base name).
//   - POST /v1/completions: prompt (a string, a list of strings, a list of token ids or a list of such
//     lists), n, temperature (default 1), top_p, top_k, max_tokens (default 16), seed, stop, stream.
//     Text is continued as is, with BOS when the tokenizer adds one.
//   - POST /v1/chat/completions: messages ({role, content}: system, user, assistant), n, temperature,
//     top_p, top_k, max_tokens or max_completion_tokens (default: up to the context length), seed,
//     stop, stream. Messages are rendered with the model's chat template (or --chat-template) and
//     add_generation_prompt, and tokenized as the trainers tokenize them (rlhf.Local).
//   - POST /v1/score, with --reward-model only: {"prompt": "...", "response": "..."} or
//     {"messages": [..., {"role": "assistant", ...}]} (the last message is the response) gives
//     {"reward": x}, tokenized as the reward trainer tokenizes a chosen answer.
//   - POST /v1/load_lora_adapter {"lora_name", "lora_path"} and POST /v1/unload_lora_adapter
//     {"lora_name"}, with --allow-runtime-lora only (404 otherwise), as vLLM's server answers them
//     under VLLM_ALLOW_RUNTIME_LORA_UPDATING=True: a PEFT adapter directory on the server's file
//     system, checked against the served base's shapes, is loaded under a name that /v1/models
//     lists and that requests send as "model" to generate with base + adapter (unmerged, as
//     --adapter runs; over --model's weights, never stacked on --adapter). At most --max-loras
//     (default 4) are loaded at once; unloading an unknown name is 404. This is how ppo and grpo
//     with backend openai make the server follow the policy (rlhf.ServedPolicy).
//
// # Sampling semantics
//
// Choice j of prompt p (in a request's prompt list) is drawn with seed + p·n + j, the scheme
// rlhf.Sampling documents, so a request with n = K and seed S returns exactly what the local backend
// samples, and K requests with n = 1 and seeds S..S+K−1 return the same K texts. Without a seed
// each request draws a random one. Temperature 0 is greedy. Unknown request fields are ignored, as
// OpenAI-compatible servers do; fields alignkit cannot honour (logprobs, echo, best_of, suffix, tools)
// are a 400 rather than silently ignored.
//
// Streaming (stream: true) answers with Server-Sent Events: `data: {chunk}` lines, one chunk per
// generated token and choice as the engine samples it (chat chunks start with the assistant role), a
// chunk with each choice's finish_reason, then `data: [DONE]`. Each chunk is what the token adds to
// the decoded text so far, held back while it ends inside a multi-byte character or with what may
// be the start of a stop string, so the concatenated text is exactly the non-streamed text. A choice
// that hits a stop string finishes at once, and decoding ends when every choice has. An error after
// the stream has started comes as a `data: {"error": ...}` event without [DONE].
//
// # Safety
//
// The default address is loopback (127.0.0.1:8080); another interface is used only when --addr names
// it, and then only with an API key (Config.APIKey: --api-key or ALIGNKIT_API_KEY) or an explicit
// InsecureNoAuth (--insecure-no-auth). With a key, every endpoint but /health wants
// "Authorization: Bearer KEY" (compared in constant time) and answers 401 otherwise. A request body
// must arrive within BodyTimeout (408, connection closed), idle keep-alive connections close after
// IdleTimeout, and at most MaxConnections are served at once. Request bodies are limited (1 MiB by default: 413 beyond), bad requests get a 400 with OpenAI's
// error shape {"error": {"message", "type", "param", "code"}}, generations run at most
// MaxConcurrent at a time, and cancelling the context shuts the server down gracefully: it stops
// accepting connections and lets requests in flight finish (for up to ShutdownGrace).
package serve
