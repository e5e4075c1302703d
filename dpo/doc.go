// Package dpo is the math core of Direct Preference Optimization and its variants: given per-sequence
// log-probabilities of the chosen and rejected completions under the policy and the frozen reference
// model, Loss returns the batch loss, its analytic gradient with respect to the policy log-probs, the
// implicit rewards β·(log πθ − log πref) and TRL-named metrics.
//
// The package knows nothing of models or graphs. A trainer runs the policy graph to get summed
// completion log-probs (N,) for chosen and rejected, calls Loss, and feeds DPolicyChosen and
// DPolicyRejected back into the graph as the upstream gradient of those (N,) nodes. The reference
// log-probs are constants: no gradient flows into them.
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
