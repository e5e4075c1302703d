package gatt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
)

// Eval output file names in output_dir.
const (
	EvalJSONFile        = "gatt_eval.json"
	EvalMarkdownFile    = "gatt_eval.md"
	EvalPlotFile        = "gatt_eval.png"
	EvalTranscriptsFile = "gatt_eval_transcripts.jsonl"
)

// EvalConfig is `alignkit gatt eval`'s YAML.
type EvalConfig struct {
	Models []string `mapstructure:"models" doc:"models compared side by side: HF directories or .gguf files (backend local), or served model names (backend openai)"`
	Labels []string `mapstructure:"labels" doc:"a label per model for the table and plot (default: each model's base name)"`

	OutputDir    string `mapstructure:"output_dir" doc:"receives gatt_eval.json, gatt_eval.md, gatt_eval.png and the transcripts"`
	ChatTemplate string `mapstructure:"chat_template" doc:"chat template: a built-in name (chatml, llama-2, llama-3, mistral, zephyr), a .jinja file, or Jinja source; empty: the tokenizer's own"`
	MaxLength    int    `mapstructure:"max_length" doc:"longest prompt plus reply in tokens; older turns after the first are dropped from the prompt to stay within it (default: the model's context)"`
	Seed         int64  `mapstructure:"seed" doc:"drives the instructions, the questions and sampling; default 42"`

	NumDialogues int     `mapstructure:"num_dialogues" doc:"dialogues per model, each with its own sampled instruction (default 50)"`
	Turns        int     `mapstructure:"turns" doc:"turns per dialogue; the instruction is set in turn 1 and questions from turn 2 on refer back to it (default 20)"`
	MaxNewTokens int     `mapstructure:"max_new_tokens" doc:"most tokens per reply (default 128)"`
	Temperature  float64 `mapstructure:"temperature" doc:"sampling temperature; 0 is greedy (default)"`
	TopP         float64 `mapstructure:"top_p" doc:"nucleus sampling mass (default 1)"`

	InstructionPlacement string `mapstructure:"instruction_placement" doc:"system, first_user, or auto (from the chat template; default)"`
	Constraints          Lists  `mapstructure:"constraints" doc:"hobbies, languages and figures to draw from; a list given here replaces the default one"`
	ExtendConstraints    bool   `mapstructure:"extend_constraints" doc:"add the constraints lists to the defaults instead of replacing them"`

	Checkers              []string `mapstructure:"checkers" doc:"adherence checkers, first supporting one wins per constraint: keyword, language, judge, reward (default [keyword, language])"`
	JudgeBaseURL          string   `mapstructure:"judge_base_url" doc:"judge checker: OpenAI-compatible server of the judge model (api_key, request_timeout and max_retries apply to it too)"`
	JudgeModel            string   `mapstructure:"judge_model" doc:"judge checker: served model name (empty: the first the server lists)"`
	RewardModelNameOrPath string   `mapstructure:"reward_model_name_or_path" doc:"reward checker: the reward model"`
	RewardThreshold       float64  `mapstructure:"reward_threshold" doc:"reward checker: a reply adheres when its reward is at least this"`

	Backend  `mapstructure:",squash"`
	Progress io.Writer `mapstructure:"-"`
}

// DefaultEvalConfig is what a YAML file that sets nothing means.
func DefaultEvalConfig() EvalConfig {
	return EvalConfig{Seed: 42, NumDialogues: 50, Turns: 20, MaxNewTokens: 128, TopP: 1,
		InstructionPlacement: string(PlaceAuto), Checkers: []string{CheckKeyword, CheckLanguage}}
}

