package gatt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// Judge answers a yes/no question, e.g. an LLM judge. Implemented by callers.
type Judge interface {
	Ask(ctx context.Context, question string) (bool, error)
}

// Scorer scores an answer to a prompt, e.g. a reward model. Implemented by callers.
type Scorer interface {
	Score(ctx context.Context, prompt, answer string) (float64, error)
}

// Verdict is one checker's decision on one constraint.
type Verdict struct {
	Constraint Constraint
	Checker    string
	Pass       bool
	Detail     string // why, in one line: the detected language, the matched word, the score
}

// Checker decides whether an answer respects a constraint.
type Checker interface {
	Name() string
	Supports(k Kind) bool
	Check(ctx context.Context, c Constraint, question, answer string) (Verdict, error)
}

// Checker names.
const (
	CheckJudge    = "judge"
	CheckKeyword  = "keyword"
	CheckLanguage = "language"
	CheckReward   = "reward"
)

// Deps are what the named checkers may need: Judge for "judge", Scorer and Threshold for "reward",
// Aliases (value → other accepted names, case-insensitive keys) for "keyword".
type Deps struct {
	Judge     Judge
	Scorer    Scorer
	Threshold float64
	Aliases   map[string][]string
}

// NewChecker returns the checker of that name.
func NewChecker(name string, d Deps) (Checker, error) {
	switch name {
	case CheckJudge:
		if d.Judge == nil {
			return nil, errors.New("checker judge needs a Judge: none configured")
		}
		return judgeChecker{d.Judge}, nil
	case CheckKeyword:
		return NewKeywordChecker(d.Aliases), nil
	case CheckLanguage:
		return LanguageChecker{}, nil
	case CheckReward:
		if d.Scorer == nil {
			return nil, errors.New("checker reward needs a Scorer: none configured")
		}
		if math.IsNaN(d.Threshold) || math.IsInf(d.Threshold, 0) {
			return nil, fmt.Errorf("checker reward threshold %v: want a finite number", d.Threshold)
		}
		return rewardChecker{d.Scorer, d.Threshold}, nil
	}
	return nil, fmt.Errorf("unknown checker %q: want one of judge, keyword, language, reward", name)
}

