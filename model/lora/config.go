package lora

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/model"
)

// Config holds TRL's ModelConfig LoRA keys. A trainer's config embeds it with
// `mapstructure:",squash"` so the keys sit at the top level of the YAML, as in TRL.
//
// Keys whose zero is a meaningful value (lora_r: 0 is an error to report, lora_dropout: 0 disables
// dropout) are pointers, nil meaning the default; an explicit value is never replaced.
type Config struct {
	// UsePEFT trains LoRA adapters on a frozen base instead of the whole model.
	UsePEFT bool `mapstructure:"use_peft" doc:"train LoRA adapters on a frozen base instead of every weight (default false)"`
	// LoraR is the adapters' rank. Default 16 (TRL).
	LoraR *int `mapstructure:"lora_r" doc:"LoRA rank r (default 16)"`
	// LoraAlpha sets the scale alpha/r (alpha/√r with use_rslora). Default 32 (TRL).
	LoraAlpha *float64 `mapstructure:"lora_alpha" doc:"LoRA alpha: the adapters are scaled by alpha/r (default 32)"`
	// LoraDropout is the dropout on each adapter's input during training. Default 0.05 (TRL).
	LoraDropout *float64 `mapstructure:"lora_dropout" doc:"dropout on the adapters' input while training (default 0.05)"`
	// LoraTargetModules is a list of module names (q_proj k_proj v_proj o_proj gate_proj up_proj
	// down_proj; Mixtral's experts w1 w2 w3 and router gate; lm_head), or all-linear for every
	// linear layer but the output head, as PEFT. A name matches a module whose dotted path ends
	// with it. Default (empty): PEFT's default for the architecture, q_proj and v_proj.
	LoraTargetModules any `mapstructure:"lora_target_modules" doc:"modules to adapt: a list (q_proj, v_proj, w1, ...) or all-linear (default: q_proj and v_proj, as PEFT for Llama/Mistral/Mixtral)"`
	// LoraModulesToSave are modules trained in full beside the adapters and saved with them
	// (lm_head, embed_tokens, score; a reward model's score always is, as PEFT's SEQ_CLS task).
	LoraModulesToSave []string `mapstructure:"lora_modules_to_save" doc:"modules trained in full and saved with the adapter, e.g. [lm_head, embed_tokens] (a reward model's score always is)"`
	// UseRSLoRA scales by alpha/√r (rank-stabilised LoRA).
	UseRSLoRA bool `mapstructure:"use_rslora" doc:"rank-stabilised LoRA: scale alpha/sqrt(r) instead of alpha/r (default false)"`
}

// Defaults, as TRL's ModelConfig.
const (
	DefaultR       = 16
	DefaultAlpha   = 32.0
	DefaultDropout = 0.05
	// AllLinear is PEFT's shorthand for every linear layer but the output head.
	AllLinear = "all-linear"
)

// DefaultTargets is PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING entry for Llama,
// Mistral and Mixtral.
var DefaultTargets = []string{"q_proj", "v_proj"}

// Defaults returns a copy of c with every unset key given its default. Idempotent.
func (c Config) Defaults() Config {
	if c.LoraR == nil {
		v := DefaultR
		c.LoraR = &v
	}
	if c.LoraAlpha == nil {
		v := DefaultAlpha
		c.LoraAlpha = &v
	}
	if c.LoraDropout == nil {
		v := DefaultDropout
		c.LoraDropout = &v
	}
	return c
}

// Validate checks the keys after Defaults and returns one error line naming the first bad key.
// It checks the LoRA keys whether or not use_peft is set, so a typo surfaces before it matters.
func (c Config) Validate() error {
	c = c.Defaults()
	if *c.LoraR < 1 {
		return fmt.Errorf("lora_r: must be >= 1, got %d", *c.LoraR)
	}
	if a := *c.LoraAlpha; math.IsNaN(a) || math.IsInf(a, 0) || a <= 0 {
		return fmt.Errorf("lora_alpha: must be a finite number > 0, got %g", a)
	}
	if d := *c.LoraDropout; !(d >= 0 && d < 1) {
		return fmt.Errorf("lora_dropout: must be in [0, 1), got %g", d)
	}
	if _, err := c.Targets(); err != nil {
		return err
	}
	for i, m := range c.LoraModulesToSave {
		if strings.TrimSpace(m) == "" {
			return fmt.Errorf("lora_modules_to_save[%d]: empty module name", i)
		}
	}
	return nil
}

