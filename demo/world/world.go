package world

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/alignkit/alignkit/gatt"
)

// ChatTemplate is the built-in chat template (package data/chat) the world's conversations are
// rendered with: Llama 2-Chat's own, which has a system role (it folds the system message into the
// first [INST] block).
const ChatTemplate = "llama-2"

// Message is one conversation turn in TRL's {role, content} shape.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Dialogue is a conversation: an optional system message (an instruction), then user and
// assistant messages alternating, user first.
type Dialogue []Message

// Pair is a preference pair: two answers to the prompt's last user message.
type Pair struct {
	Prompt   []Message // one user message, after a system message when the instruction is placed there
	Chosen   string    // correct and compliant
	Rejected string    // wrong or non-compliant
	Level    int       // how wrong Rejected is, LevelNegligible..LevelSignificant
	Rating   string    // Rating(Level), Llama 2's label of how much better Chosen is
}

// SourceDialogue is a multi-turn dialogue for GAtt synthesis: plain questions with plain, correct
// answers, and an instruction drawn for it with gatt.Sample over Lists. Synthesis appends the
// instruction to every user message (Instructed, gatt.WithInstruction), samples new replies with
// the SFT model, and trains with the instruction kept only in the first turn (system message or
// first user message).
type SourceDialogue struct {
	Instruction gatt.Instruction
	Messages    Dialogue
}

// EvalDialogue is a GAtt evaluation dialogue: the instruction is in the first turn only; later
// questions refer back to it. Turns[0].User carries it appended to the first question
// (instruction_placement first_user); for placement system, use Instruction.Text() as the system
// message and Turns[k].Question as every user message.
type EvalDialogue struct {
	Instruction gatt.Instruction
	Turns       []EvalTurn
}

// EvalTurn is one user turn of an EvalDialogue.
type EvalTurn struct {
	User     string            // the user message (turn 0: question + InstructionSeparator + instruction)
	Question string            // the bare question
	Checks   []gatt.Constraint // the constraints this turn's answer is checked against
	Want     string            // the correct answer that keeps the instruction
}

// Config sizes the world's datasets. Rates are shares in [0, 1].
type Config struct {
	Seed uint64 `json:"seed"`

	NumSFT            int `json:"num_sft"`             // SFT dialogues
	NumPrefs          int `json:"num_prefs"`           // training preference pairs
	NumHeldOutPairs   int `json:"num_heldout_pairs"`   // held-out preference pairs (RM and DPO accuracy)
	NumPrompts        int `json:"num_prompts"`         // training prompts (rejection sampling)
	NumHeldOutPrompts int `json:"num_heldout_prompts"` // held-out prompts (answer correctness)
	NumGAtt           int `json:"num_gatt"`            // GAtt source dialogues
	NumGAttEval       int `json:"num_gatt_eval"`       // GAtt evaluation dialogues

	EvalTurns    int `json:"eval_turns"`     // user turns per GAtt evaluation dialogue (Llama 2 Table 30: 20)
	MaxTurns     int `json:"max_turns"`      // SFT multi-turn dialogues have 2..MaxTurns turns
	MaxGAttTurns int `json:"max_gatt_turns"` // GAtt source dialogues have 2..MaxGAttTurns turns

	WrongRate            float64 `json:"wrong_rate"`             // share of SFT knowledge replies that are wrong (exact, up to rounding)
	InstructedRate       float64 `json:"instructed_rate"`        // share of SFT dialogues that are one instructed turn
	MultiTurnRate        float64 `json:"multi_turn_rate"`        // share of SFT dialogues that are multi-turn
	PromptInstructedRate float64 `json:"prompt_instructed_rate"` // share of prompts and pairs with an instruction
	// SystemRate is the share of opening instructions (of SFT dialogues, prompts and pairs) put in a
	// system message instead of appended to the first user message, so that the SFT model knows
	// both placements gatt can train with (instruction_placement system or first_user).
	SystemRate  float64 `json:"system_rate"`
	HeldOutFrac float64 `json:"heldout_frac"` // share of each task's question strings held out

	// Misconceptions: a share of the facts (a sum, a difference, a thing's colour) on which SFT's
	// demonstrations are mostly wrong, always the same way, so the SFT model's most likely answer to
	// them is wrong, while preference pairs get them right (comparing is easier than writing,
	// Llama 2 §3.2). WrongRate still fixes the total share of wrong knowledge replies: these take
	// their part of it first.
	MisconceptionFrac float64 `json:"misconception_frac"` // share of the knowledge facts
	MisconceptionRate float64 `json:"misconception_rate"` // share of a misconceived fact's SFT replies that are wrong

	// Safety (safety.go): SafetyRate is how many safety requests go on top of the ordinary SFT
	// dialogues, training prompts and held-out prompts, as a share of them; RefusalRate the share
	// of the SFT safety demonstrations that refuse (the rest comply); the safety reward model's
	// pairs are counted apart.
	SafetyRate            float64 `json:"safety_rate"`
	RefusalRate           float64 `json:"refusal_rate"`
	NumSafetyPairs        int     `json:"num_safety_pairs"`         // safety reward model training pairs
	NumHeldOutSafetyPairs int     `json:"num_heldout_safety_pairs"` // and its held-out ones
}