// CheckAnswer checks an answer against each constraint with the first checker, in the given order,
// that supports the constraint's kind. A constraint no checker supports is an error.
func CheckAnswer(ctx context.Context, checkers []Checker, cs []Constraint, question, answer string) ([]Verdict, error) {
	out := make([]Verdict, 0, len(cs))
	for _, c := range cs {
		var ch Checker
		for _, k := range checkers {
			if k.Supports(c.Kind) {
				ch = k
				break
			}
		}
		if ch == nil {
			return nil, fmt.Errorf("no checker supports %s constraint %q", c.Kind, c.Value)
		}
		v, err := ch.Check(ctx, c, question, answer)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// KeywordChecker passes when the constraint's value, or one of its aliases, is named in the answer:
// case-insensitive, on word boundaries (the neighbouring characters are not letters or digits), and
// with any run of spaces in the value matching any run of white space in the answer.
type KeywordChecker struct {
	aliases map[string][]string // lower-cased value → aliases
}

// NewKeywordChecker returns a keyword checker with extra accepted names per value (nil for none).
func NewKeywordChecker(aliases map[string][]string) KeywordChecker {
	a := make(map[string][]string, len(aliases))
	for k, v := range aliases {
		key := strings.ToLower(strings.TrimSpace(k))
		a[key] = append(a[key], v...)
	}
	return KeywordChecker{aliases: a}
}

// Name is "keyword".
func (KeywordChecker) Name() string { return CheckKeyword }

// Supports hobbies and figures: a language is not named, it is spoken.
func (KeywordChecker) Supports(k Kind) bool { return k == Hobby || k == Figure }

// Check looks for the value and its aliases in the answer.
func (kc KeywordChecker) Check(_ context.Context, c Constraint, _, answer string) (Verdict, error) {
	if !kc.Supports(c.Kind) {
		return Verdict{}, fmt.Errorf("checker keyword cannot check a %s constraint", c.Kind)
	}
	names := append([]string{c.Value}, kc.aliases[strings.ToLower(strings.TrimSpace(c.Value))]...)
	for _, name := range names {
		if ContainsWord(answer, name) {
			return Verdict{Constraint: c, Checker: CheckKeyword, Pass: true, Detail: fmt.Sprintf("names %q", name)}, nil
		}
	}
	return Verdict{Constraint: c, Checker: CheckKeyword, Detail: fmt.Sprintf("does not name %q", c.Value)}, nil
}

// ContainsWord reports whether phrase occurs in text case-insensitively on word boundaries. A blank
// phrase is never found.
func ContainsWord(text, phrase string) bool {
	words := strings.Fields(phrase)
	if len(words) == 0 {
		return false
	}
	for i, w := range words {
		words[i] = regexp.QuoteMeta(w)
	}
	re := regexp.MustCompile(`(?i)(?:^|[^\p{L}\p{N}])` + strings.Join(words, `\s+`) + `(?:$|[^\p{L}\p{N}])`)
	return re.MatchString(text)
}

// stopWords are frequent function words of each language, lower-case. Words shared between languages
// ("la", "de", "in") count for each of them; the distinctive ones decide.
var stopWords = map[string][]string{
	"english": strings.Fields(`the be to of and in that have i it for not on with he as you do at this
		but his by from they we say her she or an will my one all would there their what so up out if
		about who get which go me is are was were your am been has had can our its them than`),
	"french": strings.Fields(`le la les de des du un une et est en que qui dans pour pas ne sur au aux
		avec ce cette ces il elle ils nous vous je tu mon ma mes son sa ses mais ou où donc très plus être
		avoir sont était c l d j qu n s y à ça oui aussi comme tout bien fait suis`),
	"german": strings.Fields(`der die das und ist nicht ein eine einen einem einer zu den dem des mit
		sich auf für ich du er sie es wir ihr auch von im sind war wie aber oder wenn noch nur schon sehr
		kann hat haben bin bist mein meine dein dass nach bei aus ja nein gibt werden wird man über um`),
	"spanish": strings.Fields(`el la los las de del y que en un una unos es son por para con no se lo
		le les su sus al como más pero sí yo tú él ella nosotros ustedes mi mis muy está están ser estar
		hay este esta eso esto también cuando porque donde qué todo bien ya me te hola gracias`),
	"italian": strings.Fields(`il lo la gli le di del della dei delle e è che in un una uno per con non
		si mi ti ci da dal al alla sono sei come ma anche più molto questo questa quello mio mia tuo suo
		sua io tu lui lei noi voi essere ho hai ha perché quando dove tutto bene grazie ciao ancora`),
}

// stopSets is stopWords as sets; built once, never modified.
var stopSets = func() map[string]map[string]bool {
	sets := make(map[string]map[string]bool, len(stopWords))
	for l, ws := range stopWords {
		s := make(map[string]bool, len(ws))
		for _, w := range ws {
			s[w] = true
		}
		sets[l] = s
	}
	return sets
}()

// Languages lists the languages the language checker identifies, sorted.
func Languages() []string {
	out := make([]string, 0, len(stopWords))
	for l := range stopWords {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// Detection is the outcome of stop-word language identification.
type Detection struct {
	Language string         // best language, lower-case; "" when no stop word was found or the top two tie
	Hits     map[string]int // stop-word tokens counted per language
	Tokens   int            // word tokens in the text
}

// Detect identifies the language of text by counting, per language, the tokens that are among its
// stop words. Tokens are maximal runs of letters, lower-cased; apostrophes split ("l'homme" → "l",
// "homme"), which is why French lists the elided forms.
func Detect(text string) Detection {
	d := Detection{Hits: make(map[string]int, len(stopWords))}
	for _, tok := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
		d.Tokens++
		for l, s := range stopSets {
			if s[tok] {
				d.Hits[l]++
			}
		}
	}
	best, second := 0, 0
	for _, l := range Languages() {
		switch h := d.Hits[l]; {
		case h > best:
			best, second = h, best
			d.Language = l
		case h > second:
			second = h
		}
	}
	if best == 0 || best == second {
		d.Language = ""
	}
	return d
}

// LanguageChecker passes when Detect finds the constraint's language.
type LanguageChecker struct{}

// Name is "language".
func (LanguageChecker) Name() string { return CheckLanguage }

// Supports language constraints only.
func (LanguageChecker) Supports(k Kind) bool { return k == Language }

// Match returns the detected language of answer and whether it is want (a name such as "French").
func (LanguageChecker) Match(answer, want string) (best string, ok bool, err error) {
	w := strings.ToLower(strings.TrimSpace(want))
	if _, known := stopWords[w]; !known {
		return "", false, fmt.Errorf("language %q has no stop-word list: want one of %s", want, strings.Join(Languages(), ", "))
	}
	d := Detect(answer)
	return d.Language, d.Language == w, nil
}

// Check identifies the answer's language.
func (lc LanguageChecker) Check(_ context.Context, c Constraint, _, answer string) (Verdict, error) {
	if c.Kind != Language {
		return Verdict{}, fmt.Errorf("checker language cannot check a %s constraint", c.Kind)
	}
	best, ok, err := lc.Match(answer, c.Value)
	if err != nil {
		return Verdict{}, err
	}
	if best == "" {
		best = "no language"
	}
	return Verdict{Constraint: c, Checker: CheckLanguage, Pass: ok, Detail: "detected " + best}, nil
}

type judgeChecker struct{ j Judge }

func (judgeChecker) Name() string       { return CheckJudge }
func (judgeChecker) Supports(Kind) bool { return true }

// JudgeQuestion is the yes/no question the judge checker asks.
func JudgeQuestion(c Constraint, question, answer string) string {
	return fmt.Sprintf("At the start of the conversation the assistant was told: %q.\n"+
		"Later the user asked: %q\nThe assistant answered: %q\n"+
		"Does the answer respect the instruction? Answer yes or no.", c.Verbose(), question, answer)
}

func (jc judgeChecker) Check(ctx context.Context, c Constraint, question, answer string) (Verdict, error) {
	ok, err := jc.j.Ask(ctx, JudgeQuestion(c, question, answer))
	if err != nil {
		return Verdict{}, fmt.Errorf("judge on %s constraint %q: %w", c.Kind, c.Value, err)
	}
	d := "judge said no"
	if ok {
		d = "judge said yes"
	}
	return Verdict{Constraint: c, Checker: CheckJudge, Pass: ok, Detail: d}, nil
}

type rewardChecker struct {
	s         Scorer
	threshold float64
}

func (rewardChecker) Name() string       { return CheckReward }
func (rewardChecker) Supports(Kind) bool { return true }

// RewardPrompt is the prompt the reward checker scores the answer against: the instruction, then
// the question.
func RewardPrompt(c Constraint, question string) string {
	return c.Verbose() + ".\n\n" + question
}

func (rc rewardChecker) Check(ctx context.Context, c Constraint, question, answer string) (Verdict, error) {
	s, err := rc.s.Score(ctx, RewardPrompt(c, question), answer)
	if err != nil {
		return Verdict{}, fmt.Errorf("reward on %s constraint %q: %w", c.Kind, c.Value, err)
	}
	if math.IsNaN(s) {
		return Verdict{}, fmt.Errorf("reward on %s constraint %q: score is NaN", c.Kind, c.Value)
	}
	return Verdict{Constraint: c, Checker: CheckReward, Pass: s >= rc.threshold,
		Detail: fmt.Sprintf("score %.4g, threshold %.4g", s, rc.threshold)}, nil
}
