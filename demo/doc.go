// Package demo is `alignkit demo`: the whole Llama 2-Chat recipe on the synthetic world of package
// demo/world, at a size two CPU cores finish in minutes, with every effect measured.
//
// Each stage runs the same package entry point its subcommand runs, on a config file of
// configs/demo loaded through conf.Load as the command loads it; the demo only adds --set overrides
// for the run's paths, its seed and, with --quick, shorter schedules (QuickSets). Every stage prints
// the equivalent command line, so any of them can be rerun by hand.
//
//	world        datasets and tokenizer written by demo/world (data/, tokenizer/)
//	init         a tiny Llama with the world's tokenizer (init/)
//	sft          on the noisy demonstrations (sft/); answer correctness measured
//	reward         helpfulness reward model from the SFT model on graded pairs with Llama 2 margins (reward/)
//	reward-safety  safety reward model from the SFT model on refusal / over-refusal pairs (reward-safety/)
//	rlhf-sample    K = 16 samples per prompt scored by both reward models combined as Llama 2 §3.2.3:
//	               Llama 2 Fig. 7 (rlhf-sample/)
//	rs-sft         one round of rejection-sampling fine-tuning on the best samples (rs-sft/)
//	ppo            PPO of the rejection-sampling model against both reward models combined, the value
//	               model from the helpfulness reward model (ppo/); answer correctness measured
//	dpo            DPO of the SFT model on the preference pairs (dpo/)
//	grpo           GRPO of the SFT model, the world's grader as a verifiable reward (grpo/)
//	gatt-synth     GAtt dialogues sampled by the DPO model (gatt-synth/)
//	gatt-sft       fine-tuning on them (gatt-sft/)
//	gatt-eval      adherence per turn before and after GAtt with the world's checker (gatt-eval/)
//	rm-eval        both reward models on every stage's greedy answers: Llama 2 Fig. 14's shape;
//	               and PPO's greedy answers against SFT's, judged by both combined with the order
//	               swapped at random: the final model's win rate (package winrate)
//	export         GGUF of the final model and a chat from it, in alignkit and, when installed, llama.cpp
//
// Rejection sampling, DPO and GRPO all start from the SFT model, so that each is measured against
// SFT alone; PPO starts from the rejection-sampling model, as Llama 2 (RLHF-V5) runs PPO after
// rejection sampling, and is measured against SFT too; GAtt then fine-tunes the DPO model, as Llama 2
// applies it to its latest RLHF model.
// GRPO's reward is exact_match against the prompts' reference column, the answer the world's
// grader calls correct (the refusal on a safety prompt).
//
// Answer correctness is measured on held-out prompts after SFT, rejection sampling, PPO, DPO, GRPO
// and GAtt, greedily and by sampling, split as the world suggests (facts SFT mostly got right,
// misconceived facts, questions about the assistant, safety requests), with the greedy refusals on
// the safety prompts and on the others (over-refusal). Stage rm-eval then scores each stage's
// greedy answers with both reward models: the safety model on the safety prompts, the helpfulness
// model on the others, as mean sigmoid(score) in percent (Llama 2 Fig. 14 plots these two means).
// The results go into one table, printed at the end and written to RESULTS.md with the plots;
// results.json holds every number and timings.json the wall-clock and CPU seconds per stage. The
// table holds no timings: for a seed and a BLAS it is the same on every run.
//
// RunSeeds (`alignkit demo --seeds N`, make demo-seeds) runs the whole demo on N seeds and writes
// SEEDS.md with every measurement's mean and spread and each target's count of seeds that met it.
package demo
