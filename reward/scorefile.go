package reward

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/internal/atomicfile"
)

// FileConfig says what ScoreFile reads and writes.
type FileConfig struct {
	Input, Output string
	// Columns maps canonical names ("prompt", "response" or "completion", "messages") to the
	// input's column names.
	Columns map[string]string
	// Column is the output column that receives the rewards; default "reward". An input column of
	// that name is replaced.
	Column string
	// SafetyColumn is the input column saying which rows answer safety prompts, read with two reward
	// models only; default "is_safety".
	SafetyColumn string
	// SafetyKey names the setting that sets SafetyColumn in errors (default "safety_column").
	SafetyKey string
	// Progress receives a progress bar; nil shows none.
	Progress io.Writer
}

// FileResult describes a finished ScoreFile.
type FileResult struct {
	Rows    int
	Rewards []float64 // in row order: the one model's, or the combined reward
	// Scores holds each model's scores and, with two models, which one each reward took.
	Scores Scores
	// Columns are the columns written, in order.
	Columns []string
}

// UsedSafetyColumn is the output column of ScoreFile with two reward models that says whether a
// row's reward is its safety score.
const UsedSafetyColumn = "used_safety"

// ScoreFile scores every row of a Parquet or JSON Lines file and writes the same rows, in the same
// order, with a float64 reward column added (Output must have the input's extension). ScoreFileModels
// is the same with a reward_models list: with two models it writes each model's score
// (<column>_helpfulness, <column>_safety), the combined reward (<column>, reward.Select's R_c) and
// used_safety (bool), in that order.
//
// A row is a prompt with a response (columns prompt and response, or TRL's prompt and completion;
// strings or message lists), a conversation (a messages column whose last message is the
// assistant's response to score), or an alpaca row (see ItemsFromRows). Parquet output keeps the input's schema and values exactly,
// column order included (rows are copied as raw Parquet values); the file's key-value metadata
// (pandas, Arrow, Hugging Face schema descriptions) is dropped because it would no longer describe
// the columns. JSON Lines output re-encodes each object with the reward added (keys sorted).
//
// Everything is scored before anything is written, and the output is written to a temporary file
// beside Output and renamed into place: an interrupted or failed run leaves no Output.
//
// Under mpirun (dist.World of several ranks) the batches are dealt over the ranks and rank 0 alone
// writes Output; every rank returns the same FileResult.
func ScoreFile(ctx context.Context, s *Scorer, cfg FileConfig) (FileResult, error) {
	comm, err := dist.World()
	if err != nil {
		return FileResult{}, err
	}
	return ScoreFileOn(ctx, comm, s, cfg)
}

// ScoreFileOn is ScoreFile over the ranks of comm.
func ScoreFileOn(ctx context.Context, comm dist.Comm, s *Scorer, cfg FileConfig) (FileResult, error) {
	return ScoreFileModelsOn(ctx, comm, OneModel(s), cfg)
}

// ScoreFileModels is ScoreFile with one or two reward models (see ScoreFile).
func ScoreFileModels(ctx context.Context, m *Models, cfg FileConfig) (FileResult, error) {
	comm, err := dist.World()
	if err != nil {
		return FileResult{}, err
	}
	return ScoreFileModelsOn(ctx, comm, m, cfg)
}

