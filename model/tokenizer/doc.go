// Package tokenizer loads the tokenizer of a model directory and turns text into token ids and back.
//
// Two kinds are supported, named as GGUF's tokenizer.ggml.model names them:
//
//   - "llama": a SentencePiece BPE tokenizer.model (Llama 2, Mistral, stories260K). The ModelProto is
//     parsed here and its pieces, scores and types feed github.com/ollama/ollama/tokenizer, with the
//     work SentencePiece does around its BPE done here: the normalizer's whitespace handling, the dummy
//     prefix, control pieces that typed text can never produce, and UNK for unknown characters when
//     the model has no byte fallback.
//   - "gpt2": a Hugging Face tokenizer.json with a byte-level BPE model (GPT-2, Llama 3, Qwen2
//     style): its normalizer (none or a Unicode normal form), pre-tokenizer (Split regexes,
//     ByteLevel, Digits), merges, ignore_merges, added tokens and post-processor template. The
//     merging is done here, as Hugging Face's tokenizers does it, because ollama's
//     BytePairEncoding always behaves as ignore_merges=true: merges by rank from a pair map and a
//     heap, O(n log n) in a pre-token's length. GPT-2's, Llama 3's and Qwen2's split regexes use a
//     lookahead Go's regexp lacks, so they run as hand-written scanners (pretokenize.go, as
//     llama.cpp's unicode.cpp does) with Unicode categories from Go's unicode package; other Split
//     patterns must be RE2.
//
// Not supported, each with an error naming the file: Unigram or WordPiece models, SentencePiece
// models with a precompiled normalization charsmap, and SentencePiece-style tokenizer.json files
// (Metaspace, byte_fallback) without their tokenizer.model.
//
// A chat template (tokenizer_config.json's chat_template or chat_template.jinja) is compiled and
// test-rendered when the tokenizer loads, so that a broken one fails there with its file named
// (ChatTemplateFile) rather than in the middle of training or serving.
//
// Special tokens, BOS/EOS/UNK/PAD and add_bos_token/add_eos_token follow tokenizer_config.json and
// special_tokens_map.json when the directory has them, else the model file's own ids.
//
// Plain text (Encode) never turns into a special token: a user typing "</s>" gets the pieces of
// "</s>", not EOS. Only spans marked Special in EncodeSpans, which chat templates produce, are
// searched for special-token strings. Text between special tokens is encoded the way Hugging Face's
// fast Llama tokenizer and llama.cpp do ("legacy" SentencePiece behaviour): every run of ordinary
// text gets its own dummy prefix.
//
// A Tokenizer is immutable after it is built and safe for concurrent use.
//
// WriteSentencePieceModel writes a standard tokenizer.model (ModelProto, BPE, identity normalizer)
// that Python sentencepiece and llama.cpp's converter read, so a model trained here can ship its own
// tokenizer.
package tokenizer