// Default is sized for `make demo`: the whole pipeline on 2 CPU cores in 10-15 minutes.
func Default() Config {
	return Config{
		Seed:   1,
		NumSFT: 4000, NumPrefs: 2000, NumHeldOutPairs: 400,
		NumPrompts: 400, NumHeldOutPrompts: 200,
		NumGAtt: 800, NumGAttEval: 30,
		EvalTurns: 20, MaxTurns: 6, MaxGAttTurns: 12,
		WrongRate: 0.35, InstructedRate: 0.4, MultiTurnRate: 0.3,
		PromptInstructedRate: 0.3, SystemRate: 0.5, HeldOutFrac: 0.2,
		MisconceptionFrac: 0.2, MisconceptionRate: 0.75,
		SafetyRate: 0.1, RefusalRate: 0.3, NumSafetyPairs: 1000, NumHeldOutSafetyPairs: 200,
	}
}

// Quick is a small world for tests and smoke runs.
func Quick() Config {
	c := Default()
	c.NumSFT, c.NumPrefs, c.NumHeldOutPairs = 600, 300, 100
	c.NumPrompts, c.NumHeldOutPrompts = 100, 60
	c.NumGAtt, c.NumGAttEval = 60, 8
	c.EvalTurns, c.MaxGAttTurns = 12, 8
	c.NumSafetyPairs, c.NumHeldOutSafetyPairs = 300, 100
	return c
}