// Validate checks the keys and returns one error line naming the first bad one.
func (c EvalConfig) Validate() error {
	c.Backend = c.Backend.defaults()
	switch {
	case len(c.Models) == 0:
		return errors.New("models: must list at least one model")
	case len(c.Labels) != 0 && len(c.Labels) != len(c.Models):
		return fmt.Errorf("labels: %d labels for %d models: give one per model or none", len(c.Labels), len(c.Models))
	case c.OutputDir == "":
		return errors.New("output_dir: must be set")
	case c.MaxLength < 0:
		return fmt.Errorf("max_length: must be >= 0 (0: the model's context), got %d", c.MaxLength)
	case c.NumDialogues < 1:
		return fmt.Errorf("num_dialogues: must be >= 1, got %d", c.NumDialogues)
	case c.Turns < 1:
		return fmt.Errorf("turns: must be >= 1, got %d", c.Turns)
	case c.MaxNewTokens < 1:
		return fmt.Errorf("max_new_tokens: must be >= 1, got %d", c.MaxNewTokens)
	case math.IsNaN(c.Temperature) || c.Temperature < 0:
		return fmt.Errorf("temperature: must be >= 0, got %v", c.Temperature)
	case math.IsNaN(c.TopP) || c.TopP <= 0 || c.TopP > 1:
		return fmt.Errorf("top_p: must be in (0, 1], got %v", c.TopP)
	case math.IsNaN(c.RewardThreshold) || math.IsInf(c.RewardThreshold, 0):
		return fmt.Errorf("reward_threshold: must be a finite number, got %v", c.RewardThreshold)
	}
	seen := map[string]bool{}
	for i, l := range c.labels() {
		if strings.TrimSpace(l) == "" {
			return fmt.Errorf("labels[%d]: empty label", i)
		}
		if seen[l] {
			return fmt.Errorf("labels: %q appears twice: give each model its own label", l)
		}
		seen[l] = true
	}
	if _, err := ParsePlacement(c.InstructionPlacement); err != nil {
		return err
	}
	lists, err := ResolveLists(c.Constraints, c.ExtendConstraints)
	if err != nil {
		return err
	}
	if err := checkCheckers(c.Checkers, lists); err != nil {
		return err
	}
	for _, n := range c.Checkers {
		switch {
		case n == CheckJudge && c.JudgeBaseURL == "":
			return errors.New("checkers: judge needs judge_base_url (an OpenAI-compatible server)")
		case n == CheckReward && c.RewardModelNameOrPath == "":
			return errors.New("checkers: reward needs reward_model_name_or_path")
		}
	}
	return c.Backend.validate(c.Models[0]) // models, not model_name_or_path, name what is evaluated
}

func (c EvalConfig) labels() []string {
	if len(c.Labels) > 0 {
		return c.Labels
	}
	out := make([]string, len(c.Models))
	for i, m := range c.Models {
		out[i] = filepath.Base(filepath.Clean(m))
	}
	return out
}

// checkCheckers validates checker names and that every constraint the lists can produce has a
// checker, so that a bad config fails before any generation.
func checkCheckers(names []string, lists Lists) error {
	if len(names) == 0 {
		return errors.New("checkers: empty: want at least one of keyword, language, judge, reward")
	}
	type sup interface{ Supports(Kind) bool }
	var cs []sup
	for _, n := range names {
		switch n {
		case CheckKeyword:
			cs = append(cs, KeywordChecker{})
		case CheckLanguage:
			cs = append(cs, LanguageChecker{})
		case CheckJudge, CheckReward:
			cs = append(cs, judgeChecker{})
		default:
			return fmt.Errorf("checkers: unknown checker %q: want one of judge, keyword, language, reward", n)
		}
	}
	for _, k := range kinds {
		first := -1
		for i, c := range cs {
			if c.Supports(k) {
				first = i
				break
			}
		}
		if first < 0 {
			return fmt.Errorf("checkers [%s]: none checks %s constraints: add one that does (judge and reward check any kind)", strings.Join(names, ", "), k)
		}
		if k == Language && names[first] == CheckLanguage {
			for i, l := range lists.Languages {
				if _, _, err := (LanguageChecker{}).Match("", l); err != nil {
					return fmt.Errorf("constraints: languages[%d]: %w", i, err)
				}
			}
		}
	}
	return nil
}

// TurnStat is one turn of one model: how many dialogues had a checkable question at this turn and
// how many of those replies respected every constraint checked.
type TurnStat struct {
	Turn     int     `json:"turn"`
	Checked  int     `json:"checked"`
	Adherent int     `json:"adherent"`
	Percent  float64 `json:"percent"` // 100·Adherent/Checked; NaN (null in JSON) when nothing was checked
	// ByKind counts, per constraint kind, the verdicts and the passes at this turn.
	ByKind map[Kind]KindStat `json:"by_kind"`
	// Dropped is how many dialogues had earlier turns cut from the prompt to fit max_length.
	Dropped int `json:"dropped"`
}

