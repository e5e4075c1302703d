// Package gatt implements Ghost Attention (Llama 2 §3.3 and Appendix A.3.5): it builds and checks
// the system-style instructions, synthesises the multi-turn training dialogues, and measures how many
// turns a model keeps an instruction for.
//
// # Constraints
//
// Llama 2 created synthetic instructions in three categories, hobbies ("You enjoy e.g. Tennis"),
// languages ("Speak in e.g. French") and public figures ("Act as e.g. Napoleon"), and combined up to
// three of them at random; half of the time the instruction was rewritten tersely ("Figure: Napoleon.
// Language: French.") so the model would not overfit one phrasing. Sample reproduces that: it draws
// 1–3 constraints, each from a different category, renders the verbose wording
// ("Always act as Napoleon from now. Always speak in French. You enjoy Tennis.") and the terse one
// ("Figure: Napoleon. Language: French. Hobby: Tennis."), and picks the terse one with probability
// 1/2. Everything is drawn from the caller's *rand.Rand, so a seed fixes the instructions.
// DefaultLists holds alignkit's own lists (Llama 2 did not publish its lists; it asked Llama 2-Chat to
// generate hobbies and figures); a config can replace them or extend them (Lists.Extend).
//
// # Checkers
//
// A checker decides whether one answer respects one constraint. They are chosen by name:
//
//	keyword   hobbies and figures: the value (or one of its aliases) appears in the answer,
//	          case-insensitively, on word boundaries ("Tennis" matches "tennis!" but not "tennisball")
//	language  languages: stop-word language identification over English, French, German, Italian and
//	          Spanish (about fifty function words each); passes when the best language is the wanted one
//	judge     any kind: asks a caller-supplied Judge (an LLM judge, later) a yes/no question
//	reward    any kind: scores the answer with a caller-supplied Scorer (a reward model, later) and
//	          passes at or above a threshold
//
// Stop-word identification needs a few sentences to be reliable; on a one-word answer it may return
// no language, which counts as a failure.
//
// # Questions
//
// To evaluate, Llama 2 asked questions that refer back to the attributes ("What is your favorite
// hobby?", "What is your name?") several turns after the instruction; a language constraint applies
// to any question. Questions builds such a sequence and says, for each question, which constraints its
// answer can be checked against.
//
// # Synthesis
//
// Synthesize (`alignkit gatt synth`) follows §3.3. For each source conversation with at least two
// user turns (fewer are skipped and counted), InstructionFor draws an instruction from a generator
// seeded by (seed, source row), so a row's instruction never depends on which rows ran before. The
// source's assistant replies are discarded; each reply a_t is sampled, turn by turn, from the current
// model (rlhf.Generator: the local engine or an OpenAI-compatible server) with the instruction
// appended to every user message u_1…u_t (SamplingPrompt), optionally the best of K by a reward model.
// The training sample (BuildRows) keeps the instruction only in the first turn: as the system message
// when the chat template renders one (DetectPlacement renders [system, user] and watches for
// raise_exception or a dropped system text), else appended to u_1; u_2…u_n are the source's own.
// trained_turn names the one assistant message that carries loss: the final reply (samples:
// last_turn), or, with samples: every_turn, one sample per turn t cut after a_t. The data layer reads
// that column, so `alignkit sft` trains on gatt.parquet unchanged and every earlier token, earlier
// replies included, is context only. A dialogue stops before the first turn whose prompt plus
// max_new_tokens would not fit max_length (or the model's context); one left with fewer than two
// turns is skipped as too_long.
//
// Each finished dialogue is appended to output_dir/gatt.journal.jsonl as one line, written with one
// write and synced; a run that is killed leaves at most a torn last line, which the next run drops
// before continuing with the rows not yet done. The journal's header holds a fingerprint of every key
// that decides a row's content, so a changed configuration cannot resume another's journal.
// gatt.parquet and gatt_summary.json are written, atomically, only at the end.
//
// # Evaluation
//
// Evaluate (`alignkit gatt eval`) gives every model the same dialogues (EvalQuestions, from the
// seed): the instruction in the first turn (system or u_1 as above), then questions that refer back
// to it, each reply generated with the whole conversation so far. A turn's reply is checked when its
// question has constraints, and adheres when every one passes; the table (Llama 2 Table 30) is, per
// turn and model, the percent of checked replies that adhered. When a conversation outgrows the
// context, the oldest exchanges after the first are dropped from the prompt (the first, which holds
// the instruction, always stays) and the turn's dropped count says so.
package gatt