// Targets is lora_target_modules as a list: the configured names, [all-linear], or PEFT's default.
// The YAML value may be a list of names or one name (TRL's `lora_target_modules: all-linear`).
func (c Config) Targets() ([]string, error) {
	var out []string
	switch v := c.LoraTargetModules.(type) {
	case nil:
		return slices.Clone(DefaultTargets), nil
	case string:
		out = []string{v}
	case []string:
		out = slices.Clone(v)
	case []any:
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("lora_target_modules[%d]: want a module name, got %T %v", i, e, e)
			}
			out = append(out, s)
		}
	default:
		return nil, fmt.Errorf("lora_target_modules: want a list of module names or %s, got %T %v", AllLinear, v, v)
	}
	for i, s := range out {
		out[i] = strings.TrimSpace(s)
		if out[i] == "" {
			return nil, fmt.Errorf("lora_target_modules[%d]: empty module name", i)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("lora_target_modules: empty list (leave the key out for the default %v, or use %s)", DefaultTargets, AllLinear)
	}
	if slices.Contains(out, AllLinear) && len(out) > 1 {
		return nil, fmt.Errorf("lora_target_modules: %s stands alone, got %v", AllLinear, out)
	}
	return out, nil
}

// modulePath is a weight's module: its name less ".weight".
func modulePath(weight string) string { return strings.TrimSuffix(weight, ".weight") }

// ModuleName is the last component of a weight's module path: q_proj, w1, gate, lm_head.
func ModuleName(weight string) string {
	p := modulePath(weight)
	return p[strings.LastIndexByte(p, '.')+1:]
}

// matches is PEFT's target matching for a list entry: the module path equals it or ends with
// "."+it.
func matches(path, target string) bool {
	return path == target || strings.HasSuffix(path, "."+target)
}

// linearWeights are the model's linear weights, sorted: every 2-D tensor but the embedding.
func linearWeights(w *model.Weights) []string {
	var out []string
	for _, name := range w.Names() {
		if t := w.Tensors[name]; len(t.Shape) == 2 && name != model.EmbedKey {
			out = append(out, name)
		}
	}
	return out
}

func moduleNames(weights []string) []string {
	var out []string
	for _, n := range weights {
		if m := ModuleName(n); !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// Saves says whether lora_modules_to_save lists the module of the named weight (PEFT's matching, as
// Resolve): a loader keeps such a weight as float32 values even in a frozen base, because the adapter
// starts its trained copy from them. A reward model's score head, which Resolve adds, never is frozen.
func (c Config) Saves(weight string) bool {
	for _, m := range c.LoraModulesToSave {
		if matches(modulePath(weight), m) {
			return true
		}
	}
	return false
}

// Resolve maps the config onto a model: the weights to adapt and the tensors to train in full
// (modules_to_save, plus score for a reward model), each sorted. A target or saved module the
// model lacks is an error listing the modules it has.
func (c Config) Resolve(w *model.Weights) (targets, saved []string, err error) {
	names, err := c.Targets()
	if err != nil {
		return nil, nil, err
	}
	linear := linearWeights(w)
	if len(names) == 1 && names[0] == AllLinear {
		for _, n := range linear {
			if n != model.LMHeadKey && n != model.ScoreKey {
				targets = append(targets, n)
			}
		}
	} else {
		for _, t := range names {
			if matches(modulePath(model.EmbedKey), t) {
				return nil, nil, fmt.Errorf("lora_target_modules: %q is the token embedding; alignkit adapts linear layers only (train it in full with lora_modules_to_save: [embed_tokens])", t)
			}
			found := false
			for _, n := range linear {
				if matches(modulePath(n), t) {
					found = true
					if !slices.Contains(targets, n) {
						targets = append(targets, n)
					}
				}
			}
			if !found {
				return nil, nil, fmt.Errorf("lora_target_modules: the model has no linear module %q (it has %s, or %s)", t, strings.Join(moduleNames(linear), ", "), AllLinear)
			}
		}
	}
	saveNames := slices.Clone(c.LoraModulesToSave)
	if w.Config.IsRewardModel() && !slices.Contains(saveNames, "score") {
		saveNames = append(saveNames, "score") // PEFT's SEQ_CLS task trains the head in full
	}
	all := w.Names()
	for _, m := range saveNames {
		found := false
		for _, n := range all {
			if matches(modulePath(n), m) {
				found = true
				if slices.Contains(targets, n) {
					return nil, nil, fmt.Errorf("lora_modules_to_save: %q is also a LoRA target (%s); a module is either adapted or trained in full", m, n)
				}
				if !slices.Contains(saved, n) {
					saved = append(saved, n)
				}
			}
		}
		if !found {
			var mods []string
			for _, n := range all {
				if m := ModuleName(n); !slices.Contains(mods, m) {
					mods = append(mods, m)
				}
			}
			slices.Sort(mods)
			return nil, nil, fmt.Errorf("lora_modules_to_save: the model has no module %q (it has %s)", m, strings.Join(mods, ", "))
		}
	}
	slices.Sort(targets)
	slices.Sort(saved)
	return targets, saved, nil
}
