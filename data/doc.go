// Package data is alignkit's data layer: it reads datasets in TRL's schemas,
// renders conversations with chat templates, tokenizes them with loss masks,
// and cuts them into padded or packed batches shared by every trainer.
//
// The pipeline:
//
//   - ReadRows reads a Parquet or JSON Lines file into generic Rows. Parquet
//     rows are rebuilt from raw column levels against the file's schema, so
//     lists whose element field is "item" (older pyarrow) read correctly.
//   - Load / Convert validate rows into Records (SFT: text, conversation,
//     prompt/completion, alpaca) or Pairs (preference; an implicit prompt,
//     including hh-rlhf "\n\nHuman:/\n\nAssistant:" transcripts, becomes the
//     messages both answers share). Columns are renamed with Source.Columns.
//     Errors name the file, row and column on one line.
//   - LoadSplit carves a seeded eval split, or loads an eval file.
//   - A Tokenizer (an Encoder, adapted from the model's tokenizer, plus a
//     chat.Template) makes Examples and PairExamples. Template text is
//     encoded with special tokens, message text never. Masks come from
//     rendering messages[:1], messages[:2], ...: each message's tokens are
//     the difference, which must extend the previous rendering (checked).
//   - A Batcher (SFT) or PairBatcher (DPO, reward model) makes Batches:
//     bucketed shapes, right padding with a pad id that is never EOS,
//     optional best-fit-decreasing packing with per-example positions and
//     segment ids. They collate rows by index: the training loop (train.Run)
//     owns the epoch order and resume position.
//
// Mask convention: Example.Mask[i] says that token IDs[i] is a target that
// carries loss, i.e. the logit at position i-1 is trained to predict IDs[i].
// In a Batch, Targets[t] = Tokens[t+1] and Weights[t] = Mask[t+1] within an
// example.
package data
