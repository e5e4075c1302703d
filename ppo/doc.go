// Package ppo is PPO for RLHF (Ouyang et al. 2022; Llama 2 §3.2.3) as TRL's PPOTrainer computes
// it, with TRL's PPOConfig names: the math (the per-token reward: the reward model's score at the
// last token minus kl_coef times a per-token KL estimate, k1 or k3, against the reference; the
// missing_eos_penalty; whiten_rewards; generalized advantage estimation (Schulman et al. 2016) with
// gamma and lam; the clipped policy and value losses with their hand-derived gradients) and the
// trainer, Task, that `alignkit ppo` runs.
//
// Per update the trainer samples one response of at most response_length tokens per prompt at
// temperature with the current policy (alignkit's engine, rlhf.Local, which ends a response at
// EOS), scores it with the reward model(s) (two combined as Llama 2 does and whitened over the
// batch, reward.Combine), computes the reference log-probs (the initial policy: a frozen copy, or
// with LoRA the base with the adapter off), the rollout policy's log-probs and the value model's
// values at every response token (model.ValueHead: the value model is a reward model whose
// score.weight is read at every position, initialised from value_model_path, by default the
// helpfulness reward model, as TRL and Llama 2 do), the per-token rewards, GAE, and whitens the
// advantages (TRL's masked_whiten).
//
// How the PPO passes map onto the training loop's optimizer steps: TRL takes one optimizer step per
// mini-batch, num_ppo_epochs × num_mini_batches steps on each rollout batch. Here each of those
// steps is one step of the shared loop (so the loop's AdamW, gradient clipping, schedule,
// checkpoints and resume apply unchanged). per_device_train_batch_size is TRL's: the responses one
// micro-batch trains on; the loop hands each micro position per_device_train_batch_size ×
// num_mini_batches prompts, which the first step of an update samples and the following
// UpdateSteps()−1 steps reuse, one mini-batch (per_device_train_batch_size rows of each micro
// position, rows shuffled once per PPO epoch as TRL does) per step. A rollout batch is therefore
// per_device_train_batch_size × gradient_accumulation_steps × num_mini_batches responses (TRL's
// local_batch_size), and num_train_epochs is multiplied by UpdateSteps() for the loop so that every
// prompt is sampled num_train_epochs times in expectation, TRL's total_episodes (the loop's
// epochs then count optimizer steps, not samples). Whitening (advantages, whiten_rewards, two
// reward models) is over each micro position's rollouts, TRL's whole local batch when
// gradient_accumulation_steps is 1.
//
// The policy and the value model are separate models (TRL's PolicyAndValueWrapper); the Task's
// Params are the policy's tensors, then the value model's, prefixed "value_model.", so one AdamW
// trains both and a checkpoint holds both. The value model trains in full even when the policy is
// a LoRA adapter. SaveModel writes the policy (or its adapter) to the directory and the value model
// to its value_model/ subdirectory (TRL saves the policy alone). A checkpoint taken at the end of
// an update resumes bit for bit; one taken inside an update (save_steps not a multiple of
// num_ppo_epochs × num_mini_batches, or an interrupt) resumes by sampling that update's rollouts
// again with the restored policy, which the log says.
//
// Log-probs (the rollout's, the reference's and the trained policy's) are those of the logits
// divided by temperature, as TRL computes them (model.GraphSpec.Temperature). Not as TRL: no
// objective/entropy or policy/entropy_avg metric.
//
// With backend: openai (rlhf.BackendConfig's keys, as rlhf sample's) the responses come from an
// OpenAI-compatible server — vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or alignkit serve
// --allow-runtime-lora — holding the same base as model_name_or_path. The policy must train a
// LoRA adapter: before each update's rollouts the adapter is saved under output_dir/rollout_adapter
// and loaded into the server under a new name (rlhf.ServedPolicy). Responses come back as text and
// are tokenized again with the policy's tokenizer (TRL's server mode gets the token ids). One rank
// only.
package ppo
