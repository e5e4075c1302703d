package reward

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/alignkit/alignkit/internal/atomicfile"
)

// TruncationFile sits in a trained reward model's directory and records how its training pairs
// were cut, so `reward score` cuts conversations the same way unless told otherwise.
const TruncationFile = "alignkit_reward.json"

// Truncation is the max_length / max_prompt_length a reward model was trained with.
type Truncation struct {
	MaxLength       int `json:"max_length"`
	MaxPromptLength int `json:"max_prompt_length"`
}

func (t Truncation) save(dir string) error {
	if t.MaxLength == 0 {
		return nil
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, TruncationFile), append(b, '\n'))
}

// loadTruncation reads dir's TruncationFile; a directory without one (a reward model trained
// elsewhere) gets the zero Truncation, which scores at the model's whole context.
func loadTruncation(dir string) (Truncation, error) {
	path := filepath.Join(dir, TruncationFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Truncation{}, nil
	}
	if err != nil {
		return Truncation{}, fmt.Errorf("reading %s: %w", path, err)
	}
	var t Truncation
	if err := json.Unmarshal(b, &t); err != nil {
		return Truncation{}, fmt.Errorf("%s: %v", path, err)
	}
	if t.MaxLength < 0 || t.MaxPromptLength < 0 {
		return Truncation{}, fmt.Errorf("%s: max_length and max_prompt_length must be >= 0", path)
	}
	return t, nil
}
