// Package train is the one training loop shared by every alignkit trainer (SFT, reward model, DPO,
// rejection-sampling SFT, GAtt SFT).
//
// A trainer supplies a Task: its trainable tensors (Params), a forward+backward pass over a micro-batch of
// example indices (Step), a forward-only pass for evaluation (Eval) and a way to write the HF model
// directory (SaveModel). The loop owns everything else: the per-epoch shuffle, micro-batching, gradient
// accumulation, global-norm clipping, AdamW, the learning-rate schedule, logging, evaluation, checkpoints,
// resume, interruption and the final model.
//
// # Semantics (HF Trainer / TRL, with the differences listed)
//
//   - Examples are shuffled per epoch with a permutation derived only from (seed, epoch) and cut into
//     micro-batches of per_device_train_batch_size (the last one of an epoch may be smaller, like a
//     DataLoader with drop_last=False). gradient_accumulation_steps × ranks micro-batches make one
//     optimizer step (the global batch of transformers: per-device batch × accumulation × processes);
//     the last step of an epoch may have fewer.
//   - The loss of a step is the mean over all its loss units, not the mean of its micro-batches' means:
//     a task that implements LossUnitsTask (SFT: trained tokens; DPO and reward: pairs) has its
//     micro-batches' units summed over the step (and over the ranks) before they run, and each
//     micro-batch's gradient is scaled by units/total, as transformers ≥ 4.46 does with
//     num_items_in_batch and average_tokens_across_devices. Batch 1 × accumulation 3 therefore trains
//     like batch 3 × accumulation 1, whatever the rows' lengths, and the logged loss is the step's token
//     (or pair) mean. A task without loss units has each micro-batch scaled by 1/k, k the step's
//     micro-batches.
//   - Optimizer step s (1-based) uses Schedule(args, total)(s-1), which is what transformers' LambdaLR
//     gives, and the learning_rate logged for step s is that value (recent Trainer versions log the rate
//     "before update" too). "constant" honours warmup (it is constant_with_warmup); transformers' "constant"
//     silently ignores warmup, which is never what a config that sets warmup means.
//   - The logged loss is the mean of the step losses since the last log (not rounded to 4 digits as HF
//     does, so that logs can be compared exactly); grad_norm is the last step's norm before clipping.
//   - A log line is written every logging_steps and at the final step; evaluation runs every eval_steps
//     and at the end of training when the task has evaluation data.
//
// # Files in output_dir
//
//   - metrics.jsonl: one JSON object per logged step (train and eval_* keys of that step together).
//   - trainer_state.json: HF's TrainerState shape (log_history with separate train and eval entries).
//   - checkpoint-N/: the task's HF model files, params.bin (exact float32 weights), optimizer.bin (AdamW
//     m and v), training_state.json (step, epoch, data position, RNG, logging window) and
//     trainer_state.json, built in .checkpoint-N.tmp/ and renamed into place, so a directory named
//     checkpoint-N is always complete.
//   - the final model files, loss.png and training_complete.json, written only when training finished.
//
// # Data parallelism (dist)
//
// Run is data-parallel over dist.World (or WithComm's group): under `mpirun -np N`, each step's
// micro-batches are dealt round-robin over the ranks (micro-batch j of the step to rank j mod N), every
// rank holding the whole data set and computing the same (seed, epoch) order. A step of several
// micro-batches (over accumulation or ranks) sums their gradients in float64, each micro-batch's
// float32 gradient added in as it is computed, so that the sum does not depend on its order and N
// ranks train bit-for-bit as one process with the same global batch (8 more bytes per trainable
// parameter; see accumulateWide). After the step's last backward pass the float64 gradients of the
// trainable params (only those: the loop holds no others) are summed with MPI_Allreduce in buckets of
// dist.DefaultBucketFloats and rounded to float32; the graph's backward pass is one call that
// finishes every gradient together, so the reduction follows it rather than overlapping it (see
// reduceWide for what could overlap and why it is not worth it). Every rank
// then clips and applies the same AdamW step. Per-micro-batch metrics are gathered and merged in
// micro-batch order, so the logged values do not depend on which rank ran what; evaluation batches are
// dealt over the ranks the same way. Rank 0 alone writes output_dir (metrics, progress, checkpoints,
// the final model); a resume is resolved by rank 0 and every rank restores that checkpoint, so
// output_dir must be on a file system every rank sees. Ctrl-C is agreed on at step boundaries.
//
// Resuming from checkpoint-N continues so that every later metrics line is bit-identical to an
// uninterrupted run (tokens_per_second excepted): the weights come from params.bin rather than from the
// task's model files (which a task may store in a lossy way), the shuffle is re-derived from (seed, epoch),
// and the partial logging window is restored.
package train
