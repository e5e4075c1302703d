package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

type inner struct {
	LearningRate float64           `mapstructure:"learning_rate" doc:"peak learning rate" zero:"default"`
	MaxSteps     int               `mapstructure:"max_steps" zero:"default"`
	Columns      map[string]string `mapstructure:"columns"`
}

type job struct {
	inner    `mapstructure:",squash"`
	Beta     float64   `mapstructure:"beta"`
	LossType string    `mapstructure:"loss_type"`
	Packing  bool      `mapstructure:"packing"`
	Temps    []float64 `mapstructure:"temperatures"`
}

func (j *job) Validate() error {
	if j.Beta < 0 {
		return errBeta
	}
	return nil
}

var errBeta = errors.New("beta: must be >= 0")

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPrecedence(t *testing.T) {
	p := write(t, "learning_rate: 1e-5\nmax_steps: 10\nbeta: 0.1\ncolumns:\n  prompt: question\n")
	env := map[string]string{"ALIGNKIT_MAX_STEPS": "20", "ALIGNKIT_LOSS_TYPE": "ipo", "ALIGNKIT_DEBUG": "1"}
	j := job{Packing: true}
	err := load(p, []string{"beta=0.5", "temperatures=[0.8, 1.2]"}, &j, env)
	if err != nil {
		t.Fatal(err)
	}
	if j.LearningRate != 1e-5 || j.MaxSteps != 20 || j.Beta != 0.5 || j.LossType != "ipo" || !j.Packing ||
		j.Columns["prompt"] != "question" || len(j.Temps) != 2 || j.Temps[1] != 1.2 {
		t.Fatalf("got %+v", j)
	}
}

