// Package ppo is the math of PPO for RLHF (Ouyang et al. 2022; Llama 2 §3.2.3) as TRL's PPOTrainer
// computes it, with TRL's PPOConfig names: the per-token reward (the reward model's score at the
// last token minus kl_coef times a per-token KL estimate, k1 or k3, against the reference), the
// missing_eos_penalty, whiten_rewards, generalized advantage estimation (Schulman et al. 2016) with
// gamma and lam, and the clipped policy and value losses with their hand-derived gradients.
//
// It is the pure part only: no trainer, value head or `alignkit ppo` command uses it yet.
package ppo