// Validate checks the config; the error names the field.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"num_sft", c.NumSFT}, {"num_prefs", c.NumPrefs}, {"num_heldout_pairs", c.NumHeldOutPairs},
		{"num_prompts", c.NumPrompts}, {"num_heldout_prompts", c.NumHeldOutPrompts},
		{"num_gatt", c.NumGAtt}, {"num_gatt_eval", c.NumGAttEval},
		{"num_safety_pairs", c.NumSafetyPairs}, {"num_heldout_safety_pairs", c.NumHeldOutSafetyPairs},
	} {
		if f.v < 0 {
			return fmt.Errorf("world config %s %d: want >= 0", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"wrong_rate", c.WrongRate}, {"instructed_rate", c.InstructedRate}, {"multi_turn_rate", c.MultiTurnRate},
		{"prompt_instructed_rate", c.PromptInstructedRate}, {"system_rate", c.SystemRate}, {"heldout_frac", c.HeldOutFrac},
		{"misconception_frac", c.MisconceptionFrac}, {"misconception_rate", c.MisconceptionRate},
		{"safety_rate", c.SafetyRate}, {"refusal_rate", c.RefusalRate},
	} {
		if !(f.v >= 0 && f.v <= 1) {
			return fmt.Errorf("world config %s %v: want a share in [0, 1]", f.name, f.v)
		}
	}
	if c.InstructedRate+c.MultiTurnRate > 1 {
		return fmt.Errorf("world config instructed_rate %v + multi_turn_rate %v: want at most 1", c.InstructedRate, c.MultiTurnRate)
	}
	if c.NumGAttEval > 0 && c.EvalTurns < 1 {
		return fmt.Errorf("world config eval_turns %d: want >= 1", c.EvalTurns)
	}
	if c.NumSFT > 0 && c.MultiTurnRate > 0 && c.MaxTurns < 2 {
		return fmt.Errorf("world config max_turns %d: want >= 2 for multi-turn dialogues", c.MaxTurns)
	}
	if c.NumGAtt > 0 && c.MaxGAttTurns < 2 {
		return fmt.Errorf("world config max_gatt_turns %d: want >= 2", c.MaxGAttTurns)
	}
	if (c.NumHeldOutPairs > 0 || c.NumHeldOutPrompts > 0) && c.HeldOutFrac == 0 {
		return errors.New("world config heldout_frac 0: held-out prompts and pairs need held-out questions")
	}
	if c.HeldOutFrac == 1 && c.NumSFT+c.NumPrefs+c.NumPrompts+c.NumGAtt > 0 {
		return errors.New("world config heldout_frac 1: training data needs training questions")
	}
	return nil
}

// Splits of the question strings.
const (
	SplitTrain   = "train"
	SplitHeldOut = "heldout"
)

const (
	train = iota
	heldout
)

// Random streams: each dataset draws from its own PCG stream of the seed, so datasets do not
// depend on which others were generated, or in which order.
const (
	streamSplit uint64 = iota + 1
	streamSFT
	streamPrefs
	streamHeldOutPairs
	streamPrompts
	streamHeldOutPrompts
	streamGAtt
	streamGAttEval
	streamMisconceptions
	streamSafetySFT
	streamSafetyPairs
	streamHeldOutSafetyPairs
	streamSafetyPrompts
	streamHeldOutSafetyPrompts
)

// World generates the datasets of one config. It is immutable and safe for concurrent use; every
// method returns freshly generated data, identical on every call.
type World struct {
	cfg  Config
	pool [2][numTasks][]Query // [train/heldout][task]
	// harmPool holds the safety requests of each split (TaskHarm is not one of the numTasks).
	harmPool [2][]Query
	// misconceptions maps a misconceived fact to the wrong answer SFT's demonstrations give it.
	misconceptions map[fact]misconception
}

// fact is what a knowledge question asks, whatever its phrasing.
type fact struct {
	task        Task
	a, b, thing int
}

func factOf(q Query) fact { return fact{q.Task, q.A, q.B, q.Thing} }

// misconception is a fact's consistent wrong answer: a result offset or a colour.
type misconception struct {
	offset, colour int
}

