// Package lm is the one place where a model meets data and the training loop. Every trainer (sft,
// reward, dpo, rejection-sampling and GAtt fine-tuning) uses it:
//
//   - Model keeps one Gorgonia graph per batch shape (rows × length bucket), built on first use and
//     re-run afterwards, never rebuilt per step;
//   - Model.Run is the one forward/backward function: a data.Batch in, the per-row log-probs (or
//     rewards) out, and the gradient of the trainer's loss added into the loop's buffers;
//   - Model.LogProbs is the one log-prob function (forward only) used for references and eval;
//   - Encoder adapts a tokenizer to what data's chat tokenizer needs.
package lm
