// Package demo is `alignkit demo`: the whole Llama 2-Chat recipe on the synthetic world of package
// demo/world, at a size two CPU cores finish in minutes (4 min 32 s on 2026-12-06, README's
// Results), with every effect measured.
//
// Each stage runs the same package entry point its subcommand runs, on a config file of
// configs/demo loaded through conf.Load as the command loads it; the demo only adds --set overrides
// for the run's paths, its seed and, with --quick, shorter schedules (QuickSets). Every stage prints
// the equivalent command line, so any of them can be rerun by hand.
//
//	world        datasets and tokenizer written by demo/world (data/, tokenizer/)
//	init         a tiny Llama with the world's tokenizer (init/)
//	sft          on the noisy demonstrations (sft/); answer correctness measured
//	reward       reward model from the SFT model on graded pairs with Llama 2 margins (reward/)
//	rlhf-sample  K = 16 samples per prompt scored by the reward model: Llama 2 Fig. 7 (rlhf-sample/)
//	rs-sft       one round of rejection-sampling fine-tuning on the best samples (rs-sft/)
//	dpo          DPO of the SFT model on the preference pairs (dpo/)
//	gatt-synth   GAtt dialogues sampled by the DPO model (gatt-synth/)
//	gatt-sft     fine-tuning on them (gatt-sft/)
//	gatt-eval    adherence per turn before and after GAtt with the world's checker (gatt-eval/)
//	export       GGUF of the final model and a chat from it, in alignkit and, when installed, llama.cpp
//
// Rejection sampling and DPO both start from the SFT model, so that each is measured against SFT
// alone; GAtt then fine-tunes the DPO model, as Llama 2 applies it to its latest RLHF model.
//
// Answer correctness is measured on held-out prompts after SFT, rejection sampling, DPO and GAtt,
// greedily and by sampling, split as the world suggests (facts SFT mostly got right, misconceived
// facts, questions about the assistant). The results go into one table, printed at the end and
// written to RESULTS.md with the plots; results.json holds every number and timings.json the
// wall-clock and CPU seconds per stage. The table holds no timings: for a seed and a BLAS it is the
// same on every run.
package demo