// TestLoadEmptyValue: key= (from --set or an empty ALIGNKIT_ variable) is the empty string, not
// "unset": the YAML file's value must not come back in its place.
func TestLoadEmptyValue(t *testing.T) {
	p := write(t, "loss_type: ipo\n")
	for _, c := range []struct {
		sets []string
		env  map[string]string
	}{{[]string{"loss_type="}, nil}, {nil, map[string]string{"ALIGNKIT_LOSS_TYPE": ""}}} {
		var j job
		if err := load(p, c.sets, &j, c.env); err != nil {
			t.Fatal(err)
		}
		if j.LossType != "" {
			t.Errorf("%v %v: loss_type %q, want the explicit empty string", c.sets, c.env, j.LossType)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		sets       []string
		env        map[string]string
		want       string
	}{
		{"unknown key", "learning_rat: 1e-5\n", nil, nil, `JOB: unknown key "learning_rat" (did you mean "learning_rate"?)`},
		{"unknown far key", "frobnicate: 1\n", nil, nil, `JOB: unknown key "frobnicate"`},
		{"wrong type", "max_steps: ten\n", nil, nil, `JOB: key "max_steps" must be int, got string`},
		{"wrong type list", "temperatures: hot\n", nil, nil, `JOB: 'temperatures' source data must be an array or slice, got string`},
		{"bad yaml", "max_steps: [1\n", nil, nil, `JOB: invalid YAML: yaml: line 1: did not find expected ',' or ']'`},
		{"unknown set", "", []string{"bta=1"}, nil, `--set bta: unknown key "bta" (did you mean "beta"?)`},
		{"malformed set", "", []string{"beta"}, nil, `--set "beta": want key=value`},
		{"validate", "beta: -1\n", nil, nil, `JOB: beta: must be >= 0`},
		{"explicit zero yaml", "learning_rate: 0\n", nil, nil, `JOB: learning_rate: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{"explicit zero set", "learning_rate: 1e-5\n", []string{"max_steps=0"}, nil, `--set max_steps: max_steps: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{"explicit zero env", "", nil, map[string]string{"ALIGNKIT_LEARNING_RATE": "0.0"}, `environment ALIGNKIT_LEARNING_RATE: learning_rate: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{"unknown env", "", nil, map[string]string{"ALIGNKIT_LERNING_RATE": "1"}, `environment ALIGNKIT_LERNING_RATE: matches no config key (did you mean ALIGNKIT_LEARNING_RATE?)`},
		{"unknown env far", "", nil, map[string]string{"ALIGNKIT_FROBNICATE": "1"}, `environment ALIGNKIT_FROBNICATE: matches no config key`},
		{"bad env type", "max_steps: 3\n", nil, map[string]string{"ALIGNKIT_MAX_STEPS": "ten"}, `environment ALIGNKIT_MAX_STEPS: key "max_steps" must be int, got string`},
		{"bad set type", "max_steps: 3\n", []string{"max_steps=ten"}, nil, `--set max_steps: key "max_steps" must be int, got string`},
		{"set fails validate", "beta: 1\n", []string{"beta=-2"}, nil, `--set beta: beta: must be >= 0`},
		{"null set", "loss_type: ipo\n", []string{"loss_type=null"}, nil, `--set loss_type: value "null": null cannot replace a value; give the value, or key= for an empty string`},
		{"empty set of a number", "max_steps: 3\n", []string{"max_steps="}, nil, `--set max_steps: key "max_steps" must be int, got string`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, c.yaml)
			var j job
			err := load(p, c.sets, &j, c.env)
			if err == nil {
				t.Fatal("no error")
			}
			want := c.want
			if len(want) >= 3 && want[:3] == "JOB" {
				want = p + want[3:]
			}
			if err.Error() != want {
				t.Fatalf("error\n got: %s\nwant: %s", err, want)
			}
		})
	}
}

// TestLoadNeedsStructPointer: a value, or a pointer to something other than a struct, is refused.
func TestLoadNeedsStructPointer(t *testing.T) {
	var j job
	n := 0
	for _, out := range []any{j, &n} {
		err := Load("", nil, out)
		if want := fmt.Sprintf("conf.Load needs a pointer to a struct, got %T", out); err == nil || err.Error() != want {
			t.Errorf("Load(%T): err = %v, want %q", out, err, want)
		}
	}
}

func TestKeys(t *testing.T) {
	var names []string
	for _, k := range Keys(reflectType[job]()) {
		names = append(names, k.Name)
	}
	want := []string{"learning_rate", "max_steps", "columns", "beta", "loss_type", "packing", "temperatures"}
	if len(names) != len(want) {
		t.Fatalf("got %v", names)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("got %v want %v", names, want)
		}
	}
	if EnvName("columns.prompt") != "ALIGNKIT_COLUMNS_PROMPT" {
		t.Fatal(EnvName("columns.prompt"))
	}
}

// TestValues: squashed structs flatten, nested ones get dotted names, pointers are followed, nil
// pointers and "-" fields are left out, and the names are the ones Keys lists.
func TestValues(t *testing.T) {
	type inner struct {
		Depth int `mapstructure:"depth"`
	}
	type shared struct {
		Rate float64 `mapstructure:"learning_rate"`
	}
	type cfg struct {
		shared `mapstructure:",squash"`
		Name   string         `mapstructure:"name"`
		Seed   *int64         `mapstructure:"seed"`
		Unset  *int64         `mapstructure:"unset"`
		Inner  inner          `mapstructure:"inner"`
		Cols   map[string]int `mapstructure:"columns"`
		Skip   string         `mapstructure:"-"`
	}
	seed := int64(7)
	got := Values(cfg{shared: shared{Rate: 0.5}, Name: "x", Seed: &seed, Inner: inner{Depth: 3}, Cols: map[string]int{"a": 1}, Skip: "no"})
	want := map[string]any{"learning_rate": 0.5, "name": "x", "seed": int64(7), "inner.depth": 3, "columns": map[string]int{"a": 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Values = %#v\nwant %#v", got, want)
	}
	for _, k := range Keys(reflect.TypeOf(cfg{})) {
		if _, ok := got[k.Name]; !ok && k.Name != "unset" {
			t.Errorf("key %s listed by Keys is missing from Values", k.Name)
		}
	}
}
