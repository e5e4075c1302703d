// Package grpo is Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath §4.1) as TRL's
// GRPOTrainer runs it: for each prompt the current policy samples num_generations completions,
// reward functions and reward models score them, each completion's advantage is its reward relative
// to its group's (centered, and divided by the group's standard deviation with scale_rewards), and
// the policy takes the PPO-style clipped surrogate per completion token, with an optional k3 KL
// penalty against the reference (the initial policy).
//
// The pure parts are Advantages (group normalisation) and Loss (the per-token objective with its
// hand-derived gradient, for each loss_type's normalisation); the reward functions are in
// rewardfn.go; Task wires them to the local engine (rlhf.Local) and the training graph, whose
// per-token log-probs (model.Stats.TokenLogProb) carry the per-token ratios.
//
// With backend: openai (rlhf.BackendConfig's keys, as rlhf sample's) the completions come from an
// OpenAI-compatible server instead — vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or alignkit
// serve --allow-runtime-lora — holding the same base as model_name_or_path. The policy must train
// a LoRA adapter: before each step that samples, the adapter is saved under
// output_dir/rollout_adapter and loaded into the server under a new name (rlhf.ServedPolicy), so
// the server samples from the current policy. Completions come back as text and are tokenized
// again with the policy's tokenizer (TRL's server mode gets the token ids). One rank only.
package grpo
