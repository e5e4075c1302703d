package reward

import (
	"fmt"
	"math"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/recipe"
	"github.com/alignkit/alignkit/train"
)

// Config is `alignkit reward train`'s YAML: the training loop's keys, the shared data keys, the
// model, and the reward model's own keys (TRL's RewardConfig names where TRL has them).
type Config struct {
	train.Args `mapstructure:",squash"`
	Data       data.Args `mapstructure:",squash"`
	// ModelNameOrPath is a causal LM (its lm_head is replaced by a fresh score head) or a reward
	// model to train further.
	ModelNameOrPath string `mapstructure:"model_name_or_path" doc:"model to start from: a causal LM (HF directory or .gguf; its lm_head is replaced by a score head drawn with seed) or a reward model to train further"`
	// Model says how the model is held and what of it trains (LoRA, a quantized frozen base); with
	// LoRA the score head trains in full, as PEFT's modules_to_save.
	Model recipe.ModelArgs `mapstructure:",squash"`
	// MaxPromptLength cuts longer prompts from the left, keeping their end; 0 cuts them only as far
	// as max_length needs.
	MaxPromptLength int `mapstructure:"max_prompt_length" doc:"cut prompts longer than this many tokens from the left (0: only as far as max_length needs)"`
	// MarginPreset is none, small or large: Llama 2 Table 27's rating -> margin maps, applied to
	// rating_column.
	MarginPreset string `mapstructure:"margin_preset" doc:"margin from the rating column: none, small or large (Llama 2 Table 27: significantly better 1 or 3, better 2/3 or 2, slightly better 1/3 or 1, negligibly better / unsure 0)"`
	// RatingColumn is the file column holding each pair's preference rating (a label or a number).
	RatingColumn string `mapstructure:"rating_column" doc:"file column with each pair's preference rating (string label or number): mapped to a margin by margin_preset/margin_map, and the eval accuracy is reported per rating (Llama 2 Table 28)"`
	// MarginMap maps ratings to margins, overriding or extending the preset.
	MarginMap map[string]float64 `mapstructure:"margin_map" doc:"rating -> margin, extending or overriding margin_preset, e.g. {\"3\": 1.0, \"2\": 0.5}"`
	// CenterRewardsCoefficient adds λ·mean((r_c + r_r)²) to the loss (Eisenstein et al. 2023).
	CenterRewardsCoefficient float64 `mapstructure:"center_rewards_coefficient" doc:"weight of the reward-centering term mean((r_chosen + r_rejected)^2) (TRL; 0: off)"`
}

// DefaultLearningRate is Llama 2's reward-model peak learning rate for all but the 70B model
// (§3.2.2, "Training Details").
const DefaultLearningRate = 1e-5

// Margin preset names as the config spells them.
const PresetNone = "none"

// DefaultConfig is what a YAML file that sets nothing means. Load a config over it.
func DefaultConfig() Config {
	return Config{}.Defaults()
}

// Defaults fills every unset key with its default.
func (c Config) Defaults() Config {
	if c.MarginPreset == "" {
		c.MarginPreset = PresetNone
	}
	c.Args = c.Args.TrainerDefaults(DefaultLearningRate)
	c.Data = c.Data.Defaults()
	return c
}

// Validate checks every key (on a copy with the defaults filled in) and returns one error line
// naming the first bad key.
func (c Config) Validate() error {
	c = c.Defaults()
	if err := recipe.Validate(c.Args, c.ModelNameOrPath, c.Model); err != nil {
		return err
	}
	if err := c.Data.Validate(); err != nil {
		return err
	}
	switch {
	case c.Data.Packing:
		return fmt.Errorf("packing: the reward model reads one score per row, so rows cannot be packed; remove packing")
	case c.Data.LossMask != "":
		return fmt.Errorf("loss_mask: the reward model has no token loss; remove loss_mask")
	case c.MaxPromptLength < 0:
		return fmt.Errorf("max_prompt_length: must be >= 0, got %d", c.MaxPromptLength)
	case math.IsNaN(c.CenterRewardsCoefficient) || math.IsInf(c.CenterRewardsCoefficient, 0) || c.CenterRewardsCoefficient < 0:
		return fmt.Errorf("center_rewards_coefficient: must be a finite number >= 0, got %g", c.CenterRewardsCoefficient)
	}
	switch c.MarginPreset {
	case PresetNone, PresetSmall, PresetLarge:
	default:
		return fmt.Errorf("margin_preset: unknown %q (want none, small or large)", c.MarginPreset)
	}
	if c.RatingColumn == "" && (c.MarginPreset != PresetNone || len(c.MarginMap) > 0) {
		return fmt.Errorf("margin_preset/margin_map: margins come from a rating column; set rating_column (or give the data a margin column instead)")
	}
	if _, err := c.marginTable(); err != nil {
		return fmt.Errorf("margin_map: %w", err)
	}
	return nil
}

// marginTable is the rating -> margin table, nil when ratings give no margins.
func (c Config) marginTable() (*MarginTable, error) {
	preset := c.MarginPreset
	if preset == PresetNone {
		preset = ""
	}
	if preset == "" && len(c.MarginMap) == 0 {
		return nil, nil
	}
	return NewMarginTable(preset, c.MarginMap)
}
