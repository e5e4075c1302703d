// Package dpo is Direct Preference Optimization and its variants: the loss (Loss) and the trainer
// (Config, Task, Run) that `alignkit dpo` runs on the shared training loop.
//
// # The loss
//
// Given per-sequence log-probabilities of the chosen and rejected completions under the policy and
// the frozen reference model, Loss returns the batch loss, its analytic gradient with respect to the
// policy log-probs, the implicit rewards β·(log πθ − log πref) and TRL-named metrics. It knows
// nothing of models or graphs; the reference log-probs are constants: no gradient flows into them.
//
// # The trainer
//
// Task is a train.Task. Each micro-batch of N pair indices is collated by data.PairBatcher into one
// batch of 2N rows (chosen c_1..c_N, then rejected r_1..r_N), run through the policy once
// (lm.Model.Run), scored by Loss, and Loss's gradient with respect to the 2N summed answer log-probs
// is fed back as the upstream gradient of the graph. For a Mixtral policy the graph adds
// router_aux_loss_coef times the router load-balancing loss, reported as aux_loss.
//
// The reference is ref_model_name_or_path, or a copy of the policy's initial weights taken before
// training (also after a resume, since the copy is of model_name_or_path). It is scored either per
// batch, with a forward-only graph on the reference weights, or, with precompute_ref_log_probs, once
// for every pair before training through lm.Model.LogProbs; the log-probs are then cached on disk
// (see refcache.go for the key) and the reference model is dropped so the GC can free it. The cache
// lives in ref_cache_dir, by default the user's cache directory (~/.cache/alignkit/ref_logps), so
// that reruns into another output_dir find it.
//
// Data: explicit prompts (prompt + chosen + rejected, strings or message lists, the prompt possibly
// a whole multi-turn conversation) or implicit ones (the common prefix of chosen and rejected).
// Prompts longer than max_prompt_length are cut from the left; answers that do not fit max_length
// are cut from the right; a pair whose prompt alone fills max_length is dropped, and all of it is
// counted and logged. Identical answers, and message-list answers that do not end with an assistant
// message, are errors naming the row.
//
// Metrics (TRL's names, eval_ prefixed on the evaluation set): rewards/chosen, rewards/rejected,
// rewards/accuracies, rewards/margins, logps/chosen, logps/rejected, logits/chosen,
// logits/rejected (the mean logit over the answer tokens and the vocabulary), nll_loss when
// rpo_alpha > 0, and aux_loss for MoE policies.
//
// With h = [log πθ(y_w|x) − log πref(y_w|x)] − [log πθ(y_l|x) − log πref(y_l|x)] per pair, the loss
// types are (ε = LabelSmoothing, β = Beta):
//
//	sigmoid  −(1−ε)·log σ(βh) − ε·log σ(−βh)              (Rafailov et al. 2023; ε > 0 is cDPO)
//	robust   [−(1−ε)·log σ(βh) + ε·log σ(−βh)] / (1−2ε)   (Chowdhury et al. 2024, as TRL; needs ε < 0.5)
//	ipo      (h − 1/(2β))²                                 (Azar et al. 2023, eq. 17)
//	hinge    max(0, 1 − βh)                                (SLiC, Zhao et al. 2023)
//
// For ipo the four log-probs are first divided by their completion lengths, because TRL averages
// log-probs per token for IPO (its concatenated forward divides by the completion size when
// loss_type is "ipo"); the implicit rewards and logps/* metrics are then per-token as well, again as
// TRL reports them. Every other type uses the summed log-probs unchanged.
//
// RPOAlpha α > 0 adds α·(−log πθ(y_w|x)/|y_w|) per pair, the length-normalised NLL of the chosen
// answer (Pang et al. 2024, "Iterative Reasoning Preference Optimization"). TRL instead averages the
// chosen-token cross-entropy over all chosen tokens of the batch; the two agree when all chosen
// completions have the same length, and differ otherwise (ours weighs every pair equally).
//
// ReferenceFree treats πref as uniform over sequences: the reference log-probs are taken as 0 (and
// the Ref* fields of the batch are ignored), so the rewards become β·log πθ.
//
// The loss is the mean over the N pairs, so every gradient entry carries a 1/N factor.
package dpo
