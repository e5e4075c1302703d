// Package reward is alignkit's reward-model stage (Llama 2 §3.2.2): the math, the trainer and the
// scorer.
//
// The math (loss.go) knows nothing of models: the Bradley–Terry ranking loss with Llama 2's per-pair
// margin, TRL's reward-centering term, the margin presets of Llama 2 Table 27, a rating-to-margin
// table for datasets that carry a preference rating, and the per-rating accuracy of Llama 2 Table 28.
// Per pair, with d = r_c − r_r and margin m (0 when no margin is given):
//
//	loss_i = −log σ(d − m) + λ·(r_c + r_r)²
//
// and the batch loss is the mean over pairs, which is exactly TRL's RewardTrainer:
// −logsigmoid(r_c − r_r − m).mean() + center_rewards_coefficient·mean((r_c + r_r)²). The centering term
// (Eisenstein et al. 2023) pulls the rewards towards zero mean without touching their differences.
//
// The model (model.go) is the language model's backbone with a scalar head, score.weight (1, D), read
// at each row's last real token (the EOS closing the answer), saved in transformers'
// XForSequenceClassification layout. FromCausalLM turns a causal LM into one.
//
// The trainer (config.go, data.go, task.go, run.go) is `alignkit reward train`: LoadPairs reads
// preference files (explicit or implicit prompt, hh-rlhf transcripts, optional margin and rating
// columns; a pair whose chosen equals its rejected is skipped with a warning and counted), Task runs
// each micro-batch of N pairs as one forward/backward over 2N rows through lm.Model.Run with the score
// head, and Run drives it with the shared train loop. It logs loss, accuracy, margin, centering and
// reward/min|mean|max, and on evaluation accuracy/<bucket> per rating (or margin) bucket.
//
// The scorer (score.go, scorefile.go, parquet.go) is `alignkit reward score` and the Go API that
// rejection sampling, GAtt and the server use: Scorer tokenizes (prompt, response) exactly as the
// trainer tokenizes a chosen row and runs the inference engine's ScoreBatch, one packed forward pass
// per batch; ScoreFile adds a reward column to a Parquet or JSON Lines file, written atomically.
package reward
