package world

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/alignkit/alignkit/gatt"
	"github.com/alignkit/alignkit/internal/atomicfile"
)

// Dataset file names written by WriteDatasets.
const (
	FileSFT            = "sft.jsonl"             // {"messages": [...]}: TRL conversational language modelling
	FilePrefs          = "prefs.jsonl"           // {"prompt", "chosen", "rejected", "rating"}: TRL conversational preference
	FileHeldOutPrefs   = "heldout_prefs.jsonl"   // same, over held-out questions
	FilePrompts        = "prompts.jsonl"         // {"prompt": [...], "is_safety", "reference"}: TRL conversational prompt-only
	FileHeldOutPrompts = "heldout_prompts.jsonl" // same, over held-out questions
	// The safety reward model's pairs (SafetyPairs): refusal over compliance on safety requests,
	// the helpful answer over a refusal on ordinary prompts; the same columns as prefs.jsonl.
	FileSafetyPrefs        = "safety_prefs.jsonl"
	FileHeldOutSafetyPrefs = "heldout_safety_prefs.jsonl"
	FileGAttSource         = "gatt_source.jsonl" // {"messages", "instruction", "constraints"}
	FileGAttEval           = "gatt_eval.jsonl"   // {"instruction", "constraints", "turns": [{"user", "question", "checks", "want"}]}
	FileWorld              = "world.json"        // the config, chat template name and constraint lists
)

type constraintJSON struct {
	Kind  gatt.Kind `json:"kind"`
	Value string    `json:"value"`
}

func constraintsJSON(cs []gatt.Constraint) []constraintJSON {
	out := make([]constraintJSON, len(cs))
	for i, c := range cs {
		out[i] = constraintJSON{c.Kind, c.Value}
	}
	return out
}

type sftRow struct {
	Messages Dialogue `json:"messages"`
}

type prefRow struct {
	Prompt   []Message `json:"prompt"`
	Chosen   []Message `json:"chosen"`
	Rejected []Message `json:"rejected"`
	Rating   string    `json:"rating"`
}

// promptRow is a prompt-only row; is_safety is the column rlhf's and grpo's safety_column reads
// (default is_safety), reference the correct answer grpo's exact_match reward compares with.
type promptRow struct {
	Prompt    []Message `json:"prompt"`
	IsSafety  bool      `json:"is_safety"`
	Reference string    `json:"reference"`
}

type sourceRow struct {
	Messages    Dialogue         `json:"messages"`
	Instruction string           `json:"instruction"`
	Constraints []constraintJSON `json:"constraints"`
}

type evalTurnRow struct {
	User     string           `json:"user"`
	Question string           `json:"question"`
	Checks   []constraintJSON `json:"checks"`
	Want     string           `json:"want"`
}

type evalRow struct {
	Instruction string           `json:"instruction"`
	Constraints []constraintJSON `json:"constraints"`
	Turns       []evalTurnRow    `json:"turns"`
}

type worldRow struct {
	Config       Config     `json:"config"`
	ChatTemplate string     `json:"chat_template"`
	Lists        gatt.Lists `json:"gatt_lists"`
	Checker      string     `json:"gatt_checker"`
}

// WriteDatasets writes every dataset of the world into dir (created if needed) as JSON Lines in
// TRL's schemas (see the File* names), plus world.json. The same config writes the same bytes.
// Each file is written atomically.
func (w *World) WriteDatasets(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing world datasets: %w", err)
	}
	var sft []any
	for _, d := range w.SFT() {
		sft = append(sft, sftRow{d})
	}
	prefs := func(ps []Pair) []any {
		out := make([]any, len(ps))
		for i, p := range ps {
			out[i] = prefRow{
				Prompt:   p.Prompt,
				Chosen:   []Message{{Role: "assistant", Content: p.Chosen}},
				Rejected: []Message{{Role: "assistant", Content: p.Rejected}},
				Rating:   p.Rating,
			}
		}
		return out
	}
	prompts := func(split string) ([]any, error) {
		ps, err := w.PromptRows(split)
		if err != nil {
			return nil, err
		}
		out := make([]any, len(ps))
		for i, p := range ps {
			out[i] = promptRow{p.Messages, p.IsSafety, p.Reference}
		}
		return out, nil
	}
	trainPrompts, err := prompts(SplitTrain)
	if err != nil {
		return err
	}
	heldPrompts, err := prompts(SplitHeldOut)
	if err != nil {
		return err
	}
	var source []any
	for _, d := range w.GAttSource() {
		source = append(source, sourceRow{d.Messages, d.Instruction.Text(), constraintsJSON(d.Instruction.Constraints)})
	}
	var eval []any
	for _, d := range w.GAttEval() {
		r := evalRow{Instruction: d.Instruction.Text(), Constraints: constraintsJSON(d.Instruction.Constraints)}
		for _, t := range d.Turns {
			r.Turns = append(r.Turns, evalTurnRow{t.User, t.Question, constraintsJSON(t.Checks), t.Want})
		}
		eval = append(eval, r)
	}
	files := []struct {
		name string
		rows []any
	}{
		{FileSFT, sft},
		{FilePrefs, prefs(w.Preferences())},
		{FileHeldOutPrefs, prefs(w.HeldOutPairs())},
		{FilePrompts, trainPrompts},
		{FileHeldOutPrompts, heldPrompts},
		{FileSafetyPrefs, prefs(w.SafetyPairs())},
		{FileHeldOutSafetyPrefs, prefs(w.HeldOutSafetyPairs())},
		{FileGAttSource, source},
		{FileGAttEval, eval},
	}
	for _, f := range files {
		if err := writeJSONL(filepath.Join(dir, f.name), f.rows); err != nil {
			return err
		}
	}
	meta, err := json.MarshalIndent(worldRow{w.cfg, ChatTemplate, Lists(), CheckerName}, "", "  ")
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, FileWorld), err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, FileWorld), append(meta, '\n'))
}

func writeJSONL(path string, rows []any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, r := range rows {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("writing %s: row %d: %w", path, i, err)
		}
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}
