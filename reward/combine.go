package reward

import (
	"fmt"
	"math"
	"strings"

	"github.com/alignkit/alignkit/train"
)

// Roles of the reward models Llama 2 combines (Touvron et al. 2023, §3.2.2: a helpfulness and a
// safety reward model, trained on their own preference data).
const (
	RoleHelpfulness = "helpfulness"
	RoleSafety      = "safety"
)

// ModelSpec is one entry of a config's reward_models list.
type ModelSpec struct {
	Path string `mapstructure:"path" yaml:"path" doc:"reward model: an HF directory or a .gguf file"`
	Role string `mapstructure:"role" yaml:"role" doc:"helpfulness or safety (Llama 2's two reward models)"`
}

// SafetyThreshold is Llama 2's 0.15 (§3.2.3, "Reward Model Combination"): a generation whose safety
// score, as a probability, is below it is judged by the safety model even on a helpfulness prompt.
// The paper chose it for a precision of 0.89 and a recall of 0.55 on the Meta Safety test set.
const SafetyThreshold = 0.15

// ValidateSpecs checks a reward_models list: each entry has a path and a known role, and no role
// appears twice (so at most two models, one of each). A single model of either role is allowed (it
// is used as is).
func ValidateSpecs(specs []ModelSpec) error {
	seen := map[string]int{}
	for i, s := range specs {
		switch {
		case s.Path == "":
			return fmt.Errorf("reward_models[%d].path: must be set", i)
		case s.Role != RoleHelpfulness && s.Role != RoleSafety:
			return fmt.Errorf("reward_models[%d].role: unknown %q (want %s or %s)", i, s.Role, RoleHelpfulness, RoleSafety)
		}
		if j, dup := seen[s.Role]; dup {
			return fmt.Errorf("reward_models[%d].role: %s is also reward_models[%d]'s; give one model per role", i, s.Role, j)
		}
		seen[s.Role] = i
	}
	return nil
}

// Combine is Llama 2's reward combination (§3.2.3) over a batch of generations: Select, then
// Whiten over the batch. help and safe are the two reward models' raw scores (the score head's
// output, a logit: Llama 2's reward models end in a sigmoid, which alignkit's Bradley–Terry heads
// leave out), isSafety says which prompts are safety prompts. The result is WHITEN(LOGIT(R_c)):
// LOGIT undoes the sigmoid, so it is the chosen raw score, whitened over the batch (mean 0,
// variance 1; a batch whose scores are all equal becomes all 0). The KL penalty of the RL reward is
// the trainer's, not part of this function. The second result says, per generation, whether the
// safety score was chosen.
func Combine(help, safe []float64, isSafety []bool) (combined []float64, usedSafety []bool, err error) {
	if combined, usedSafety, err = Select(help, safe, isSafety); err != nil {
		return nil, nil, err
	}
	Whiten(combined)
	return combined, usedSafety, nil
}

// Select is the choice of Llama 2's combination (§3.2.3) for each generation,
//
//	R_c = R_s  if the prompt is a safety prompt or σ(R_s) < SafetyThreshold,  else R_h
//
// on raw scores (logits), without the whitening: a generation's R_c depends on it alone, so it
// ranks samples of one prompt (rejection sampling), compares two answers (win rates) and is what
// `reward score` writes. Whitening, an affine map with a positive scale, ranks a batch the same.
// The second result says, per generation, whether the safety score was chosen.
func Select(help, safe []float64, isSafety []bool) (chosen []float64, usedSafety []bool, err error) {
	if len(help) != len(safe) || len(help) != len(isSafety) {
		return nil, nil, fmt.Errorf("reward combination: %d helpfulness scores, %d safety scores, %d safety flags: want one each per generation", len(help), len(safe), len(isSafety))
	}
	chosen = make([]float64, len(help))
	usedSafety = make([]bool, len(help))
	for i := range help {
		if !finite(help[i]) || !finite(safe[i]) {
			return nil, nil, fmt.Errorf("reward combination: generation %d: helpfulness %v, safety %v: scores must be finite", i, help[i], safe[i])
		}
		if isSafety[i] || train.Sigmoid(safe[i]) < SafetyThreshold {
			chosen[i], usedSafety[i] = safe[i], true
		} else {
			chosen[i] = help[i]
		}
	}
	return chosen, usedSafety, nil
}

// Whiten shifts and scales x in place to mean 0 and (population) variance 1, as Llama 2's WHITEN and
// TRL's masked_whiten do; a constant x becomes all zeros.
func Whiten(x []float64) {
	if len(x) == 0 {
		return
	}
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	std := math.Sqrt(ss / float64(len(x)))
	for i := range x {
		if std < 1e-12 {
			x[i] = 0
			continue
		}
		x[i] = (x[i] - mean) / std
	}
}

// SafetyFlags reads the safety-prompt column of rows (booleans, 0/1, or "true"/"false"); a row
// without the column, or with another value, is an error naming the row and the column.
func SafetyFlags(rows []map[string]any, column, source string) ([]bool, error) {
	return safetyFlags(rows, column, source, "safety_column")
}

// safetyFlags is SafetyFlags whose error names key as the setting that picks the column.
func safetyFlags(rows []map[string]any, column, source, key string) ([]bool, error) {
	out := make([]bool, len(rows))
	for i, r := range rows {
		v, ok := r[column]
		if !ok {
			return nil, fmt.Errorf("%s: row %d: no %q column (which prompts are safety prompts; set %s)", source, i, column, key)
		}
		switch x := v.(type) {
		case bool:
			out[i] = x
		case int64:
			out[i], ok = x == 1, x == 0 || x == 1
		case float64:
			out[i], ok = x == 1, x == 0 || x == 1
		case string:
			switch strings.ToLower(x) {
			case "true":
				out[i] = true
			case "false":
			default:
				ok = false
			}
		default:
			ok = false
		}
		if !ok {
			return nil, fmt.Errorf("%s: row %d: %s is %v (%T); want true or false", source, i, column, v, v)
		}
	}
	return out, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
