// Package recipe is the contract every trainer follows, and the preparation they share.
//
// A trainer package (sft, reward, dpo, and the RL trainers after them) exposes two functions with
// the same shape, as torchtune's recipes share one protocol:
//
//	func Prepare(ctx context.Context, cfg Config, opts ...train.Option) (*recipe.Job, error)
//	func Run(ctx context.Context, cfg Config, opts ...train.Option) (train.Result, error)
//
// Prepare loads the model and the data, checks everything that can be checked before training and
// writes nothing; its Job holds the train.Task, the loop's arguments and the report lines printed
// before training. Run is Prepare followed by Run here, so every trainer prints, trains and
// returns the same way. Each trainer asserts the shape at compile time:
//
//	var _ recipe.Prepare[Config] = Prepare
//
// Open is the first step of every Prepare: the model named by model_name_or_path with its
// tokenizer, the padding id, and the data tokenizer for the chat template in effect. A LoRA run
// (use_peft, or adapter_name_or_path) opens its base frozen (checkpoint.OpenFrozen): a GGUF is
// fine-tuned as the very blocks llama.cpp runs, with no conversion. A task that
// wants metrics on the progress bar implements train.BarMetricsTask; there is no other way.
package recipe