// ScoreFileModelsOn is ScoreFileModels over the ranks of comm.
func ScoreFileModelsOn(ctx context.Context, comm dist.Comm, m *Models, cfg FileConfig) (FileResult, error) {
	if cfg.Column == "" {
		cfg.Column = "reward"
	}
	if cfg.SafetyColumn == "" {
		cfg.SafetyColumn = "is_safety"
	}
	if cfg.SafetyKey == "" {
		cfg.SafetyKey = "safety_column"
	}
	kind, err := fileKind(cfg.Input)
	if err != nil {
		return FileResult{}, fmt.Errorf("--input %s: %w", cfg.Input, err)
	}
	if ok, _ := fileKind(cfg.Output); ok != kind {
		return FileResult{}, fmt.Errorf("--output %s: want a %s file, like the input", cfg.Output, kind)
	}
	if abs(cfg.Input) == abs(cfg.Output) {
		return FileResult{}, fmt.Errorf("--output %s is the input: write the scored rows to another file", cfg.Output)
	}
	if st, err := os.Stat(cfg.Output); err == nil && st.IsDir() {
		return FileResult{}, fmt.Errorf("--output %s is a directory", cfg.Output)
	}
	rows, err := data.ReadRows(cfg.Input)
	if err != nil {
		return FileResult{}, err
	}
	items, err := ItemsFromRows(rows, cfg.Input, cfg.Columns)
	if err != nil {
		return FileResult{}, err
	}

	var flags []bool
	if m.Combined() {
		fields := make([]map[string]any, len(rows))
		for i, r := range rows {
			fields[i] = r.Fields
		}
		if flags, err = safetyFlags(fields, cfg.SafetyColumn, cfg.Input, cfg.SafetyKey); err != nil {
			return FileResult{}, err
		}
	}

	prog := cfg.Progress
	if comm.Rank() != 0 {
		prog = nil
	}
	progress, finish := progressReporter(prog, len(items)*len(m.scorers))
	defer finish()
	scores, err := m.scoreItemsOn(ctx, comm, items, flags, cfg.Input, progress)
	if err != nil {
		return FileResult{}, err
	}
	cols := []outColumn{{name: cfg.Column, values: scores.Reward}}
	if m.Combined() {
		cols = nil
		for _, role := range []string{RoleHelpfulness, RoleSafety} {
			for k, spec := range m.specs {
				if spec.Role == role {
					cols = append(cols, outColumn{name: cfg.Column + "_" + role, values: scores.Model[k]})
				}
			}
		}
		cols = append(cols, outColumn{name: cfg.Column, values: scores.Reward}, outColumn{name: UsedSafetyColumn, flags: scores.UsedSafety})
	}
	res := FileResult{Rows: len(rows), Rewards: scores.Reward, Scores: scores}
	for _, c := range cols {
		res.Columns = append(res.Columns, c.name)
	}
	if comm.Rank() != 0 {
		return res, nil
	}

	write := func(w io.Writer) error {
		if kind == "parquet" {
			return writeParquetWithColumns(cfg.Input, w, cols)
		}
		return writeJSONLWithColumns(rows, w, cols)
	}
	if err := atomicfile.Write(cfg.Output, write); err != nil {
		return FileResult{}, err
	}
	return res, nil
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// progressReporter draws a progress bar on w when w is a terminal or not a file, and writes a plain
// line at every tenth of the work to a file or pipe (a log), where a bar would be a stream of
// carriage returns. A nil w reports nothing.
func progressReporter(w io.Writer, total int) (progress func(done int), finish func()) {
	if w == nil {
		return nil, func() {}
	}
	if f, ok := w.(*os.File); ok && !term.IsTerminal(int(f.Fd())) {
		next := 0
		return func(done int) {
			if done >= next || done == total {
				fmt.Fprintf(w, "scoring: %d/%d rows\n", done, total)
				next = done + max(1, total/10)
			}
		}, func() {}
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("scoring"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
	)
	return func(done int) { _ = bar.Set(done) }, func() { _ = bar.Finish(); fmt.Fprintln(w) }
}

// fileKind is "parquet" or "jsonl" by extension.
func fileKind(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet":
		return "parquet", nil
	case ".jsonl", ".json":
		return "jsonl", nil
	}
	return "", fmt.Errorf("unknown file type %q: want .parquet, .jsonl or .json", filepath.Ext(path))
}

// ItemsFromRows turns scoring rows into Items: prompt + response (or completion) columns, strings or
// message lists; a messages column ending with the assistant's response; or alpaca rows
// (instruction, optional input, output), which become a user turn and the assistant's answer.
// columns renames canonical names to the file's.
func ItemsFromRows(rows []data.Row, source string, columns map[string]string) ([]Item, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", source)
	}
	cols := map[string]string{}
	for k, v := range columns {
		if k == "response" {
			k = "completion"
		}
		if _, dup := cols[k]; dup {
			return nil, fmt.Errorf("%s: columns: both response and completion are mapped", source)
		}
		cols[k] = v
	}
	name := func(canon string) string {
		if f, ok := cols[canon]; ok {
			return f
		}
		return canon
	}
	has := func(canon string) bool { _, ok := rows[0].Fields[name(canon)]; return ok }
	if _, ok := cols["completion"]; !ok && !has("completion") {
		if _, ok := rows[0].Fields["response"]; ok {
			cols["completion"] = "response"
		}
	}
	var format data.Format
	switch {
	case has("prompt") && has("completion"):
		format = data.FormatPromptCompletion
	case has("messages"):
		format = data.FormatConversation
	case has("instruction") && has("output"):
		format = data.FormatAlpaca // a user turn (instruction, input) and the assistant's output
	default:
		return nil, fmt.Errorf("%s: scoring needs prompt and response (or completion) columns, a messages column, or instruction and output columns; the file has columns [%s]",
			source, strings.Join(sortedFields(rows[0].Fields), " "))
	}
	ds, err := data.Convert(rows, data.Source{Path: source, Columns: cols, Format: format})
	if err != nil {
		return nil, err
	}
	items := make([]Item, len(ds.Records))
	for i, rec := range ds.Records {
		switch {
		case rec.Format == data.FormatConversation:
			m := rec.Messages
			k := len(m)
			for k > 0 && m[k-1].Role == "assistant" {
				k--
			}
			if k == len(m) || k == 0 {
				what := fmt.Sprintf("the last message is from the %s", m[len(m)-1].Role)
				if k == 0 {
					what = "every message is from the assistant"
				}
				return nil, fmt.Errorf("%s: row %d: column %q: %s, want a prompt then the assistant's response", source, rec.Row, name("messages"), what)
			}
			items[i] = Item{PromptMessages: m[:k:k], ResponseMessages: m[k:]}
		case rec.Conversational():
			items[i] = Item{PromptMessages: rec.PromptMessages, ResponseMessages: rec.CompletionMessages}
		default:
			items[i] = Item{Prompt: rec.Prompt, Response: rec.Completion}
		}
	}
	return items, nil
}

func sortedFields(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// writeJSONLWithColumns writes each row's fields plus cols as one JSON object per line.
func writeJSONLWithColumns(rows []data.Row, w io.Writer, cols []outColumn) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, r := range rows {
		obj := make(map[string]any, len(r.Fields)+len(cols))
		for k, v := range r.Fields {
			obj[k] = v
		}
		for _, c := range cols {
			if c.flags != nil {
				obj[c.name] = c.flags[i]
			} else {
				obj[c.name] = c.values[i]
			}
		}
		if err := enc.Encode(obj); err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
	}
	return nil
}
