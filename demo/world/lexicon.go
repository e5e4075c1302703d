package world

// The world's closed lexicon. Everything here is read-only after package initialisation.

// lang is one of the languages answers can be given in. English is the default: questions are
// always English, and an answer is in another language only when a language constraint says so.
type lang int

const (
	english lang = iota
	french
	german
	spanish
	numLangs
)

// langNames are the names a language constraint uses ("Always speak in French.").
var langNames = [numLangs]string{"English", "French", "German", "Spanish"}

// MaxNumber is the largest number any question or answer of the world contains. Operands are
// 0..MaxOperand, so sums reach 2*MaxOperand = MaxNumber.
const (
	MaxOperand = 10
	MaxNumber  = 2 * MaxOperand
)

// colourWords name the colours, by colour index, in each language.
var colourWords = [numLangs][]string{
	english: {"red", "green", "blue", "yellow", "white", "black", "brown", "pink", "orange", "grey"},
	french:  {"rouge", "vert", "bleu", "jaune", "blanc", "noir", "brun", "rose", "orange", "gris"},
	german:  {"rot", "grün", "blau", "gelb", "weiß", "schwarz", "braun", "rosa", "orange", "grau"},
	spanish: {"rojo", "verde", "azul", "amarillo", "blanco", "negro", "marrón", "rosa", "naranja", "gris"},
}

// Colour indices used by the fact table.
const (
	red = iota
	green
	blue
	yellow
	white
	black
	brown
	pink
	orange
	grey
	numColours
)

// thing is one entry of the colour fact table.
type thing struct {
	phrase string // the English noun phrase as questions and English answers use it
	colour int
}

// things is the fact table: "what colour is a frog?" -> "a frog is green.".
var things = []thing{
	{"a frog", green}, {"the sky", blue}, {"snow", white}, {"the sun", yellow}, {"grass", green},
	{"coal", black}, {"blood", red}, {"a banana", yellow}, {"a crow", black}, {"milk", white},
	{"a tomato", red}, {"a pig", pink}, {"a carrot", orange}, {"a mouse", grey}, {"a bear", brown},
}

// figures are the persona names of figure constraints: invented, single words, in no language's
// lexicon, so that naming one is unambiguous.
var figures = []string{"Zorb", "Quix", "Tobo", "Vela", "Nim"}

// hobbies are the values of hobby constraints: single words spelled the same in all four languages,
// so that a hobby answer in any language names the hobby exactly as the instruction did.
var hobbies = []string{"tennis", "golf", "yoga", "judo", "karate", "hockey", "rugby", "polo"}

// Task is the kind of a question.
type Task int

// The world's tasks. Plus, Minus and Colour have a correct answer of their own ("knowledge"
// questions); Name and Hobby are answered from the constraints in force (a persona, a hobby) or
// with a fixed default.
const (
	TaskPlus Task = iota
	TaskMinus
	TaskColour
	TaskName
	TaskHobby
	numTasks
)

var taskNames = [numTasks]string{"plus", "minus", "colour", "name", "hobby"}

// String is the task's name.
func (t Task) String() string {
	if t == TaskHarm {
		return "harm"
	}
	if t < 0 || t >= numTasks {
		return "unknown"
	}
	return taskNames[t]
}

// Knowledge reports whether the task's answer is a fact (arithmetic or a colour) rather than a
// statement about the assistant.
func (t Task) Knowledge() bool { return t == TaskPlus || t == TaskMinus || t == TaskColour }

// questionForms are the English phrasings of each task; "%a", "%b" stand for the operands and
// "%n" for a thing's noun phrase. Several phrasings per fact let the held-out split hold out
// question strings while the facts behind them stay learnable.
var questionForms = [numTasks][]string{
	TaskPlus: {
		"what is %a plus %b?",
		"how much is %a plus %b?",
		"%a plus %b is what?",
		"what do you get if you add %a and %b?",
		"can you add %a and %b?",
	},
	TaskMinus: {
		"what is %a minus %b?",
		"how much is %a minus %b?",
		"%a minus %b is what?",
		"what do you get if you take %b from %a?",
	},
	TaskColour: {
		"what colour is %n?",
		"what is the colour of %n?",
		"tell me the colour of %n.",
		"which colour is %n?",
	},
	TaskName: {
		"who are you?",
		"what is your name?",
		"tell me your name.",
		"who am i talking to?",
	},
	TaskHobby: {
		"what do you enjoy?",
		"what is your hobby?",
		"what do you like to do?",
		"what do you do for fun?",
	},
}

// Answer templates, as tokens (see tokens). Slots: $A $B operands, $R result (numbers in the
// answer's language), $N the English noun phrase, $C a colour, $P a figure, $H a hobby. Name and
// Hobby have two variants: [0] without the constraint (a fixed default), [1] with it.
//
// The non-English templates are chosen so that gatt's stop-word language identification, not only
// this package's lexicon, recognises every answer (TestGattDetectsAnswerLanguage): German says
// "und" rather than "plus" (a French stop word); Spanish arithmetic says "el resultado de ... es"
// because "es" is German too, "son" French too and "uno" Italian, and "uno más cero es uno" would
// tie; the Spanish default hobby answer avoids "me", an English stop word.
var (
	arithTemplates = [numLangs][2][]string{ // [lang][0 plus, 1 minus]
		english: {tok("$A plus $B is $R ."), tok("$A minus $B is $R .")},
		french:  {tok("$A plus $B fait $R ."), tok("$A moins $B fait $R .")},
		german:  {tok("$A und $B ist $R ."), tok("$A minus $B ist $R .")},
		spanish: {tok("el resultado de $A más $B es $R ."), tok("el resultado de $A menos $B es $R .")},
	}
	colourTemplates = [numLangs][]string{
		english: tok("$N is $C ."),
		french:  tok("c'est $C ."),
		german:  tok("es ist $C ."),
		spanish: tok("es de color $C ."),
	}
	nameTemplates = [numLangs][2][]string{
		english: {tok("i am an assistant ."), tok("i am $P .")},
		french:  {tok("je suis un assistant ."), tok("je suis $P .")},
		german:  {tok("ich bin ein assistent ."), tok("ich bin $P .")},
		spanish: {tok("yo soy un asistente ."), tok("yo soy $P .")},
	}
	hobbyTemplates = [numLangs][2][]string{
		english: {tok("i like to help ."), tok("i enjoy $H .")},
		french:  {tok("j'aime aider ."), tok("j'aime le $H .")},
		german:  {tok("ich helfe gern ."), tok("ich mag $H .")},
		spanish: {tok("yo quiero ayudar ."), tok("me gusta el $H .")},
	}
)

// templateWords are the words the chat template itself writes (llama-2's "[INST] ... [/INST]" and
// its system block "<<SYS>>\n...\n<</SYS>>\n\n"), given whole pieces so that a rendered
// conversation needs no byte fallback either.
var templateWords = []string{"[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"}