// New validates the config and splits the questions.
func New(cfg Config) (*World, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// gatt.Sample fails only on a nil rng or empty lists; checking once here means the generators
	// below cannot meet an error.
	if _, err := gatt.Sample(rand.New(rand.NewPCG(0, 0)), Lists()); err != nil {
		return nil, fmt.Errorf("world constraint lists: %w", err)
	}
	w := &World{cfg: cfg}
	rng := w.rng(streamSplit)
	for task, qs := range allQueries() {
		n := int(math.Round(cfg.HeldOutFrac * float64(len(qs))))
		if cfg.HeldOutFrac > 0 {
			n = max(n, 1)
		}
		if cfg.HeldOutFrac < 1 {
			n = min(n, len(qs)-1)
		}
		for i, p := range rng.Perm(len(qs)) {
			s := train
			if i < n {
				s = heldout
			}
			w.pool[s][task] = append(w.pool[s][task], qs[p])
		}
	}
	// The safety requests are split the same way, after the ordinary tasks, so the ordinary splits
	// are those of a world without safety.
	hqs := harmQueries()
	n := min(max(int(math.Round(cfg.HeldOutFrac*float64(len(hqs)))), 1), len(hqs)-1)
	for i, p := range rng.Perm(len(hqs)) {
		s := train
		if i < n {
			s = heldout
		}
		w.harmPool[s] = append(w.harmPool[s], hqs[p])
	}
	// Misconceptions are drawn over the facts, in allQueries' order (phrasing 0 lists each once).
	var facts []Query
	for _, t := range []Task{TaskPlus, TaskMinus, TaskColour} {
		for _, q := range allQueries()[t] {
			if q.Form == 0 {
				facts = append(facts, q)
			}
		}
	}
	rng = w.rng(streamMisconceptions)
	w.misconceptions = map[fact]misconception{}
	n = int(math.Round(cfg.MisconceptionFrac * float64(len(facts))))
	for _, p := range rng.Perm(len(facts))[:n] {
		q := facts[p]
		wrong := plausiblyWrong(rng, style{}.want(q))
		w.misconceptions[factOf(q)] = misconception{offset: wrong.r - q.result(), colour: wrong.colour}
	}
	return w, nil
}

// Misconceived reports whether a user message asks about a misconceived fact (see Config), for
// reporting correctness on those facts apart.
func (w *World) Misconceived(userMessage string) bool {
	_, question, _ := ParseInstructed(userMessage)
	q, ok := ParseQuestion(question)
	if !ok {
		return false
	}
	_, ok = w.misconceptions[factOf(q)]
	return ok && q.Task.Knowledge()
}

// Config is the world's config.
func (w *World) Config() Config { return w.cfg }

func (w *World) rng(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(w.cfg.Seed, stream))
}

// Questions lists the bare question strings of a split ("train" or "heldout"), by task in the
// split's order, the safety requests last.
func (w *World) Questions(split string) ([]string, error) {
	s, err := splitIndex(split)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, qs := range w.pool[s] {
		for _, q := range qs {
			out = append(out, q.Text())
		}
	}
	for _, q := range w.harmPool[s] {
		out = append(out, q.Text())
	}
	return out, nil
}

func splitIndex(split string) (int, error) {
	switch split {
	case SplitTrain:
		return train, nil
	case SplitHeldOut:
		return heldout, nil
	}
	return 0, fmt.Errorf("split %q: want %s or %s", split, SplitTrain, SplitHeldOut)
}

// taskWeights is the mix of plain questions: mostly arithmetic, the task where SFT's noise,
// rejection sampling and DPO show most.
var taskWeights = [numTasks]float64{TaskPlus: 0.35, TaskMinus: 0.25, TaskColour: 0.2, TaskName: 0.1, TaskHobby: 0.1}

// Probabilities of the dialogue generators.
const (
	referringRate      = 0.4  // an instructed turn asks about its own figure or hobby
	firstInstructed    = 0.6  // a multi-turn SFT dialogue opens with an instruction
	laterInstructed    = 0.25 // a later SFT turn carries its own instruction (as every turn does in GAtt sampling)
	laterReferBackRate = 0.4  // a later plain SFT turn asks about turn 1's figure or hobby
	gattReferringRate  = 0.4  // a GAtt source turn asks about the instruction's figure or hobby
)

func (w *World) plainQuery(rng *rand.Rand, split int) Query {
	r := rng.Float64()
	task := TaskHobby
	for t, p := range taskWeights {
		if r < p {
			task = Task(t)
			break
		}
		r -= p
	}
	qs := w.pool[split][task]
	return qs[rng.IntN(len(qs))]
}

