package grpo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Built-in reward functions (reward_funcs[].name).
const (
	FuncExactMatch    = "exact_match"
	FuncRegex         = "regex"
	FuncLengthPenalty = "length_penalty"
	FuncCommand       = "command"
)

// DefaultCommandTimeout is how long a command reward function may take over one batch.
const DefaultCommandTimeout = time.Minute

// FuncSpec is one entry of reward_funcs: a built-in function and its parameters.
type FuncSpec struct {
	Name string `mapstructure:"name" doc:"exact_match, regex, length_penalty or command"`
	// Column is exact_match's reference column.
	Column string `mapstructure:"column" doc:"exact_match: the dataset column the trimmed completion must equal"`
	// Pattern is regex's format check (Go RE2 syntax, unanchored: anchor with ^ and $).
	Pattern string `mapstructure:"pattern" doc:"regex: 1 when the completion matches this RE2 pattern (unanchored; use ^...$), else 0"`
	// MaxCompletionLen and SoftPunishCache are length_penalty's, as TRL's
	// get_soft_overlong_punishment (DAPO's soft overlong punishment, Yu et al. 2025 §3.4).
	MaxCompletionLen int `mapstructure:"max_completion_len" doc:"length_penalty: completions longer than this many tokens get -1 (default max_completion_length)"`
	SoftPunishCache  int `mapstructure:"soft_punish_cache" doc:"length_penalty: the penalty ramps linearly from 0 to -1 over the last this many tokens before max_completion_len"`
	// Command is the argv of an external scorer: JSON Lines rows on stdin, one number per line out.
	Command []string      `mapstructure:"command" doc:"command: argv of a program reading JSON Lines rows {prompt, completion, <dataset columns>} on stdin and writing one number per row on stdout"`
	Timeout time.Duration `mapstructure:"timeout" doc:"command: time limit per batch, e.g. 30s (default 1m)"`
}

// Label names the function in errors and metrics: reward_funcs[i] (name).
func (f FuncSpec) label(i int) string { return fmt.Sprintf("reward_funcs[%d] (%s)", i, f.Name) }

// Validate checks one spec; i is its position in reward_funcs.
func (f FuncSpec) Validate(i int) error {
	at := fmt.Sprintf("reward_funcs[%d]", i)
	switch f.Name {
	case FuncExactMatch:
		if f.Column == "" {
			return fmt.Errorf("%s.column: exact_match needs the column holding the expected answer", at)
		}
	case FuncRegex:
		if f.Pattern == "" {
			return fmt.Errorf("%s.pattern: regex needs a pattern", at)
		}
		if _, err := regexp.Compile(f.Pattern); err != nil {
			return fmt.Errorf("%s.pattern: %w", at, err)
		}
	case FuncLengthPenalty:
		if f.MaxCompletionLen < 0 {
			return fmt.Errorf("%s.max_completion_len: %d, want >= 1 (0: max_completion_length)", at, f.MaxCompletionLen)
		}
		if f.SoftPunishCache < 1 {
			return fmt.Errorf("%s.soft_punish_cache: %d, want >= 1 token", at, f.SoftPunishCache)
		}
	case FuncCommand:
		if len(f.Command) == 0 || f.Command[0] == "" {
			return fmt.Errorf("%s.command: the argv of the scoring program, e.g. [python3, score.py]", at)
		}
		if f.Timeout < 0 {
			return fmt.Errorf("%s.timeout: %s, want > 0 (0: %s)", at, f.Timeout, DefaultCommandTimeout)
		}
	case "":
		return fmt.Errorf("%s.name: must be set (exact_match, regex, length_penalty or command)", at)
	default:
		return fmt.Errorf("%s.name: unknown %q (want exact_match, regex, length_penalty or command)", at, f.Name)
	}
	return nil
}

// Completion is what a reward function sees of one sampled completion.
type Completion struct {
	// Prompt is the prompt's text, or the JSON of its messages.
	Prompt string
	// Text is the decoded completion.
	Text string
	// Tokens is the number of completion tokens.
	Tokens int
	// Row is the dataset row the prompt came from, Fields its columns.
	Row    int
	Fields map[string]any
}

// Func scores a batch of completions, one reward each.
type Func interface {
	Rewards(ctx context.Context, cs []Completion) ([]float64, error)
}

