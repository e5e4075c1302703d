package data

// CompletionBatch lays out sampled completions for RL training (GRPO, PPO): row r is seqs[r], its
// prompt then its completion, padded to T positions (T 0: the longest sequence), with
// Targets[i] = the next token and Weights 1 exactly on the lens[r] positions from starts[r] (those
// whose target is a completion token). Padding positions have segment 0 and target −1; LastIndex
// is each row's last real position.
func CompletionBatch(seqs [][]int32, starts, lens []int, T int) *Batch {
	if T == 0 {
		for _, s := range seqs {
			T = max(T, len(s))
		}
	}
	B := len(seqs)
	b := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T), Weights: make([]float32, B*T),
		Positions: make([]int32, B*T), Segments: make([]int32, B*T), LastIndex: make([]int32, B)}
	for r, s := range seqs {
		for p := range T {
			i := r*T + p
			b.Targets[i] = -1
			b.Positions[i] = int32(p)
			if p >= len(s) {
				continue
			}
			b.Tokens[i], b.Segments[i] = s[p], 1
			if p+1 < len(s) {
				b.Targets[i] = s[p+1]
			}
		}
		for p := starts[r]; p < starts[r]+lens[r]; p++ {
			b.Weights[r*T+p] = 1
		}
		b.LastIndex[r] = int32(len(s) - 1)
	}
	return b
}