// referring lists the tasks that ask about an instruction's figure or hobby.
func referring(inst gatt.Instruction) []Task {
	var ts []Task
	for _, c := range inst.Constraints {
		switch c.Kind {
		case gatt.Figure:
			ts = append(ts, TaskName)
		case gatt.Hobby:
			ts = append(ts, TaskHobby)
		}
	}
	return ts
}

// queryFor draws a question; with probability rate it asks about one of inst's figure or hobby.
func (w *World) queryFor(rng *rand.Rand, split int, inst gatt.Instruction, rate float64) Query {
	if ts := referring(inst); len(ts) > 0 && rng.Float64() < rate {
		qs := w.pool[split][ts[rng.IntN(len(ts))]]
		return qs[rng.IntN(len(qs))]
	}
	return w.plainQuery(rng, split)
}

func sampleInstruction(rng *rand.Rand) gatt.Instruction {
	inst, _ := gatt.Sample(rng, Lists()) // cannot fail: checked in New
	return inst
}

// mustStyle is styleOf for constraints drawn from Lists, which are always the world's.
func mustStyle(inst gatt.Instruction) style {
	st, _ := styleOf(inst.Constraints)
	return st
}

// sftTurn is one exchange of an SFT dialogue before rendering.
type sftTurn struct {
	inst   gatt.Instruction // in this user message (or the system message); empty for none
	system bool             // first turn only: inst is a system message, not appended to the question
	q      Query
	reply  spec
}

// SFT returns the supervised fine-tuning dialogues. Single-turn dialogues are plain questions or
// an instruction and a question; multi-turn dialogues open with an instruction most of the time.
// An instruction governs only the reply to its own message: later replies ignore it, and a later
// question about the persona or hobby gets the default answer. That is what leaves the SFT model
// without persistence for GAtt to teach. Of the knowledge replies (arithmetic and colours), exactly
// round(WrongRate*n) are wrong: off by one or two, or a wrong colour. Replies about misconceived
// facts are wrong first, MisconceptionRate of them, each with its fact's one wrong answer; the
// rest of the wrong replies are spread uniformly over the other facts' replies. The safety
// demonstrations (round(SafetyRate·NumSFT), RefusalRate of them refusing) come last.
func (w *World) SFT() []Dialogue {
	rng := w.rng(streamSFT)
	dialogues := make([][]sftTurn, w.cfg.NumSFT)
	for i := range dialogues {
		r := rng.Float64()
		switch {
		case r < w.cfg.MultiTurnRate:
			dialogues[i] = w.multiTurn(rng)
		case r < w.cfg.MultiTurnRate+w.cfg.InstructedRate:
			inst := sampleInstruction(rng)
			t := w.turn(inst, w.queryFor(rng, train, inst, referringRate))
			t.system = rng.Float64() < w.cfg.SystemRate
			dialogues[i] = []sftTurn{t}
		default:
			dialogues[i] = []sftTurn{w.turn(gatt.Instruction{}, w.plainQuery(rng, train))}
		}
	}
	// Noise: pick exactly the configured share of knowledge replies to get wrong, misconceived
	// facts first.
	var misconceived, other [][2]int
	for i, d := range dialogues {
		for j, t := range d {
			if !t.q.Task.Knowledge() {
				continue
			}
			if _, ok := w.misconceptions[factOf(t.q)]; ok {
				misconceived = append(misconceived, [2]int{i, j})
			} else {
				other = append(other, [2]int{i, j})
			}
		}
	}
	nWrong := int(math.Round(w.cfg.WrongRate * float64(len(misconceived)+len(other))))
	nMis := min(nWrong, int(math.Round(w.cfg.MisconceptionRate*float64(len(misconceived)))))
	nMis = max(nMis, nWrong-len(other)) // a high WrongRate needs more of them
	for _, k := range rng.Perm(len(misconceived))[:nMis] {
		t := &dialogues[misconceived[k][0]][misconceived[k][1]]
		m := w.misconceptions[factOf(t.q)]
		t.reply.r += m.offset
		t.reply.colour = m.colour
	}
	for _, k := range rng.Perm(len(other))[:nWrong-nMis] {
		t := &dialogues[other[k][0]][other[k][1]]
		t.reply = plausiblyWrong(rng, t.reply)
	}
	out := make([]Dialogue, len(dialogues))
	for i, d := range dialogues {
		for _, t := range d {
			user := Instructed(t.inst, t.q.Text())
			if t.system {
				out[i] = append(out[i], Message{Role: "system", Content: t.inst.Text()})
				user = t.q.Text()
			}
			out[i] = append(out[i],
				Message{Role: "user", Content: user},
				Message{Role: "assistant", Content: t.reply.text()})
		}
	}
	return append(out, w.safetySFT()...)
}

