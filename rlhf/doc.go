// Package rlhf is Llama 2's rejection-sampling fine-tuning (§3.2.3): best-of-K selection, the
// cross-round pool of top samples and the reward-versus-K statistics of Figure 7 (model-free, below);
// generation backends behind one interface; the `alignkit rlhf sample` job; and the iterative
// `alignkit rlhf run` loop.
//
// # Generation
//
// A Generator samples K completions per Prompt (text, a conversation, or token ids) with Sampling
// (temperature, top_p, top_k, max_new_tokens, seed). Sample j of prompt i is always drawn with seed
// Seed + i·K + j, so every backend returns the same samples for the same model:
//
//   - Local runs alignkit's engine (infer.Engine.Generate, batched KV-cache decoding). Conversations
//     are rendered with the chat template and add_generation_prompt and tokenized as the data layer
//     tokenizes training rows. A text prompt's completion is decode(prompt+new) minus decode(prompt),
//     which keeps the joining space; an answer after a conversation is the decoded new tokens.
//   - OpenAI talks to any OpenAI-compatible server through openai-go: /v1/completions for text and
//     ids, /v1/chat/completions for conversations; bounded concurrency; a per-attempt timeout;
//     retries with exponential backoff (or the server's Retry-After) after 408, 429, 5xx, connection
//     errors and timeouts; n = K with seed Seed + i·K where the server takes n, else K requests with
//     seeds Seed + i·K + j. Support for n is probed by the first request (llama-server refuses n > 1
//     with "Only one completion choice is allowed", as a 400 or a 500, which is not retried; a server
//     that ignores n answers one choice), or set with n_supported. top_k and extra_body go in the
//     request body. The API key (api_key, ALIGNKIT_API_KEY, OPENAI_API_KEY) is never logged or saved.
//
// A Scorer gives the reward of each completion: RewardModels (LoadRewardModels, or LoadScorer for one
// model) wraps reward.Models, which reads each reward model on exactly the tokens the reward trainer
// used for a chosen answer. With reward_models naming a helpfulness and a safety model, a
// completion's reward is Llama 2's choice between their scores (reward.Select) by its prompt's
// safety flag (safety_column, LoadSafety), and the sample files keep both models' scores.
//
// # rlhf sample
//
// RunSample loads the prompts (LoadPrompts: a preference file's shared prompt, a prompt column, a
// conversation up to its last answer, or an alpaca instruction), samples K completions of each at
// each temperature, scores them all, and writes samples.parquet, best.parquet (each prompt's best
// sample as an SFT row), pairs.parquet (best vs worst, with write_pairs), reward_vs_k.json/.png and,
// last, sample_complete.json (see WriteSamples). With the local backend, prompts that leave no room
// for max_new_tokens in the context are skipped and counted.
//
// # rlhf run
//
// Run iterates rounds r = 1..R: sample with the current policy (round-r/samples), add the samples
// to the Pool and write the SFT set, each prompt's pool_keep best samples of all rounds so far
// (round-r/data/sft.parquet and pool.json), fine-tune the policy on it with sft.Run
// (round-r/checkpoint, the next policy), and score the new policy's samples on the held-out prompts
// (round-r/eval). Round 0 scores the starting policy. The fine-tuning config is the sft: section with
// model_name_or_path, dataset_name and output_dir set by the loop, and chat_template, max_length and
// seed taken from the top level when the section leaves them unset. state.json, rewritten
// atomically after each stage, makes a stopped run resume at the stage where it stopped (a stopped
// fine-tuning from its latest checkpoint); summary.json and summary.md hold the per-round table.
//
// # Selection
//
// Each round samples K completions per prompt from the current policy and scores them with the
// reward model; Best picks the highest-reward one. Llama 2 found that training round r only on round
// r's samples regressed some capabilities (RLHF-V3 forgot rhyming in poems), and fixed it by
// "incorporating top-performing samples from all prior iterations". Pool does that: per prompt it
// keeps the best Keep samples seen in any round so far, and the SFT set of round r is the pool after
// round r's samples were added. With Keep = 1 that is, per prompt, the single best sample across all
// rounds. Ranking is by reward, highest first; equal rewards keep the sample added first (earlier
// round, then lower index within the round), so the pool is deterministic for a given input
// sequence. The same completion text seen twice for a prompt is kept once, at its best rank, so that
// a repeated answer does not fill several slots.
//
// # Reward versus K
//
// Figure 7 plots, for N = 1..K, the maximum and the median reward among N samples. RewardVsK computes
// both as exact expectations over all N-subsets of the K samples drawn without replacement, rather
// than by resampling. Sorting a prompt's rewards ascending, r_(1) ≤ … ≤ r_(K), and treating equal
// rewards as distinct samples, the j-th smallest of a uniformly random N-subset is r_(i) exactly when
// the subset takes sample i, j−1 of the i−1 samples below it and N−j of the K−i samples above it:
//
//	P(j-th smallest = r_(i)) = C(i−1, j−1)·C(K−i, N−j) / C(K, N),   j ≤ i ≤ K−N+j.
//
// The maximum is j = N, giving C(i−1, N−1)/C(K, N). The median of N values is the ((N+1)/2)-th
// smallest for odd N, and the mean of the (N/2)-th and (N/2+1)-th for even N; by linearity its
// expectation is the mean of the two order statistics' expectations. The binomials are evaluated as
// differences of log-factorials, so no intermediate overflows for any K. Both curves are averaged
// over prompts.
package rlhf