// MarshalJSON writes an unchecked turn's percent as null.
func (t TurnStat) MarshalJSON() ([]byte, error) {
	type plain TurnStat
	var p *float64
	if !math.IsNaN(t.Percent) {
		v := t.Percent
		p = &v
	}
	return json.Marshal(struct {
		plain
		Percent *float64 `json:"percent"`
	}{plain(t), p})
}

// KindStat counts the verdicts on one kind of constraint.
type KindStat struct {
	Checked int `json:"checked"`
	Passed  int `json:"passed"`
}

// ModelResult is one model's consistency over the turns.
type ModelResult struct {
	Label string     `json:"label"`
	Model string     `json:"model"`
	Turns []TurnStat `json:"turns"`
}

// EvalResult is the whole evaluation: Llama 2 Table 30's layout, turn by model.
type EvalResult struct {
	Turns        int           `json:"turns"`
	NumDialogues int           `json:"num_dialogues"`
	Checkers     []string      `json:"checkers"`
	Placement    Placement     `json:"instruction_placement"`
	Models       []ModelResult `json:"models"`
}

// Transcript is one evaluated dialogue, for reading what the model said.
type Transcript struct {
	Label       string         `json:"label"`
	Dialogue    int            `json:"dialogue"`
	Instruction string         `json:"instruction"`
	Messages    []chat.Message `json:"messages"`
	Verdicts    [][]Verdict    `json:"verdicts"` // per turn
}

// EvalQuestions is the instruction and the question sequence of evaluation dialogue i. They depend
// only on (seed, i) and the lists, so every model answers the same dialogues.
func EvalQuestions(seed int64, i, turns int, lists Lists) (Instruction, []Question, error) {
	inst, err := InstructionFor(seed, i, lists)
	if err != nil {
		return inst, nil, err
	}
	qs, err := Questions(inst, turns, rand.New(rand.NewPCG(uint64(seed)^0x676174746576171, uint64(i))))
	return inst, qs, err
}

// Evaluate runs every model through the same dialogues and measures adherence turn by turn.
func Evaluate(ctx context.Context, cfg EvalConfig) (EvalResult, error) {
	cfg.Backend = cfg.Backend.defaults()
	var res EvalResult
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	lists, _ := ResolveLists(cfg.Constraints, cfg.ExtendConstraints)
	checkers, err := buildCheckers(ctx, cfg)
	if err != nil {
		return res, err
	}
	res = EvalResult{Turns: cfg.Turns, NumDialogues: cfg.NumDialogues, Checkers: cfg.Checkers}
	if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
		return res, fmt.Errorf("output_dir: %w", err)
	}
	var transcripts []Transcript
	labels := cfg.labels()
	for mi, m := range cfg.Models {
		b := cfg.Backend
		path := m
		if b.Backend == BackendOpenAI {
			b.ServedModelName, path = m, ""
		}
		s, err := newSampler(ctx, b, path, cfg.ChatTemplate)
		if err != nil {
			return res, fmt.Errorf("models[%d]: %w", mi, err)
		}
		place, _ := ParsePlacement(cfg.InstructionPlacement)
		if place == PlaceAuto {
			if place, err = DetectPlacement(s.tmpl); err != nil {
				return res, fmt.Errorf("models[%d]: %w", mi, err)
			}
		}
		if mi == 0 {
			res.Placement = place
		} else if place != res.Placement {
			res.Placement = "mixed"
		}
		mr, ts, err := evalModel(ctx, cfg, s, place, lists, checkers, labels[mi])
		if err != nil {
			return res, fmt.Errorf("models[%d] %s: %w", mi, m, err)
		}
		mr.Model = m
		res.Models = append(res.Models, mr)
		transcripts = append(transcripts, ts...)
	}
	if err := WriteEval(cfg.OutputDir, res, transcripts); err != nil {
		return res, err
	}
	return res, nil
}

// rewardAdapter lets the reward checker score with a reward model: the prompt as a user message,
// the answer as the assistant's.
type rewardAdapter struct{ s *reward.Scorer }