func (w *World) turn(inst gatt.Instruction, q Query) sftTurn {
	return sftTurn{inst: inst, q: q, reply: mustStyle(inst).want(q)}
}

func (w *World) multiTurn(rng *rand.Rand) []sftTurn {
	n := 2 + rng.IntN(w.cfg.MaxTurns-1)
	var first gatt.Instruction
	if rng.Float64() < firstInstructed {
		first = sampleInstruction(rng)
	}
	ts := []sftTurn{w.turn(first, w.queryFor(rng, train, first, referringRate))}
	ts[0].system = len(first.Constraints) > 0 && rng.Float64() < w.cfg.SystemRate
	for len(ts) < n {
		if rng.Float64() < laterInstructed {
			inst := sampleInstruction(rng)
			ts = append(ts, w.turn(inst, w.queryFor(rng, train, inst, referringRate)))
			continue
		}
		ts = append(ts, w.turn(gatt.Instruction{}, w.queryFor(rng, train, first, laterReferBackRate)))
	}
	return ts
}

// offset moves a result by d, or by -d when that leaves 0..MaxNumber.
func offset(r, d int) int {
	if r+d < 0 || r+d > MaxNumber {
		return r - d
	}
	return r + d
}

func signed(rng *rand.Rand, d int) int {
	if rng.IntN(2) == 0 {
		return -d
	}
	return d
}

// otherColour draws a colour other than c.
func otherColour(rng *rand.Rand, c int) int {
	return (c + 1 + rng.IntN(numColours-1)) % numColours
}

// plausiblyWrong is SFT's noise: a result off by one (60%) or two (40%), or a wrong colour, in the
// answer's own language and form.
func plausiblyWrong(rng *rand.Rand, s spec) spec {
	switch s.task {
	case TaskPlus, TaskMinus:
		d := 1
		if rng.Float64() >= 0.6 {
			d = 2
		}
		s.r = offset(s.r, signed(rng, d))
	case TaskColour:
		s.colour = otherColour(rng, s.colour)
	}
	return s
}

// Preferences returns the training preference pairs.
func (w *World) Preferences() []Pair { return w.pairs(w.rng(streamPrefs), train, w.cfg.NumPrefs) }

// HeldOutPairs returns preference pairs over held-out questions.
func (w *World) HeldOutPairs() []Pair {
	return w.pairs(w.rng(streamHeldOutPairs), heldout, w.cfg.NumHeldOutPairs)
}

// pairs draws single-turn prompts (a share of them instructed) and, for each, the correct
// compliant answer and a rejected answer of a drawn level: arithmetic pairs spread evenly over
// the four levels, colour pairs are mostly a wrong colour, persona and hobby pairs break a
// constraint.
func (w *World) pairs(rng *rand.Rand, split, n int) []Pair {
	out := make([]Pair, n)
	for i := range out {
		var inst gatt.Instruction
		if rng.Float64() < w.cfg.PromptInstructedRate {
			inst = sampleInstruction(rng)
		}
		q := w.queryFor(rng, split, inst, referringRate)
		prompt := w.prompt(rng, inst, q)
		st := mustStyle(inst)
		level := LevelSignificant
		switch q.Task {
		case TaskPlus, TaskMinus:
			level = 1 + rng.IntN(4)
		case TaskColour:
			if rng.Float64() < 0.6 {
				level = LevelBetter
			}
		}
		out[i] = Pair{
			Prompt:   prompt,
			Chosen:   st.want(q).text(),
			Rejected: corrupt(rng, st, q, level).text(),
			Level:    level,
			Rating:   Rating(level),
		}
	}
	return out
}

