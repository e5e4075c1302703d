// Package data is alignkit's data layer: it reads datasets in TRL's schemas,
// renders conversations with chat templates, tokenizes them with loss masks,
// and cuts them into padded or packed batches shared by every trainer.
//
// Sources (Parquet or JSON Lines) become generic Rows (ReadRows), then
// validated Records (SFT: text, conversation, prompt/completion, alpaca) or
// Pairs (preference, with implicit prompts made explicit) via Load/Convert.
// A Tokenizer turns them into Examples (token ids and a target mask) and
// PairExamples using an Encoder (the model's tokenizer, adapted by the
// caller) and a chat.Template. A Batcher and a PairBatcher make Batches:
// fixed-shape token, target, weight, position and segment arrays.
package data