func (r rewardAdapter) Score(ctx context.Context, prompt, answer string) (float64, error) {
	v, err := r.s.Score(ctx, [][]data.Message{{{Role: "user", Content: prompt}, {Role: "assistant", Content: answer}}})
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func buildCheckers(ctx context.Context, cfg EvalConfig) ([]Checker, error) {
	d := Deps{Aliases: DefaultAliases(), Threshold: cfg.RewardThreshold}
	for _, n := range cfg.Checkers {
		switch n {
		case CheckJudge:
			if d.Judge != nil {
				continue
			}
			o, err := cfg.Backend.openAI(ctx, cfg.JudgeBaseURL, cfg.JudgeModel)
			if err != nil {
				return nil, fmt.Errorf("judge: %w", err)
			}
			d.Judge = GenJudge{Gen: o}
		case CheckReward:
			if d.Scorer != nil {
				continue
			}
			s, err := reward.NewScorer(cfg.RewardModelNameOrPath, reward.WithChatTemplate(cfg.ChatTemplate))
			if err != nil {
				return nil, err
			}
			d.Scorer = rewardAdapter{s}
		}
	}
	out := make([]Checker, 0, len(cfg.Checkers))
	for _, n := range cfg.Checkers {
		c, err := NewChecker(n, d)
		if err != nil {
			return nil, fmt.Errorf("checkers: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// evalDialogue is one dialogue in progress.
type evalDialogue struct {
	inst Instruction
	qs   []Question
	// first is the opening exchange, which carries the instruction: [system,] u1 (and a1 once it
	// is sampled). It is always kept in the prompt.
	first []chat.Message
	// history is the later messages, u2, a2, …, up to the current question.
	history []chat.Message
	tr      Transcript
}

// prompt is the conversation for the next reply. When it does not fit limit tokens, the oldest
// exchanges after the first (u_i with its reply a_i) are dropped until it does (count nil: never).
// It reports whether anything was dropped; when even the first exchange and the current question
// do not fit, that is an error.
func (d *evalDialogue) prompt(count func([]chat.Message) (int, error), limit int) ([]chat.Message, bool, error) {
	for drop := 0; ; drop += 2 {
		msgs := append(append([]chat.Message(nil), d.first...), d.history[drop:]...)
		if count == nil {
			return msgs, false, nil
		}
		n, err := count(msgs)
		if err != nil {
			return nil, false, err
		}
		if n <= limit {
			return msgs, drop > 0, nil
		}
		if len(d.history)-drop <= 1 {
			return nil, false, fmt.Errorf("the first exchange and the current question take %d tokens: no room for a reply of max_new_tokens within %d", n, limit)
		}
	}
}

func evalModel(ctx context.Context, cfg EvalConfig, s *sampler, place Placement, lists Lists, checkers []Checker, label string) (ModelResult, []Transcript, error) {
	mr := ModelResult{Label: label, Turns: make([]TurnStat, cfg.Turns)}
	for t := range mr.Turns {
		mr.Turns[t] = TurnStat{Turn: t + 1, ByKind: map[Kind]KindStat{}}
	}
	limit := cfg.MaxLength
	if s.maxPos > 0 && (limit == 0 || limit > s.maxPos) {
		limit = s.maxPos
	}
	ds := make([]*evalDialogue, cfg.NumDialogues)
	for i := range ds {
		inst, qs, err := EvalQuestions(cfg.Seed, i, cfg.Turns, lists)
		if err != nil {
			return mr, nil, err
		}
		d := &evalDialogue{inst: inst, qs: qs, tr: Transcript{Label: label, Dialogue: i, Instruction: inst.Text()}}
		q0 := qs[0].Text
		if place == PlaceSystem {
			d.first = []chat.Message{{Role: "system", Content: inst.Text()}, {Role: "user", Content: q0}}
		} else {
			d.first = []chat.Message{{Role: "user", Content: WithInstruction(q0, inst.Text())}}
		}
		ds[i] = d
	}
	for t := 0; t < cfg.Turns; t++ {
		prompts := make([]rlhf.Prompt, len(ds))
		for i, d := range ds {
			if t > 0 {
				d.history = append(d.history, chat.Message{Role: "user", Content: d.qs[t].Text})
			}
			count := s.count
			if limit <= 0 {
				count = nil // no known context: nothing to fit
			}
			msgs, dropped, err := d.prompt(count, limit-cfg.MaxNewTokens)
			if err != nil {
				return mr, nil, fmt.Errorf("dialogue %d: turn %d: %w", i, t+1, err)
			}
			if dropped {
				mr.Turns[t].Dropped++
			}
			prompts[i] = rlhf.Prompt{Messages: msgs, Source: "gatt eval", Row: i}
		}
		out, err := s.gen.Generate(ctx, prompts, 1, rlhf.Sampling{
			Temperature: cfg.Temperature, TopP: cfg.TopP, MaxNewTokens: cfg.MaxNewTokens, Seed: turnSeed(cfg.Seed, 0, t),
		})
		if err != nil {
			return mr, nil, fmt.Errorf("turn %d: %w", t+1, err)
		}
		st := &mr.Turns[t]
		for i, d := range ds {
			reply := strings.TrimSpace(out[i][0])
			if t == 0 {
				d.first = append(d.first, chat.Message{Role: "assistant", Content: reply})
			} else {
				d.history = append(d.history, chat.Message{Role: "assistant", Content: reply})
			}
			q := d.qs[t]
			vs, err := CheckAnswer(ctx, checkers, q.Checks, q.Text, reply)
			if err != nil {
				return mr, nil, fmt.Errorf("dialogue %d: turn %d: %w", i, t+1, err)
			}
			d.tr.Verdicts = append(d.tr.Verdicts, vs)
			if len(vs) == 0 {
				continue
			}
			st.Checked++
			ok := true
			for _, v := range vs {
				c := st.ByKind[v.Constraint.Kind]
				c.Checked++
				if v.Pass {
					c.Passed++
				} else {
					ok = false
				}
				st.ByKind[v.Constraint.Kind] = c
			}
			if ok {
				st.Adherent++
			}
		}
		st.Percent = math.NaN()
		if st.Checked > 0 {
			st.Percent = 100 * float64(st.Adherent) / float64(st.Checked)
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "gatt eval: %s: turn %d: %s adherent\n", label, t+1, percentWord(*st))
		}
	}
	ts := make([]Transcript, len(ds))
	for i, d := range ds {
		d.tr.Messages = append(append([]chat.Message(nil), d.first...), d.history...)
		ts[i] = d.tr
	}
	return mr, ts, nil
}

func percentWord(t TurnStat) string {
	if t.Checked == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%% (%d/%d)", t.Percent, t.Adherent, t.Checked)
}

// Markdown renders the result as Table 30: a row per turn, a column per model, each cell the percent
// of checked replies that adhered and how many were checked.
func (r EvalResult) Markdown() string {
	var b strings.Builder
	b.WriteString("| Turn |")
	for _, m := range r.Models {
		fmt.Fprintf(&b, " %s |", strings.ReplaceAll(m.Label, "|", `\|`))
	}
	b.WriteString("\n|---:|")
	for range r.Models {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for t := 0; t < r.Turns; t++ {
		fmt.Fprintf(&b, "| %d |", t+1)
		for _, m := range r.Models {
			fmt.Fprintf(&b, " %s |", percentWord(m.Turns[t]))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// WriteEval writes the JSON, the Markdown table, the plot and the transcripts, each atomically.
func WriteEval(dir string, r EvalResult, transcripts []Transcript) error {
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", EvalJSONFile, err)
	}
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, EvalJSONFile), append(j, '\n')); err != nil {
		return err
	}
	md := fmt.Sprintf("# GAtt consistency: %% of replies that respect the instruction, by turn\n\n%d dialogues per model, checkers: %s, instruction placement: %s.\n\n%s",
		r.NumDialogues, strings.Join(r.Checkers, ", "), r.Placement, r.Markdown())
	if err := checkpoint.WriteFileAtomic(filepath.Join(dir, EvalMarkdownFile), []byte(md)); err != nil {
		return err
	}
	if err := writeEvalPlot(filepath.Join(dir, EvalPlotFile), r); err != nil {
		return err
	}
	var tb strings.Builder
	for _, t := range transcripts {
		line, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", EvalTranscriptsFile, err)
		}
		tb.Write(line)
		tb.WriteByte('\n')
	}
	return checkpoint.WriteFileAtomic(filepath.Join(dir, EvalTranscriptsFile), []byte(tb.String()))
}