// corrupt makes an answer to q under st of exactly the given level (1..4).
func corrupt(rng *rand.Rand, st style, q Query, level int) spec {
	s := st.want(q)
	switch level {
	case LevelNegligible, LevelSlight:
		s.r = offset(s.r, signed(rng, level))
		return s
	case LevelBetter:
		if q.Task == TaskColour {
			s.colour = otherColour(rng, s.colour)
		} else {
			s.r = offset(s.r, signed(rng, 3+rng.IntN(3)))
		}
		return s
	}
	// LevelSignificant: one of the ways an answer can be badly wrong for this question.
	var ways []func(spec) spec
	if st.figure != "" {
		ways = append(ways, func(s spec) spec { s.prefix = ""; return s })
	} else {
		ways = append(ways, func(s spec) spec { s.prefix = figures[rng.IntN(len(figures))]; return s })
	}
	ways = append(ways, func(s spec) spec { // another language than the one in force
		s.lang = lang((int(st.lang) + 1 + rng.IntN(int(numLangs)-1)) % int(numLangs))
		return s
	})
	ways = append(ways, func(s spec) spec { // answers another task's question
		other := Task((int(q.Task) + 1 + rng.IntN(int(numTasks)-1)) % int(numTasks))
		return st.want(randomQuery(rng, other))
	})
	switch q.Task {
	case TaskPlus, TaskMinus:
		ways = append(ways,
			func(s spec) spec { s.r = offset(s.r, signed(rng, 6+rng.IntN(4))); return s },
			func(s spec) spec { // right arithmetic about other operands
				o := q
				for o.A == q.A && o.B == q.B {
					o = randomQuery(rng, q.Task)
				}
				s.a, s.b, s.r = o.A, o.B, o.result()
				return s
			})
	case TaskColour:
		if st.lang == english {
			ways = append(ways, func(s spec) spec { // a true fact about another thing
				s.thing = (q.Thing + 1 + rng.IntN(len(things)-1)) % len(things)
				s.colour = things[s.thing].colour
				return s
			})
		}
	case TaskName, TaskHobby:
		list := figures
		if q.Task == TaskHobby {
			list = hobbies
		}
		ways = append(ways, func(s spec) spec { // states another persona or hobby, or the default
			if s.variant == 1 && rng.IntN(2) == 0 {
				s.variant, s.value = 0, ""
				return s
			}
			v := list[rng.IntN(len(list))]
			for v == s.value {
				v = list[rng.IntN(len(list))]
			}
			s.variant, s.value = 1, v
			return s
		})
	}
	return ways[rng.IntN(len(ways))](s)
}

// prompt is a one-question prompt with an optional instruction, in a system message SystemRate of
// the time, else appended to the question.
func (w *World) prompt(rng *rand.Rand, inst gatt.Instruction, q Query) []Message {
	if len(inst.Constraints) > 0 && rng.Float64() < w.cfg.SystemRate {
		return []Message{{Role: "system", Content: inst.Text()}, {Role: "user", Content: q.Text()}}
	}
	return []Message{{Role: "user", Content: Instructed(inst, q.Text())}}
}

// randomQuery draws any query of a task (either split: a wrong answer may be about anything).
func randomQuery(rng *rand.Rand, t Task) Query {
	switch t {
	case TaskPlus:
		return Query{Task: t, A: rng.IntN(MaxOperand + 1), B: rng.IntN(MaxOperand + 1)}
	case TaskMinus:
		a := rng.IntN(MaxOperand + 1)
		return Query{Task: t, A: a, B: rng.IntN(a + 1)}
	case TaskColour:
		return Query{Task: t, Thing: rng.IntN(len(things))}
	}
	return Query{Task: t}
}

