// Package reward is the math core of reward-model training (Llama 2 §3.2.2): the Bradley–Terry
// ranking loss with Llama 2's per-pair margin, TRL's reward-centering term, the margin presets of
// Llama 2 Table 27, a rating-to-margin table for datasets that carry a preference rating, and the
// per-rating accuracy of Llama 2 Table 28.
//
// The package knows nothing of models. A trainer runs the reward model to get the scalar reward of
// every chosen and rejected sequence, (N,) each, calls Loss, and feeds DChosen and DRejected back into
// the graph as the upstream gradient of those (N,) nodes.
//
// Per pair, with d = r_c − r_r and margin m (0 when no margin is given):
//
//	loss_i = −log σ(d − m) + λ·(r_c + r_r)²
//
// and the batch loss is the mean over pairs, which is exactly TRL's RewardTrainer:
// −logsigmoid(r_c − r_r − m).mean() + center_rewards_coefficient·mean((r_c + r_r)²). The centering term
// (Eisenstein et al. 2023) pulls the rewards towards zero mean without touching their differences.
package reward
