// Package winrate compares two models' answers on a prompt set, as Llama 2 compares Llama 2-Chat
// with other models (Touvron et al. 2023, §3.4.2 and Fig. 1/3): for each prompt a judge sees the
// two answers, in an order drawn at random per judgement (seeded) so that a judge's preference for
// a position cannot favour either model, and says which is better or that they tie. The judge is a
// reward model (any rlhf.Scorer: one reward model, or Llama 2's helpfulness and safety models
// combined) or an LLM judge behind an OpenAI-compatible endpoint. Verdicts are recorded in the
// models' order (un-swapped); a judge reply that is not exactly A, B or tie is recorded as invalid
// and counted apart, never guessed.
//
// The summary gives win, tie and loss rates over the valid judgements, the 95% Wilson score
// interval of the win rate (see Wilson), and the score (wins + ties/2) / valid with its interval
// (see ScoreInterval: Wilson's with the score's own variance, since a tie varies less than a coin
// flip).
package winrate