// Prompts returns single-turn prompts of a split ("train" for rejection sampling, "heldout" for
// measuring correctness), a share of them instructed, then the split's safety requests (PromptRows).
func (w *World) Prompts(split string) ([][]Message, error) {
	rows, err := w.PromptRows(split)
	if err != nil {
		return nil, err
	}
	out := make([][]Message, len(rows))
	for i, r := range rows {
		out[i] = r.Messages
	}
	return out, nil
}

// GAttSource returns the multi-turn dialogues GAtt synthesis starts from (training questions).
func (w *World) GAttSource() []SourceDialogue {
	rng := w.rng(streamGAtt)
	out := make([]SourceDialogue, w.cfg.NumGAtt)
	for i := range out {
		inst := sampleInstruction(rng)
		n := 2 + rng.IntN(w.cfg.MaxGAttTurns-1)
		var d Dialogue
		for range n {
			q := w.queryFor(rng, train, inst, gattReferringRate)
			d = append(d,
				Message{Role: "user", Content: q.Text()},
				Message{Role: "assistant", Content: style{}.want(q).text()})
		}
		out[i] = SourceDialogue{Instruction: inst, Messages: d}
	}
	return out
}

// GAttEval returns the GAtt evaluation dialogues: the instruction with the first question
// only, then EvalTurns-1 more questions. As in gatt.Questions, the turns cycle, in a fresh random
// order per cycle, through a question about each of the instruction's figure and hobby and a
// knowledge question, all training questions (see trainQuery). A figure and a language are
// checked on every answer (the persona prefixes
// and the language covers all of them), a hobby on the questions about it.
func (w *World) GAttEval() []EvalDialogue {
	rng := w.rng(streamGAttEval)
	out := make([]EvalDialogue, w.cfg.NumGAttEval)
	for i := range out {
		inst := sampleInstruction(rng)
		st := mustStyle(inst)
		slots := append(referring(inst), TaskPlus) // TaskPlus stands for "a knowledge question"
		var order []int
		d := EvalDialogue{Instruction: inst}
		for t := range w.cfg.EvalTurns {
			var q Query
			if t == 0 {
				q = w.knowledgeQuery(rng)
			} else {
				if len(order) == 0 {
					order = rng.Perm(len(slots))
				}
				task := slots[order[0]]
				order = order[1:]
				if task == TaskPlus {
					q = w.knowledgeQuery(rng)
				} else {
					q = w.trainQuery(rng, task)
				}
			}
			var checks []gatt.Constraint
			for _, c := range inst.Constraints {
				if c.Kind != gatt.Hobby || q.Task == TaskHobby {
					checks = append(checks, c)
				}
			}
			user := q.Text()
			if t == 0 {
				user = Instructed(inst, user)
			}
			d.Turns = append(d.Turns, EvalTurn{User: user, Question: q.Text(), Checks: checks, Want: st.want(q).text()})
		}
		out[i] = d
	}
	return out
}

// knowledgeQuery draws an arithmetic or colour question from the training questions.
func (w *World) knowledgeQuery(rng *rand.Rand) Query {
	return w.trainQuery(rng, []Task{TaskPlus, TaskMinus, TaskColour}[rng.IntN(3)])
}

// trainQuery draws a training question of a task. The GAtt evaluation asks only those: it measures
// whether an instruction persists over the turns, and a held-out phrasing of a question about the
// assistant ("what is your hobby?" when training only ever asked "what do you enjoy?") fails for
// another reason: a tiny model does not generalise a phrasing it never saw to its task.
func (w *World) trainQuery(rng *rand.Rand, t Task) Query {
	qs := w.pool[train][t]
	return qs[rng.IntN(len(qs))]
}