// NewFunc builds the function spec describes (after Validate). maxCompletionLength is the config's,
// length_penalty's default. i is the spec's position, for errors.
func NewFunc(spec FuncSpec, i, maxCompletionLength int) (Func, error) {
	if err := spec.Validate(i); err != nil {
		return nil, err
	}
	label := spec.label(i)
	switch spec.Name {
	case FuncExactMatch:
		return exactMatch{label: label, column: spec.Column}, nil
	case FuncRegex:
		return regexFunc{re: regexp.MustCompile(spec.Pattern)}, nil
	case FuncLengthPenalty:
		maxLen := spec.MaxCompletionLen
		if maxLen == 0 {
			maxLen = maxCompletionLength
		}
		if spec.SoftPunishCache > maxLen {
			return nil, fmt.Errorf("reward_funcs[%d].soft_punish_cache: %d is longer than max_completion_len %d", i, spec.SoftPunishCache, maxLen)
		}
		return lengthPenalty{maxLen: maxLen, cache: spec.SoftPunishCache}, nil
	default:
		timeout := spec.Timeout
		if timeout == 0 {
			timeout = DefaultCommandTimeout
		}
		return command{label: label, argv: spec.Command, timeout: timeout}, nil
	}
}

type exactMatch struct{ label, column string }

// Rewards is 1 where the trimmed completion equals the trimmed reference column, else 0.
func (f exactMatch) Rewards(_ context.Context, cs []Completion) ([]float64, error) {
	out := make([]float64, len(cs))
	for i, c := range cs {
		v, ok := c.Fields[f.column]
		if !ok {
			return nil, fmt.Errorf("%s: dataset row %d has no %q column", f.label, c.Row, f.column)
		}
		var want string
		switch x := v.(type) {
		case string:
			want = x
		case nil:
			return nil, fmt.Errorf("%s: dataset row %d: %s is null", f.label, c.Row, f.column)
		default:
			want = fmt.Sprint(x)
		}
		if strings.TrimSpace(c.Text) == strings.TrimSpace(want) {
			out[i] = 1
		}
	}
	return out, nil
}

type regexFunc struct{ re *regexp.Regexp }

// Rewards is 1 where the completion matches the pattern, else 0 (TRL's format rewards).
func (f regexFunc) Rewards(_ context.Context, cs []Completion) ([]float64, error) {
	out := make([]float64, len(cs))
	for i, c := range cs {
		if f.re.MatchString(c.Text) {
			out[i] = 1
		}
	}
	return out, nil
}

type lengthPenalty struct{ maxLen, cache int }

// Rewards is TRL's get_soft_overlong_punishment: with L the completion's token count, 0 while
// L ≤ max − cache, then ((max − cache) − L)/cache down to −1 at L = max, and −1 beyond.
func (f lengthPenalty) Rewards(_ context.Context, cs []Completion) ([]float64, error) {
	out := make([]float64, len(cs))
	free := f.maxLen - f.cache
	for i, c := range cs {
		switch {
		case c.Tokens <= free:
			out[i] = 0
		case c.Tokens <= f.maxLen:
			out[i] = float64(free-c.Tokens) / float64(f.cache)
		default:
			out[i] = -1
		}
	}
	return out, nil
}

type command struct {
	label   string
	argv    []string
	timeout time.Duration
}

// Rewards runs the command once over the batch: one JSON object per completion on stdin (its
// dataset columns, then prompt and completion), one number per line expected on stdout.
func (f command) Rewards(ctx context.Context, cs []Completion) ([]float64, error) {
	name := fmt.Sprintf("%s %q", f.label, strings.Join(f.argv, " "))
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, c := range cs {
		row := make(map[string]any, len(c.Fields)+2)
		for k, v := range c.Fields {
			row[k] = v
		}
		row["prompt"], row["completion"] = c.Prompt, c.Text
		if err := enc.Encode(row); err != nil {
			return nil, fmt.Errorf("%s: dataset row %d: %w", name, c.Row, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.argv[0], f.argv[1:]...)
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second // a child that keeps the pipes open cannot hold the run
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, fmt.Errorf("%s: no answer within %s for %d completions (rows %d..%d); raise timeout", name, f.timeout, len(cs), cs[0].Row, cs[len(cs)-1].Row)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 300 {
			msg = "..." + msg[len(msg)-300:]
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return nil, fmt.Errorf("%s: %v: %s", name, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	if stdout.Len() == 0 {
		lines = nil
	}
	if len(lines) != len(cs) {
		return nil, fmt.Errorf("%s: %d lines of output for %d completions; want one number per line", name, len(lines), len(cs))
	}
	out := make([]float64, len(cs))
	for i, l := range lines {
		v, err := strconv.ParseFloat(strings.TrimSpace(l), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s: line %d (dataset row %d): %q is not a finite number", name, i+1, cs[i].Row, l)
		}
		out[i] = v
	}
	return out, nil
}
