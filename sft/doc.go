// Package sft is supervised fine-tuning, stage 1 of the Llama 2-Chat recipe: the model learns to
// answer by maximising the likelihood of the answer tokens of prompt/answer examples.
//
// It is a thin trainer on the shared pieces: data (sources in TRL's formats, chat templates, loss
// masks, padded or packed batches), lm (the one forward/backward pass) and train (the one loop,
// AdamW, checkpoints and resume). What sft adds:
//
//   - Config: train.Args and data.Args at the top level of the YAML, plus model_name_or_path;
//   - Loss: TRL's SFT loss, the mean negative log-likelihood over the trained tokens of a
//     micro-batch (every trained token weighs the same, whichever example it belongs to), with
//     mean_token_accuracy (the fraction of trained tokens whose argmax is the label, weighted by
//     trained tokens) and, for mixture-of-experts models, aux_loss;
//   - Task: the train.Task that collates the loop's example indices into batches and runs them;
//   - Run: the `alignkit sft` job. It loads and checks everything (model, data, template, masks)
//     before output_dir is touched, prints one data summary line, trains, and leaves the final model
//     in output_dir as an HF directory with its tokenizer files.
//
// Which tokens carry loss is data's business (loss_mask): by default the assistant turns of a
// conversation, each up to and including the EOS that ends it, so the model learns to stop. Padding
// is never EOS (the pad id is the tokenizer's pad token, else its unk token) and carries no loss.
// With packing, each row holds several examples with block-diagonal attention and positions that
// restart at 0, so an example's loss is the same packed or alone.
//
// Differences from TRL's SFTTrainer: with gradient accumulation, each micro-batch's mean is scaled by
// 1/accumulation (the train package's convention) rather than normalising by the token count of the
// whole accumulated step; a NaN or infinite loss stops the run (train.NonFiniteError) instead of
// being logged.
package sft
