// Package conf turns a job's YAML file, ALIGNKIT_* environment variables and --set key=value
// overrides into a typed, validated config struct. Keys are TRL's names, given by `mapstructure` tags;
// an unknown key or a value of the wrong type is one error line naming the file and the key.
//
// Precedence, lowest first: the struct's defaults (whatever the caller put in it before Load), the
// YAML file, the environment (ALIGNKIT_LEARNING_RATE for learning_rate, ALIGNKIT_COLUMNS_PROMPT for
// columns.prompt), then --set flags.
package conf
