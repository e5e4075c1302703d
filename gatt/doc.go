// Package gatt builds and checks the system-style instructions of Ghost Attention (Llama 2 §3.3 and
// Appendix A.3.5), independent of any model.
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
package gatt
