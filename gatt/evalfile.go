package gatt

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/alignkit/alignkit/data"
)

// questions is evaluation dialogue i: from dataset_name when it was given, else generated.
func (c EvalConfig) questions(i int, lists Lists) (Instruction, []Question, error) {
	if c.dialogues != nil {
		// loadEvalDialogues gave num_dialogues dialogues of at least turns turns each.
		d := c.dialogues[i]
		return d.inst, d.qs[:c.Turns], nil
	}
	return EvalQuestions(c.Seed, i, c.Turns, lists)
}

// fileDialogue is one row of an evaluation dialogue file. The instruction is used verbatim;
// constraints, when given, are recorded with it; each turn's checks say what its answer is checked
// against. Other columns (a reference answer, say) are ignored.
type fileDialogue struct {
	Instruction string       `json:"instruction"`
	Constraints []Constraint `json:"constraints"`
	Turns       []struct {
		Question string       `json:"question"`
		Checks   []Constraint `json:"checks"`
	} `json:"turns"`
}

// loadEvalDialogues reads the first n evaluation dialogues of a .jsonl or .parquet file (see
// EvalConfig.DatasetName), each with at least turns turns. Constraints are {kind, value} objects
// with kind hobby, language or figure.
func loadEvalDialogues(path string, n, turns int) ([]evalSpec, error) {
	rows, err := data.ReadRows(path)
	if err != nil {
		return nil, fmt.Errorf("dataset_name: %w", err)
	}
	if len(rows) < n {
		return nil, fmt.Errorf("dataset_name: %s has %d dialogues, fewer than num_dialogues %d", path, len(rows), n)
	}
	out := make([]evalSpec, n)
	for i, r := range rows[:n] {
		raw, err := json.Marshal(r.Fields)
		if err != nil {
			return nil, fmt.Errorf("dataset_name: %s: row %d: %w", path, r.Index, err)
		}
		var fd fileDialogue
		if err := json.Unmarshal(raw, &fd); err != nil {
			return nil, fmt.Errorf("dataset_name: %s: row %d: %w", path, r.Index, err)
		}
		if strings.TrimSpace(fd.Instruction) == "" {
			return nil, fmt.Errorf("dataset_name: %s: row %d: no instruction", path, r.Index)
		}
		if len(fd.Turns) < turns {
			return nil, fmt.Errorf("dataset_name: %s: row %d: %d turns, fewer than turns %d", path, r.Index, len(fd.Turns), turns)
		}
		for _, c := range fd.Constraints {
			if err := checkKind(c); err != nil {
				return nil, fmt.Errorf("dataset_name: %s: row %d: constraints: %w", path, r.Index, err)
			}
		}
		spec := evalSpec{inst: Instruction{Constraints: fd.Constraints, Verbose: fd.Instruction}}
		for k, t := range fd.Turns {
			if strings.TrimSpace(t.Question) == "" {
				return nil, fmt.Errorf("dataset_name: %s: row %d: turn %d: no question", path, r.Index, k+1)
			}
			for _, c := range t.Checks {
				if err := checkKind(c); err != nil {
					return nil, fmt.Errorf("dataset_name: %s: row %d: turn %d: checks: %w", path, r.Index, k+1, err)
				}
			}
			spec.qs = append(spec.qs, Question{Text: t.Question, Checks: t.Checks})
		}
		out[i] = spec
	}
	return out, nil
}

func checkKind(c Constraint) error {
	switch c.Kind {
	case Hobby, Language, Figure:
		if strings.TrimSpace(c.Value) == "" {
			return fmt.Errorf("%s constraint with an empty value", c.Kind)
		}
		return nil
	}
	return fmt.Errorf("constraint kind %q: want hobby, language or figure", c.Kind)
}

// findChecker returns the checker of that name among cs, nil when none has it.
func findChecker(cs []Checker, name string) Checker {
	for _, c := range cs {
		if c.Name() == name {
			return c
		}
	}
	return nil
}
