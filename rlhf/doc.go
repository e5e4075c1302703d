// Package rlhf holds the model-free parts of Llama 2's rejection-sampling fine-tuning (§3.2.3):
// best-of-K selection, the cross-round pool of top samples, and the reward-versus-K statistics of
// Llama 2 Figure 7.
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
